"""Properties of ``${VAR}`` / ``${VAR:-default}`` interpolation in the YAML files (``bridge.yamlfile``)."""

from __future__ import annotations

from collections.abc import Mapping

from hypothesis import given
from hypothesis import strategies as st

from bridge.yamlfile import interpolate
from tests.property.conftest import PROPERTY

NAMES = st.sampled_from(["A", "B", "_X", "GITLAB_URL", "a1", "PORT"])
ENVS = st.dictionaries(NAMES, st.sampled_from(["", "v", "x y", "${A}", "}", ":-", "$"]), max_size=6)
# Text made of the pieces the syntax is built from, so variables, defaults and near misses all occur.
PIECES = st.one_of(
    st.sampled_from(["${", "}", ":-", ":", "-", "$", "{", "A", "B", "_X", "GITLAB_URL", "a1", "1", " ", "\n", "é"]),
    st.text(max_size=4),
)
TEXTS = st.lists(PIECES, max_size=20).map("".join)


def _is_name_start(ch: str) -> bool:
    return ch.isascii() and (ch.isalpha() or ch == "_")


def _is_name_char(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch == "_")


def reference(text: str, env: Mapping[str, str]) -> str:
    """Left to right: ``${NAME}`` is the variable (empty when unset); ``${NAME:-default}`` (default up to
    the first ``}``) is the variable unless it is unset or empty, then the default; anything else is kept."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("${", i) and i + 2 < len(text) and _is_name_start(text[i + 2]):
            j = i + 3
            while j < len(text) and _is_name_char(text[j]):
                j += 1
            name = text[i + 2 : j]
            if text.startswith("}", j):
                out.append(env.get(name, ""))
                i = j + 1
                continue
            close = text.find("}", j + 2)
            if text.startswith(":-", j) and close != -1:
                value = env.get(name, "")
                out.append(value if value else text[j + 2 : close])
                i = close + 1
                continue
        out.append(text[i])
        i += 1
    return "".join(out)


@PROPERTY
@given(text=TEXTS, env=ENVS)
def test_matches_the_reference_semantics(text: str, env: dict[str, str]) -> None:
    """Interpolation equals a plain left-to-right reading of ``${VAR}`` and ``${VAR:-default}``."""
    assert interpolate(text, env) == reference(text, env)


@PROPERTY
@given(text=st.text().filter(lambda t: "${" not in t), env=ENVS)
def test_text_without_a_variable_is_unchanged(text: str, env: dict[str, str]) -> None:
    """Text without ``${`` comes back as it is, whatever the environment."""
    assert interpolate(text, env) == text


@PROPERTY
@given(name=NAMES, value=st.text(), default=st.text().filter(lambda d: "}" not in d), env=ENVS)
def test_a_set_variable_wins_over_its_default(name: str, value: str, default: str, env: dict[str, str]) -> None:
    """``${VAR:-d}`` is the variable's value when it is set and not empty, else ``d``; ``${VAR}`` is the value."""
    env = {**env, name: value}
    assert interpolate(f"${{{name}:-{default}}}", env) == (value or default)
    assert interpolate(f"${{{name}}}", env) == value


@PROPERTY
@given(name=NAMES, default=st.text().filter(lambda d: "}" not in d), env=ENVS)
def test_an_unset_variable_is_its_default_or_empty(name: str, default: str, env: dict[str, str]) -> None:
    """An unset variable reads as its default, or as empty text without one."""
    env = {k: v for k, v in env.items() if k != name}
    assert interpolate(f"<${{{name}:-{default}}}>", env) == f"<{default}>"
    assert interpolate(f"<${{{name}}}>", env) == "<>"
