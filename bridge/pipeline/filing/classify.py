"""Report -> severity, kind and product-owner flag, from ``mappings/severity.yaml``.

Pure: no I/O, no clock. Every rule that fires is named so support can see why.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from typing import TypeVar

from bridge.domain import Classification, Kind, Report, Severity
from bridge.mappings import SeverityRules

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


def classify(report: Report, rules: SeverityRules) -> Classification:
    candidates: list[tuple[Severity, str]] = []
    po_reasons: list[str] = []

    if report.declared_priority:
        for severity in sorted(rules.declared_priority, key=lambda s: -s.rank):
            phrase = matching_phrase(report.declared_priority, rules.declared_priority[severity])
            if phrase:
                candidates.append((severity, f"declared-priority:{phrase}"))
                break

    text = "\n".join(part for part in (report.title, report.description, report.impact) if part)
    for rule in rules.keywords:
        phrase = matching_phrase(text, rule.phrases)
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
