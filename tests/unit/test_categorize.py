"""Report -> category, from the shipped ``mappings/categories.yaml`` and from small rule sets."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bridge.domain import Channel, Report
from bridge.errors import ConfigError
from bridge.mappings import CategoryRules, Mappings, load_mappings
from bridge.pipeline.filing.categorize import categorize

REPO = Path(__file__).resolve().parents[2]


def report(title: str = "Something", description: str = "", **fields: str) -> Report:
    return Report(title=title, description=description, **fields)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def shipped() -> CategoryRules:
    return load_mappings(REPO / "mappings").categories


def test_the_shipped_file_loads_with_the_areas_support_triages_by(shipped: CategoryRules) -> None:
    assert shipped.default == "other"
    assert set(shipped.names) == {
        "widget", "chat-history", "billing", "login", "integrations", "admin", "reports", "other",
    }  # fmt: skip
    for rule in shipped.categories:
        assert rule.text.da
        assert rule.text.en


@pytest.mark.parametrize(
    ("title", "description", "expected", "rule"),
    [
        ("Chat-widget indlæses ikke", "Siden viser kun en hvid boks", "widget", "phrase:widget"),
        ("The chat window is blank", "", "widget", "phrase:chat window"),
        ("Kan ikke logge ind", "Vi får fejl ved SSO", "login", "phrase:logge ind"),
        ("Cannot sign in", "", "login", "phrase:sign in"),
        ("Forkert faktura", "Fakturaen for november er dobbelt", "billing", "phrase:faktura"),
        ("Invoice is wrong", "", "billing", "phrase:invoice"),
        ("Samtalehistorik mangler", "", "chat-history", "phrase:samtalehistorik"),
        # the narrower area wins over the broad "the chat"
        ("The chat history is empty", "the chat shows nothing", "chat-history", "phrase:chat history"),
        ("Zendesk-integrationen virker ikke", "", "integrations", "phrase:integrationen"),
        ("Statistik viser forkerte tal", "", "reports", "phrase:statistik"),
        ("Kan ikke ændre indstillinger", "", "admin", "phrase:indstillinger"),
        ("Noget er galt", "Det virker bare ikke", "other", "default"),
    ],
)
def test_danish_and_english_words_choose_the_area(
    shipped: CategoryRules, title: str, description: str, expected: str, rule: str
) -> None:
    decision = categorize(report(title, description), shipped)
    assert (decision.name, decision.rule) == (expected, rule)
    assert decision.reason == f"category:{expected}({rule})"


def test_phrases_match_whole_words_only(shipped: CategoryRules) -> None:
    """ "apis" and "widgets" are not "api" and "widget"; "rapid" does not contain "api" either."""
    assert categorize(report("Rapid replies stopped", "our apisode of widgetry"), shipped).name == "other"


def test_impact_is_read_too(shipped: CategoryRules) -> None:
    assert categorize(report("Fejl", "", impact="Ingen kan betale"), shipped).name == "other"
    assert categorize(report("Fejl", "", impact="Ingen betalinger går igennem"), shipped).name == "billing"


def test_the_product_field_wins_over_the_words(shipped: CategoryRules) -> None:
    decision = categorize(report("The widget shows an old invoice", product="Billing"), shipped)
    assert (decision.name, decision.rule) == ("billing", "product:Billing")


def test_an_unknown_product_falls_back_to_the_words(shipped: CategoryRules) -> None:
    assert categorize(report("Widget is blank", product="mobile-app"), shipped).name == "widget"


def test_the_address_an_email_was_sent_to(shipped: CategoryRules) -> None:
    email = report("Hej", "Der er en fejl", channel=Channel.EMAIL)  # type: ignore[arg-type]
    decision = categorize(email, shipped, recipient="Faktura@Support.Example")
    assert (decision.name, decision.rule) == ("billing", "address:faktura")
    assert categorize(email, shipped, recipient="support@example.com").name == "other"


def test_rule_order_decides_between_two_matching_rules() -> None:
    rules = CategoryRules.model_validate(
        {
            "default": "misc",
            "categories": [
                {"name": "first", "text": {"da": "A", "en": "A"}, "phrases": ["shared", "only-first"]},
                {"name": "second", "text": {"da": "B", "en": "B"}, "phrases": ["shared"], "products": ["p2"]},
                {"name": "misc", "text": {"da": "C", "en": "C"}},
            ],
        }
    )
    assert categorize(report("shared word"), rules).name == "first"
    # a product of a later rule beats a phrase of an earlier one
    assert categorize(report("only-first", product="P2"), rules).name == "second"


# --- validation: file, line and key ------------------------------------------------------------


def _with_categories(tmp_path: Path, text: str) -> Path:
    directory = tmp_path / "mappings"
    shutil.copytree(REPO / "mappings", directory)
    (directory / "categories.yaml").write_text(text, encoding="utf-8")
    return directory


def _load_problems(directory: Path) -> list[tuple[str, str, int | None, str]]:
    with pytest.raises(ConfigError) as info:
        load_mappings(directory)
    return [(Path(p.file).name, p.key, p.line, p.message) for p in info.value.problems]


def test_a_duplicate_category_name_stops_start_up_at_its_line(tmp_path: Path) -> None:
    directory = _with_categories(
        tmp_path,
        "default: other\n"
        "categories:\n"
        "  - name: widget\n"
        "    text: {da: A, en: A}\n"
        "  - name: other\n"
        "    text: {da: B, en: B}\n"
        "  - name: widget\n"
        "    text: {da: C, en: C}\n",
    )
    assert _load_problems(directory) == [
        ("categories.yaml", "categories.2.name", 7, "duplicate name 'widget' (already used by entry 0)")
    ]


@pytest.mark.parametrize("name", ['""', "Widget", "chat history", "-x"])
def test_an_empty_or_unlabelable_category_name_is_refused(tmp_path: Path, name: str) -> None:
    directory = _with_categories(
        tmp_path,
        f"default: other\ncategories:\n  - name: other\n    text: {{da: A, en: A}}\n  - name: {name}\n"
        "    text: {da: B, en: B}\n",
    )
    ((file, key, line, _message),) = _load_problems(directory)
    assert (file, key, line) == ("categories.yaml", "categories.1.name", 5)


def test_the_default_must_be_one_of_the_categories(tmp_path: Path) -> None:
    directory = _with_categories(tmp_path, "default: misc\ncategories:\n  - name: other\n    text: {da: A, en: A}\n")
    ((file, _key, _line, message),) = _load_problems(directory)
    assert file == "categories.yaml"
    assert "'misc' is not one of the categories" in message


def test_a_category_needs_its_reporter_facing_text_in_both_languages(tmp_path: Path) -> None:
    directory = _with_categories(tmp_path, "default: other\ncategories:\n  - name: other\n    text: {da: Andet}\n")
    assert _load_problems(directory) == [("categories.yaml", "categories.0.text.en", 4, "required")]


def test_a_duplicate_severity_keyword_name_is_refused_too(tmp_path: Path) -> None:
    directory = tmp_path / "mappings"
    shutil.copytree(REPO / "mappings", directory)
    severity = directory / "severity.yaml"
    text = severity.read_text(encoding="utf-8")
    severity.write_text(text.replace("  - name: data-loss\n", "  - name: outage\n"), encoding="utf-8")
    ((file, key, line, message),) = _load_problems(directory)
    assert (file, message) == ("severity.yaml", "duplicate name 'outage' (already used by entry 0)")
    assert key == "keywords.1.name"
    assert line == text.splitlines().index("  - name: data-loss") + 1


def test_mappings_carry_the_categories() -> None:
    loaded: Mappings = load_mappings(REPO / "mappings")
    assert loaded.categories.rule("billing") is not None
    assert loaded.categories.rule("nope") is None
