"""Read YAML files keeping the line of every key, with ``${VAR}`` interpolation.

Validation errors can then name the file, the dotted key and the line, which is
what an operator needs to fix a bad deployment in one go.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from bridge.errors import Problem

M = TypeVar("M", bound=BaseModel)

_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Replace ``${VAR}`` (empty when unset) and ``${VAR:-default}`` (default when unset or empty)."""

    def substitute(match: re.Match[str]) -> str:
        value = env.get(match["name"], "")
        if value == "" and match["default"] is not None:
            return match["default"]
        return value

    return _VAR.sub(substitute, text)


@dataclass
class LoadedYaml:
    path: str
    data: Any
    lines: dict[tuple[str | int, ...], int] = field(default_factory=dict)
    """1-based line of each key path, e.g. ``("trackers", "gitlab", "url") -> 12``."""

    def line_of(self, loc: tuple[str | int, ...]) -> int | None:
        # Walk up to the closest ancestor we know: a missing key is reported at its parent.
        for end in range(len(loc), -1, -1):
            line = self.lines.get(tuple(loc[:end]))
            if line is not None:
                return line
        return None


def load_yaml(path: Path, env: Mapping[str, str] | None = None) -> LoadedYaml:
    """Parse ``path``; raise ``YamlFileError`` with file and line on unreadable or malformed YAML."""
    env = os.environ if env is None else env
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise YamlFileError(Problem(file=str(path), key="", message=f"cannot read file: {exc.strerror}")) from None
    except UnicodeDecodeError:
        raise YamlFileError(Problem(file=str(path), key="", message="file is not valid UTF-8")) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise YamlFileError(Problem(file=str(path), key="", line=line, message=f"invalid YAML: {reason}")) from None
    loaded = LoadedYaml(path=str(path), data=None)
    constructor = yaml.SafeLoader("")
    loaded.data = {} if node is None else _build(node, (), loaded.lines, env, constructor)
    return loaded


class YamlFileError(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def _build(
    node: yaml.Node,
    loc: tuple[str | int, ...],
    lines: dict[tuple[str | int, ...], int],
    env: Mapping[str, str],
    constructor: yaml.SafeLoader,
) -> Any:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = constructor.construct_object(key_node)
            child = (*loc, key)
            lines[child] = key_node.start_mark.line + 1
            result[key] = _build(value_node, child, lines, env, constructor)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*loc, i), lines, env, constructor) for i, item in enumerate(node.value)]
    assert isinstance(node, yaml.ScalarNode)
    if node.tag == "tag:yaml.org,2002:str" and "${" in node.value:
        value = interpolate(node.value, env)
        # An unset variable reads as "not configured", not as an empty string.
        return None if value == "" else value
    return constructor.construct_object(node)


def validate(model: type[M], loaded: LoadedYaml, problems: list[Problem]) -> M | None:
    """Validate ``loaded.data`` against ``model``; append one Problem per error."""
    try:
        return model.model_validate(loaded.data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            problems.append(
                Problem(
                    file=loaded.path,
                    key=".".join(str(part) for part in loc),
                    line=loaded.line_of(loc),
                    message=_message(err),
                )
            )
        return None


def _message(err: Any) -> str:
    msg = str(err["msg"])
    if err["type"] == "missing":
        return "required"
    if err["type"] == "extra_forbidden":
        return "unknown key (a typo?)"
    return msg.removeprefix("Value error, ")
