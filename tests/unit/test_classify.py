"""Classification from the shipped mappings/severity.yaml, in Danish and English."""

from __future__ import annotations

import pytest

from bridge.domain import Kind, Report, Severity
from bridge.mappings import Mappings
from bridge.pipeline.filing.classify import classify, matching_phrase


def report(title: str = "Something", description: str = "Details", **kw: str | None) -> Report:
    return Report(title=title, description=description, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (report(declared_priority="Kritisk"), Severity.CRITICAL),
        (report(declared_priority="critical"), Severity.CRITICAL),
        (report(declared_priority="Det haster!"), Severity.CRITICAL),
        (report(declared_priority="URGENT"), Severity.CRITICAL),
        (report(declared_priority="Høj prioritet"), Severity.HIGH),
        (report(declared_priority="high priority"), Severity.HIGH),
        (report(declared_priority="Lav"), Severity.LOW),
        (report(declared_priority="low priority"), Severity.LOW),
        (report(declared_priority="whenever"), Severity.MEDIUM),
        (report(title="Chatten er nede"), Severity.CRITICAL),
        (report(title="The widget is down for everyone"), Severity.CRITICAL),
        (report(description="Vi har oplevet datatab i nat"), Severity.CRITICAL),
        (report(description="We saw data loss after the update"), Severity.CRITICAL),
        (report(title="Knappen virker ikke"), Severity.HIGH),
        (report(title="Export does not work"), Severity.HIGH),
        (report(title="Betaling fejler"), Severity.HIGH),
        (report(title="Stavefejl på forsiden"), Severity.LOW),
        (report(title="Typo on the login page"), Severity.LOW),
        (report(title="Spørgsmål om rapporten"), Severity.MEDIUM),
        (report(title="Se nedenfor", description="Detaljer nedenunder"), Severity.MEDIUM),
        (report(title="Typo", declared_priority="kritisk"), Severity.CRITICAL),
        (report(title="Stavefejl", impact="Ingen af vores kunder kan skrive til os"), Severity.CRITICAL),
    ],
)
def test_severity(case: Report, expected: Severity, mappings: Mappings) -> None:
    """Declared priority words and keywords in both languages give the expected severity."""
    assert classify(case, mappings.severity).severity is expected


def test_contract_example_is_a_flagged_hotfix(mappings: Mappings) -> None:
    """The CONTRACT's example report: critical hotfix, flagged for the product owner, with reasons."""
    result = classify(
        report(
            title="Chat-widget indlæses ikke",
            description="Siden viser kun en spinner siden i morges.",
            impact="Ingen af vores kunder kan skrive til os",
            declared_priority="Kritisk",
            product="widget",
            organization="Kunde A/S",
        ),
        mappings.severity,
    )
    assert result.severity is Severity.CRITICAL
    assert result.kind is Kind.HOTFIX
    assert result.po_review is True
    assert "declared-priority:kritisk" in result.rules
    assert any(r.startswith("keyword:outage") for r in result.rules)
    assert "organization-tier:enterprise" in result.rules
    assert any(r.startswith("po-review:high-impact") for r in result.rules)


def test_non_critical_is_bugfix_without_po_flag(mappings: Mappings) -> None:
    """A plain medium report is a bugfix and not flagged."""
    result = classify(report(title="Rapporten viser forkert dato"), mappings.severity)
    assert (result.severity, result.kind, result.po_review) == (Severity.MEDIUM, Kind.BUGFIX, False)
    assert result.rules == ("default",)


def test_organization_tier_raises_the_floor(mappings: Mappings) -> None:
    """An enterprise customer's medium report becomes high; case and spacing of the name don't matter."""
    result = classify(report(title="Rapporten viser forkert dato", organization="kunde a/s"), mappings.severity)
    assert result.severity is Severity.HIGH
    assert result.kind is Kind.BUGFIX
    assert "organization-tier:enterprise" in result.rules


def test_product_floor(mappings: Mappings) -> None:
    """Reports about the payments product are at least high."""
    result = classify(report(title="Knap har forkert farve", product="Payments"), mappings.severity)
    assert result.severity is Severity.HIGH


def test_high_impact_flags_po_without_raising_severity(mappings: Mappings) -> None:
    """ "Alle kunder" in the impact flags the product owner even for a cosmetic issue."""
    result = classify(report(title="Typo i menuen", impact="Alle kunder ser det"), mappings.severity)
    assert (result.severity, result.po_review) == (Severity.LOW, True)


def test_security_keyword_flags_po(mappings: Mappings) -> None:
    """Security reports are critical and flagged."""
    result = classify(report(title="Muligt sikkerhedshul i login"), mappings.severity)
    assert (result.severity, result.po_review) == (Severity.CRITICAL, True)


@pytest.mark.parametrize(
    ("text", "phrase", "hit"),
    [
        ("Systemet er NEDE", "nede", True),
        ("se nedenfor", "nede", False),
        ("it does  not\nwork", "does not work", True),
        ("It doesn\u2019t work", "doesn't work", True),
        ("Høj prioritet", "høj prioritet", True),
        ("højprioritet", "høj", False),
    ],
)
def test_phrase_matching_is_whole_word_and_case_insensitive(text: str, phrase: str, hit: bool) -> None:
    """Phrases match whole words only, across whitespace, ignoring case and curly apostrophes."""
    assert (matching_phrase(text, [phrase]) is not None) is hit
