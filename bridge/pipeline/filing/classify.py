"""Report -> severity, kind and product-owner flag, from ``mappings/severity.yaml``.

Pure: no I/O, no clock. Every rule that fires is named so support can see why.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice
from typing import TypeVar

from bridge.domain import Classification, Kind, Report, Severity
from bridge.mappings import Negations, SeverityRules

V = TypeVar("V")


def normalise(text: str) -> str:
    """Case- and form-insensitive text, with typographic apostrophes made plain."""
    return unicodedata.normalize("NFC", text).casefold().replace("\u2019", "'")


@lru_cache(maxsize=4096)
def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    # Whole words only: "nede" must not fire on "nedenfor"; \w is Unicode-aware, so æøå count.
    words = [re.escape(w) for w in normalise(phrase).split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)")


def matching_phrase(text: str, phrases: Iterable[str]) -> str | None:
    """The first phrase that occurs in ``text`` as whole words, or None."""
    haystack = normalise(text)
    for phrase in phrases:
        if _phrase_pattern(phrase).search(haystack):
            return phrase
    return None


@dataclass(frozen=True)
class _Hit:
    group: int
    """Which list the phrase came from (a severity's, a keyword rule's)."""
    phrase: str
    start: int
    end: int


def standing_phrases(text: str, groups: Sequence[Sequence[str]], negations: Negations) -> list[str | None]:
    """For each group of phrases, the first (in list order) that occurs in ``text`` and counts, or None.

    An occurrence does not count when it lies inside a longer occurrence of another phrase (the
    reporter wrote "ikke vigtig", not "vigtig"), or when it is negated ("ikke kritisk", "not so
    urgent", "det haster ikke"): a negated phrase never raises the severity.
    """
    haystack = normalise(text)
    hits = sorted(
        (
            _Hit(group=index, phrase=phrase, start=found.start(), end=found.end())
            for index, phrases in enumerate(groups)
            for phrase in phrases
            for found in islice(_phrase_pattern(phrase).finditer(haystack), _MAX_HITS_PER_PHRASE)
        ),
        key=lambda hit: (hit.start, -hit.end),
    )
    present: set[tuple[int, str]] = set()
    reach = -1  # the furthest end of the hits that start before the current one
    group_start, group_end = -1, -1  # the current start and the end of its longest hit
    for hit in hits:
        if hit.start != group_start:
            reach = max(reach, group_end)
            group_start, group_end = hit.start, hit.end
        inside = reach >= hit.end or group_end > hit.end
        if not inside and not _negated(haystack, hit, negations):
            present.add((hit.group, hit.phrase))
    return [
        next((phrase for phrase in phrases if (index, phrase) in present), None) for index, phrases in enumerate(groups)
    ]


_MAX_HITS_PER_PHRASE = 50
"""Occurrences of one phrase looked at: bounds the work on a text that repeats a phrase thousands of times."""
_NEGATION_REACH = 120
"""Characters before a phrase searched for a negation (the negation, one word and the spaces between)."""


def _negated(haystack: str, hit: _Hit, negations: Negations) -> bool:
    before, after = _negation_patterns(tuple(negations.before), tuple(negations.after))
    return bool(
        (before is not None and before.search(haystack, max(0, hit.start - _NEGATION_REACH), hit.start))
        or (after is not None and after.match(haystack, hit.end))
    )


@lru_cache(maxsize=64)
def _negation_patterns(
    before: tuple[str, ...], after: tuple[str, ...]
) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    """A negation right before a phrase (at most one word between), and right after it."""

    def alternatives(words: tuple[str, ...]) -> str:
        return "|".join(r"\s+".join(re.escape(w) for w in normalise(word).split()) for word in words)

    # Only spaces in between: a line break (another field) or punctuation ends the reach of a negation.
    before_pattern = (
        re.compile(r"(?<!\w)(?:" + alternatives(before) + r")(?:[ \t]+[\w'-]+)?[ \t]+$") if before else None
    )
    after_pattern = re.compile(r"[ \t]+(?:" + alternatives(after) + r")(?!\w)") if after else None
    return before_pattern, after_pattern


def classify(report: Report, rules: SeverityRules) -> Classification:
    candidates: list[tuple[Severity, str]] = []
    po_reasons: list[str] = []

    if report.declared_priority:
        severities = sorted(rules.declared_priority, key=lambda s: -s.rank)
        declared = standing_phrases(
            report.declared_priority, [rules.declared_priority[s] for s in severities], rules.negations
        )
        # Checked from the most severe down: a priority naming two levels counts as the more severe.
        for severity, phrase in zip(severities, declared, strict=True):
            if phrase:
                candidates.append((severity, f"declared-priority:{phrase}"))
                break

    text = "\n".join(part for part in (report.title, report.description, report.impact) if part)
    keywords = standing_phrases(text, [rule.phrases for rule in rules.keywords], rules.negations)
    for rule, phrase in zip(rules.keywords, keywords, strict=True):
        if phrase:
            candidates.append((rule.severity, f"keyword:{rule.name}({phrase})"))
            if rule.po_review:
                po_reasons.append(f"keyword:{rule.name}")

    floor_reasons: list[tuple[Severity, str]] = []
    tier_name = _organization_tier(report.organization, rules)
    if tier_name:
        tier = rules.organization_tiers[tier_name]
        if tier.min_severity:
            floor_reasons.append((tier.min_severity, f"organization-tier:{tier_name}"))
        if tier.po_review:
            po_reasons.append(f"organization-tier:{tier_name}")
    product = _lookup(rules.products, report.product)
    if product is not None:
        if product.min_severity:
            floor_reasons.append((product.min_severity, f"product:{report.product}"))
        if product.po_review:
            po_reasons.append(f"product:{report.product}")

    if candidates:
        severity, _ = max(candidates, key=lambda c: c[0].rank)
    else:
        severity = rules.default
        candidates.append((severity, "default"))
    fired = [reason for _, reason in candidates]
    for floor, reason in floor_reasons:
        if floor.rank > severity.rank:
            severity = floor
        fired.append(reason)

    impact_text = "\n".join(part for part in (report.impact, report.description) if part)
    impact_phrase = matching_phrase(impact_text, rules.high_impact_phrases)
    if impact_phrase:
        po_reasons.append(f"high-impact({impact_phrase})")
    if severity in rules.po_review_severities:
        po_reasons.append(f"severity:{severity.value}")
    fired.extend(f"po-review:{reason}" for reason in po_reasons)

    return Classification(
        severity=severity,
        kind=Kind.HOTFIX if severity in rules.hotfix_severities else Kind.BUGFIX,
        po_review=bool(po_reasons),
        rules=tuple(dict.fromkeys(fired)),
    )


def _organization_tier(organization: str | None, rules: SeverityRules) -> str | None:
    return _lookup(rules.organizations, organization)


def _lookup(table: dict[str, V], name: str | None) -> V | None:
    """Case-insensitive dictionary lookup, as people type names inconsistently."""
    if not name:
        return None
    wanted = normalise(name)
    return next((value for key, value in table.items() if normalise(key) == wanted), None)
