"""Classification from the shipped mappings/severity.yaml, in Danish and English."""

from __future__ import annotations

import pytest

from bridge.domain import Kind, Report, Severity
from bridge.mappings import Mappings, SeverityRules
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


# --- the engine, with rules made for the test (independent of the shipped wording) ---------------

RULES = SeverityRules.model_validate(
    {
        "default": "medium",
        "hotfix_severities": ["critical"],
        "declared_priority": {"critical": ["alpha"], "high": ["bravo"], "medium": ["charlie"], "low": ["delta"]},
        "keywords": [
            {"name": "outage", "severity": "critical", "phrases": ["down", "nede"]},
            {"name": "leak", "severity": "critical", "po_review": True, "phrases": ["data leak"]},
            {"name": "broken", "severity": "high", "phrases": ["broken", "does not work"]},
            {"name": "cosmetic", "severity": "low", "phrases": ["typo"]},
        ],
        "high_impact_phrases": ["all customers", "revenue"],
        "po_review_severities": ["critical"],
        "organization_tiers": {
            "gold": {"min_severity": "high", "po_review": True},
            "silver": {"min_severity": "medium"},
            "bronze": {"po_review": True},
        },
        "organizations": {"Straße GmbH": "gold", "Kunde \u00c5/S": "silver", "Plain Ltd": "bronze"},
        "products": {
            "payments": {"min_severity": "high", "po_review": True},
            "reports": {"min_severity": "low"},
            "admin": {"po_review": True},
        },
    }
)
WORD = {Severity.CRITICAL: "alpha", Severity.HIGH: "bravo", Severity.MEDIUM: "charlie", Severity.LOW: "delta"}


@pytest.mark.parametrize(
    ("text", "phrase", "hit"),
    [
        ("total breakdown", "down", False),  # the left edge of a word counts as much as the right
        ("slowdown at night", "down", False),
        ("downtime", "down", False),
        ("it is down.", "down", True),
        ("(down)", "down", True),
        ("down", "down", True),
        ("xdoes not work", "does not work", False),
        ("it does not workx", "does not work", False),
        ("it does not work, sadly", "does not work", True),
        ("ønede", "nede", False),  # æøå are letters, not boundaries
        ("nedeå", "nede", False),
        ("er nede!", "nede", True),
    ],
)
def test_phrases_match_only_at_word_boundaries_on_both_sides(text: str, phrase: str, hit: bool) -> None:
    """A phrase is found only where a word starts and ends, on the left as on the right."""
    assert (matching_phrase(text, [phrase]) == phrase) is hit


def test_the_first_matching_phrase_in_rule_order_is_named() -> None:
    """Of several phrases that occur, the one listed first is reported, not the one written first."""
    assert matching_phrase("broken, does not work", ["does not work", "broken"]) == "does not work"
    assert matching_phrase("nothing here", ["does not work", "broken"]) is None
    assert matching_phrase("", ["x"]) is None


@pytest.mark.parametrize("higher", list(Severity))
@pytest.mark.parametrize("lower", list(Severity))
def test_declared_priority_takes_the_most_severe_word(higher: Severity, lower: Severity) -> None:
    """A declared priority naming two levels ("minor, normal") counts as the more severe one, in any order."""
    if higher.rank < lower.rank:
        higher, lower = lower, higher
    for declared in (f"{WORD[lower]} {WORD[higher]}", f"{WORD[higher]}, {WORD[lower]}"):
        result = classify(Report(title="x", description="y", declared_priority=declared), RULES)
        assert result.severity is higher
        assert result.rules[0] == f"declared-priority:{WORD[higher]}"


def test_declared_priority_that_names_nothing_known_is_ignored() -> None:
    """An unknown priority word does not count; the default applies."""
    result = classify(Report(title="x", description="y", declared_priority="whenever"), RULES)
    assert (result.severity, result.rules) == (Severity.MEDIUM, ("default",))


def test_every_rule_that_fired_is_named_in_order() -> None:
    """Support sees every rule that fired, in a fixed order: declared priority, keywords in rule order,
    organisation tier, product, then each reason for the product owner's review."""
    result = classify(
        Report(
            title="Checkout is broken",
            description="A typo, and the shop is down",
            impact="Looks like a data leak for all customers",
            declared_priority="delta",
            organization="STRASSE GMBH",
            product="Payments",
        ),
        RULES,
    )
    assert result.severity is Severity.CRITICAL
    assert result.kind is Kind.HOTFIX
    assert result.po_review is True
    assert result.rules == (
        "declared-priority:delta",
        "keyword:outage(down)",
        "keyword:leak(data leak)",
        "keyword:broken(broken)",
        "keyword:cosmetic(typo)",
        "organization-tier:gold",
        "product:Payments",
        "po-review:keyword:leak",
        "po-review:organization-tier:gold",
        "po-review:product:Payments",
        "po-review:high-impact(all customers)",
        "po-review:severity:critical",
    )


@pytest.mark.parametrize(
    ("report", "severity", "po_reasons"),
    [
        (Report(title="data leak", description="d"), Severity.CRITICAL, ["keyword:leak", "severity:critical"]),
        (Report(title="typo", description="d", organization="Plain Ltd"), Severity.LOW, ["organization-tier:bronze"]),
        (Report(title="typo", description="d", organization="straße gmbh"), Severity.HIGH, ["organization-tier:gold"]),
        (Report(title="typo", description="d", product="ADMIN"), Severity.LOW, ["product:ADMIN"]),
        (Report(title="typo", description="d", product="payments"), Severity.HIGH, ["product:payments"]),
        (Report(title="typo", description="d", impact="hurts revenue"), Severity.LOW, ["high-impact(revenue)"]),
        (Report(title="typo", description="costs revenue"), Severity.LOW, ["high-impact(revenue)"]),
        (Report(title="broken", description="d"), Severity.HIGH, []),
        (Report(title="down", description="d"), Severity.CRITICAL, ["severity:critical"]),
        (Report(title="typo", description="d", organization="Kunde Å/S"), Severity.MEDIUM, []),
        (Report(title="typo", description="d", product="reports"), Severity.LOW, []),
    ],
)
def test_product_owner_flag_and_its_reasons(report: Report, severity: Severity, po_reasons: list[str]) -> None:
    """Keywords, tiers and products flag the product owner only where their rule says so, and say which did."""
    result = classify(report, RULES)
    assert result.severity is severity
    assert result.po_review is bool(po_reasons)
    assert [r.removeprefix("po-review:") for r in result.rules if r.startswith("po-review:")] == po_reasons


def test_high_impact_is_read_from_impact_and_description_not_title() -> None:
    """A high-impact phrase counts in the impact or description (also as their last words), not the title."""
    at_the_end = classify(Report(title="typo", description="d", impact="This hits all customers"), RULES)
    assert "po-review:high-impact(all customers)" in at_the_end.rules
    in_title = classify(Report(title="typo for all customers", description="d"), RULES)
    assert in_title.po_review is False


@pytest.mark.parametrize(
    ("organization", "tier"),
    [
        ("Straße GmbH", "gold"),
        ("STRASSE GMBH", "gold"),  # full case folding, not just lower()
        ("straße gmbh", "gold"),
        ("Kunde \u00c5/S", "silver"),
        ("kunde A\u030a/s", "silver"),  # Å written as A + combining ring
        ("Plain Ltd", "bronze"),
        ("Plain", None),
        ("Plain Ltd.", None),
        ("", None),
        (None, None),
    ],
)
def test_organization_names_resolve_whatever_their_case_and_form(organization: str | None, tier: str | None) -> None:
    """Organisation names are matched case-insensitively and in any Unicode form, but otherwise exactly."""
    result = classify(Report(title="typo", description="d", organization=organization), RULES)
    named = {r.removeprefix("po-review:") for r in result.rules if "organization-tier:" in r}
    assert named == ({f"organization-tier:{tier}"} if tier else set())


@pytest.mark.parametrize(
    ("product", "floor"), [("PAYMENTS", True), ("Payments", True), ("payment", False), ("", False), (None, False)]
)
def test_product_names_resolve_case_insensitively(product: str | None, floor: bool) -> None:
    """A product is found whatever its case, and its floor applies."""
    result = classify(Report(title="typo", description="d", product=product), RULES)
    assert result.severity is (Severity.HIGH if floor else Severity.LOW)


def test_a_floor_raises_but_never_lowers() -> None:
    """Tier and product floors lift a milder severity and leave a more severe one alone, but are named."""
    critical = classify(Report(title="down", description="d", organization="Kunde Å/S", product="payments"), RULES)
    assert critical.severity is Severity.CRITICAL
    assert {"organization-tier:silver", "product:payments"} <= set(critical.rules)
    low = classify(Report(title="typo", description="d", organization="Kunde Å/S"), RULES)
    assert low.severity is Severity.MEDIUM
    both = classify(Report(title="typo", description="d", organization="Kunde Å/S", product="payments"), RULES)
    assert both.severity is Severity.HIGH


def test_the_configured_default_kinds_and_review_severities_apply() -> None:
    """Nothing fires: the configured default; hotfix and review severities come from the rules, not code."""
    rules = RULES.model_copy(
        update={
            "default": Severity.LOW,
            "hotfix_severities": [Severity.CRITICAL, Severity.HIGH],
            "po_review_severities": [Severity.HIGH],
        }
    )
    plain = classify(Report(title="x", description="y"), rules)
    assert (plain.severity, plain.kind, plain.po_review, plain.rules) == (
        Severity.LOW,
        Kind.BUGFIX,
        False,
        ("default",),
    )
    broken = classify(Report(title="broken", description="y"), rules)
    assert (broken.severity, broken.kind, broken.po_review) == (Severity.HIGH, Kind.HOTFIX, True)
    assert broken.rules[-1] == "po-review:severity:high"
    down = classify(Report(title="down", description="y"), rules)
    assert (down.kind, down.po_review) == (Kind.HOTFIX, False)
