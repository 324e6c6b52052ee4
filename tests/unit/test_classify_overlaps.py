"""The shipped phrase lists (mappings/severity.yaml) never raise a severity by accident.

Two ways a phrase could: a higher severity's phrase written inside a lower one's ("vigtig", high,
inside "ikke vigtig", low), or a phrase the reporter negated ("ikke kritisk", "not urgent", "det
haster ikke"). These tests find every such overlap in the shipped lists and classify each.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bridge.domain import Report, Severity
from bridge.mappings import Mappings, SeverityRules
from bridge.pipeline.filing.classify import classify, matching_phrase, normalise

PLAIN = {"title": "Rapport", "description": "Se venligst"}
"""Title and description that fire no keyword: the declared priority alone decides."""


def declared(rules: SeverityRules) -> Iterator[tuple[Severity, str]]:
    for severity, phrases in rules.declared_priority.items():
        for phrase in phrases:
            yield severity, phrase


def keyword_phrases(rules: SeverityRules) -> Iterator[tuple[Severity, str]]:
    for rule in rules.keywords:
        for phrase in rule.phrases:
            yield rule.severity, phrase


def contained_overlaps(phrases: list[tuple[Severity, str]]) -> list[tuple[str, str, Severity]]:
    """(lower phrase, higher phrase inside it, the lower phrase's severity) for every pair in the list."""
    found = []
    for low_severity, low in phrases:
        for high_severity, high in phrases:
            if high_severity.rank > low_severity.rank and low != high and matching_phrase(low, [high]):
                found.append((low, high, low_severity))
    return found


def negatable(rules: SeverityRules, phrases: list[tuple[Severity, str]]) -> list[tuple[Severity, str]]:
    """The phrases above the default that hold no negation of their own ("virker ikke" does)."""
    words = {normalise(w) for w in [*rules.negations.before, *rules.negations.after]}
    return [
        (severity, phrase)
        for severity, phrase in phrases
        if severity.rank > rules.default.rank and not words & set(normalise(phrase).split())
    ]


def test_the_shipped_lists_have_the_known_overlap(mappings: Mappings) -> None:
    """The finder finds "vigtig" (high) inside "ikke vigtig" (low): the tests below are not empty."""
    overlaps = contained_overlaps(list(declared(mappings.severity)))
    assert ("ikke vigtig", "vigtig", Severity.LOW) in overlaps


def test_a_declared_priority_is_the_longest_phrase_written_not_a_higher_one_inside_it(mappings: Mappings) -> None:
    """Every declared-priority phrase that contains a higher level's phrase classifies as its own level."""
    rules = mappings.severity
    for low, high, severity in contained_overlaps(list(declared(rules))):
        result = classify(Report(**PLAIN, declared_priority=low), rules)
        assert result.severity is severity, (low, high, result.rules)


def test_a_keyword_is_the_longest_phrase_written_not_a_higher_one_inside_it(mappings: Mappings) -> None:
    """Keyword phrases overlapping across severities classify as the longer phrase's severity. (The shipped
    keywords have no such overlap today; this finds and checks any that a change to the lists brings.)"""
    rules = mappings.severity
    for low, high, severity in contained_overlaps(list(keyword_phrases(rules))):
        result = classify(Report(title=low, description="Se venligst"), rules)
        assert result.severity is severity, (low, high, result.rules)


@pytest.mark.parametrize("negation", ["ikke", "not", "ikke så", "not very"])
def test_a_negated_declared_priority_never_raises_the_severity(mappings: Mappings, negation: str) -> None:
    """ "ikke kritisk", "not urgent", "ikke så vigtig": no declared phrase above the default counts when negated."""
    rules = mappings.severity
    phrases = negatable(rules, list(declared(rules)))
    assert {"kritisk", "urgent", "haster", "high priority"} <= {p for _, p in phrases}
    for _, phrase in phrases:
        result = classify(Report(**PLAIN, declared_priority=f"{negation} {phrase}"), rules)
        assert result.severity.rank <= rules.default.rank, (negation, phrase, result.rules)


@pytest.mark.parametrize("written", ["Det haster ikke", "haster ikke", "Det haster ikke så meget"])
def test_danish_negation_after_the_word_counts_too(mappings: Mappings, written: str) -> None:
    """Danish puts the negation after the verb: "det haster ikke" is not urgent."""
    result = classify(Report(**PLAIN, declared_priority=written), mappings.severity)
    assert result.severity.rank <= mappings.severity.default.rank, result.rules


def test_a_negated_keyword_never_raises_the_severity(mappings: Mappings) -> None:
    """ "Det er ikke nede", "it is not down", "never crashes": keywords above the default do not count negated."""
    rules = mappings.severity
    phrases = negatable(rules, list(keyword_phrases(rules)))
    assert {"nede", "down", "crash", "sikkerhedshul"} <= {p for _, p in phrases}
    for negation in ("ikke", "not", "never"):
        for _, phrase in phrases:
            result = classify(Report(title=f"Det er {negation} {phrase}", description="Se venligst"), rules)
            assert result.severity.rank <= rules.default.rank, (negation, phrase, result.rules)


@pytest.mark.parametrize(
    ("title", "severity"),
    [
        ("Chatten er nede", Severity.CRITICAL),
        ("Chatten er nede.\nIkke kritisk for os, men irriterende", Severity.CRITICAL),  # another line
        ("Ikke bare en stavefejl: siden er nede", Severity.CRITICAL),
        ("The site is not down, only slow", Severity.MEDIUM),
        ("Betaling fejler ikke, men kvitteringen mangler", Severity.HIGH),  # "betaling" still counts
        ("Knappen virker ikke", Severity.HIGH),  # the phrase holds its own negation
    ],
)
def test_negation_reaches_only_its_own_phrase(mappings: Mappings, title: str, severity: Severity) -> None:
    """A negation reaches the phrase right next to it (one word between at most), not across a line or
    punctuation, and not other phrases."""
    assert classify(Report(title=title, description="Se venligst"), mappings.severity).severity is severity
