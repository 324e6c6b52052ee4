"""Properties of report -> severity and kind (``bridge.pipeline.filing.classify``, shipped ``severity.yaml``)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from bridge.domain import Channel, Kind, Report, Severity
from bridge.pipeline.filing.classify import classify
from tests.property.conftest import PROPERTY, SHIPPED

RULES = SHIPPED.severity
PHRASES = sorted({p for rule in RULES.keywords for p in rule.phrases} | set(RULES.high_impact_phrases))
PRIORITY_WORDS = sorted({p for phrases in RULES.declared_priority.values() for p in phrases})
CRITICAL_PHRASES = sorted({p for rule in RULES.keywords if rule.severity is Severity.CRITICAL for p in rule.phrases})


def _text(words: list[str]) -> st.SearchStrategy[str]:
    """Free text with the mapping's own phrases mixed in, in any case."""
    word = st.one_of(st.sampled_from(words).map(lambda w: w.upper() if len(w) % 2 else w), st.text(max_size=12))
    return st.lists(word, max_size=8).map(" ".join)


REPORTS = st.builds(
    Report,
    title=_text(PHRASES),
    description=_text(PHRASES),
    impact=st.one_of(st.none(), _text(PHRASES)),
    declared_priority=st.one_of(st.none(), _text(PRIORITY_WORDS)),
    product=st.one_of(st.none(), st.sampled_from([*RULES.products, "PAYMENTS", "other"]), st.text(max_size=8)),
    organization=st.one_of(st.none(), st.sampled_from([*RULES.organizations, "kunde a/s"]), st.text(max_size=8)),
    channel=st.sampled_from(list(Channel)),
)


@PROPERTY
@given(report=REPORTS)
def test_always_a_valid_severity_and_kind(report: Report) -> None:
    """Every report gets one of the four severities, a kind and the rules that fired."""
    result = classify(report, RULES)
    assert result.severity in set(Severity)
    assert result.kind in set(Kind)
    assert result.rules


@PROPERTY
@given(report=REPORTS)
def test_hotfix_if_and_only_if_critical(report: Report) -> None:
    """With the shipped mappings a report is a hotfix exactly when it is critical."""
    result = classify(report, RULES)
    assert (result.kind is Kind.HOTFIX) == (result.severity is Severity.CRITICAL)


@PROPERTY
@given(
    report=REPORTS,
    phrase=st.sampled_from(CRITICAL_PHRASES),
    field=st.sampled_from(["title", "description", "impact"]),
)
def test_adding_a_critical_keyword_never_lowers_the_severity(report: Report, phrase: str, field: str) -> None:
    """A report that also says a critical phrase (e.g. "nede", "data loss") is at least as severe: critical."""
    before = classify(report, RULES)
    said = f"{getattr(report, field) or ''}\n{phrase.upper()}"
    after = classify(replace(report, **{field: said}), RULES)
    assert after.severity.rank >= before.severity.rank
    assert after.severity is Severity.CRITICAL
