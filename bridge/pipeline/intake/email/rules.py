"""``mappings/email.yaml``: who a sender is, which language, and what a reply means.

Pure: the model, its loader, and the lookups the email intake makes with it.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bridge.errors import Problem
from bridge.yamlfile import YamlFileError, load_yaml, validate

_DOMAIN = re.compile(r"^[\w-]+(?:\.[\w-]+)*$")


def normalise(text: str) -> str:
    """Case- and form-insensitive text, with typographic apostrophes made plain (as ``classify``)."""
    return unicodedata.normalize("NFC", text).casefold().replace("\u2019", "'")


@lru_cache(maxsize=1024)
def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    # Whole words only, as in classify: "løst" must not fire on "løsten"; \w knows æøå.
    words = [re.escape(w) for w in normalise(phrase).split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _clean_phrases(phrases: list[str]) -> list[str]:
    cleaned = [p.strip() for p in phrases]
    if any(not p for p in cleaned):
        raise ValueError("phrases must not be empty")
    return cleaned


class ReplyRules(_Model):
    """How the text of a reply to a resolved ticket is read. Conservative by design: a reply
    reopens only when it clearly says the problem is still there and nothing says it is fixed."""

    not_fixed: list[str] = Field(min_length=1)
    """Phrases that clearly say the problem is still there ("virker stadig ikke", "same error")."""
    fixed: list[str] = Field(min_length=1)
    """Phrases that say it works ("virker nu", "works now"); they never reopen."""
    thanks: list[str] = []
    """Plain thanks: enough to leave a reply alone when nothing else is said."""

    _check = field_validator("not_fixed", "fixed", "thanks")(_clean_phrases)


class EmailRules(_Model):
    domains: dict[str, str] = {}
    """Sender's email domain -> organisation name (for routing and classification); subdomains match."""
    locales: dict[str, str] = {"dk": "da"}
    """Top-level domain (or whole domain) of the sender -> reporter language, when the email does not say."""
    default_locale: str = "en"
    replies: ReplyRules

    @field_validator("domains", "locales")
    @classmethod
    def _domains_valid(cls, value: dict[str, str]) -> dict[str, str]:
        cleaned: dict[str, str] = {}
        for domain, target in value.items():
            key = domain.strip().lower().lstrip("@").lstrip(".")
            if not _DOMAIN.match(key):
                raise ValueError(f"{domain!r} is not a domain name")
            if not str(target).strip():
                raise ValueError(f"{domain!r} maps to nothing")
            cleaned[key] = str(target).strip()
        return cleaned

    @field_validator("default_locale")
    @classmethod
    def _supported(cls, value: str) -> str:
        if value not in ("da", "en"):
            raise ValueError("must be da or en")
        return value

    @field_validator("locales")
    @classmethod
    def _locales_supported(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted({v for v in value.values() if v not in ("da", "en")})
        if bad:
            raise ValueError(f"unsupported locale(s): {', '.join(bad)} (da or en)")
        return value


def _suffixes(domain: str) -> list[str]:
    """``mail.kunde.dk`` -> ``mail.kunde.dk``, ``kunde.dk``, ``dk``: the most specific first."""
    parts = domain.lower().strip(".").split(".")
    return [".".join(parts[i:]) for i in range(len(parts))]


def domain_of(address: str | None) -> str | None:
    if not address or "@" not in address:
        return None
    domain = address.rpartition("@")[2].strip().strip(">").lower()
    return domain or None


def organization_for(rules: EmailRules, address: str | None) -> str | None:
    """The organisation of a sender's domain (or a parent domain), if mapped."""
    domain = domain_of(address)
    if domain is None:
        return None
    for candidate in _suffixes(domain)[:-1]:  # never a bare top-level domain
        if candidate in rules.domains:
            return rules.domains[candidate]
    return None


def locale_for(rules: EmailRules, address: str | None, declared: str | None) -> str:
    """The email's own language when it says, else the sender's domain, else the default."""
    if declared in ("da", "en"):
        return declared
    domain = domain_of(address)
    if domain is not None:
        for candidate in _suffixes(domain):
            if candidate in rules.locales:
                return rules.locales[candidate]
    return rules.default_locale


class ReplyVerdict(enum.StrEnum):
    NOT_FIXED = "not_fixed"
    """Clearly still broken: reopen (or a linked ticket when long after resolution)."""
    FIXED = "fixed"
    """Works, or just thanks: a comment, nothing else."""
    UNCLEAR = "unclear"
    """Says neither, or both: a comment, and a person should look."""


def _spans(text: str, phrases: list[str]) -> list[tuple[int, int]]:
    found: list[tuple[int, int]] = []
    for phrase in phrases:
        found += [m.span() for m in _phrase_pattern(phrase).finditer(text)]
    return found


def _without(text: str, spans: list[tuple[int, int]]) -> str:
    chars = list(text)
    for start, end in spans:
        for i in range(start, end):
            chars[i] = " "
    return "".join(chars)


def read_reply(rules: ReplyRules, text: str) -> ReplyVerdict:
    """What a reply says about the fix.

    "Not fixed" phrases are found first and blanked out, so "ikke løst" does not also count as
    "løst". Then: not-fixed alone -> NOT_FIXED; fixed (or plain thanks) alone -> FIXED; both, or
    neither -> UNCLEAR.
    """
    haystack = normalise(text)
    broken = _spans(haystack, rules.not_fixed)
    rest = _without(haystack, broken)
    works = bool(_spans(rest, rules.fixed))
    if broken:
        return ReplyVerdict.UNCLEAR if works else ReplyVerdict.NOT_FIXED
    if works or _spans(rest, rules.thanks):
        return ReplyVerdict.FIXED
    return ReplyVerdict.UNCLEAR


def load_email_rules(path: Path, problems: list[Problem], env: Mapping[str, str] | None = None) -> EmailRules | None:
    """Read and validate ``email.yaml``; problems are appended, None returned if unusable."""
    try:
        loaded = load_yaml(path, env or {})
    except YamlFileError as exc:
        problems.append(exc.problem)
        return None
    return validate(EmailRules, loaded, problems)
