"""The shipped status texts, in both languages."""

from __future__ import annotations

import pytest

from bridge.domain import Kind, SprintSlot, Status
from bridge.mappings import Mappings


def test_contract_example_text(mappings: Mappings) -> None:
    """The CONTRACT's example: a triaged critical ticket in Danish."""
    text = mappings.wording["da"].text(Status.TRIAGED, kind=Kind.HOTFIX, slot=SprintSlot.CURRENT, sprint="Sprint 48")
    assert text == "Planlagt som hotfix i den aktuelle sprint"


@pytest.mark.parametrize("locale", ["da", "en"])
@pytest.mark.parametrize("status", list(Status))
def test_every_status_has_a_text_in_both_languages(mappings: Mappings, locale: str, status: Status) -> None:
    """No status is ever shown as an empty string or an unfilled placeholder."""
    text = mappings.wording[locale].text(status, kind=Kind.BUGFIX, slot=SprintSlot.NEXT, reason="duplicate")
    assert text.strip()
    assert "{" not in text


def test_declined_reason_and_unplanned(mappings: Mappings) -> None:
    """Reasons are worded for people; an unplanned triage says so."""
    en = mappings.wording["en"]
    declined = en.text(Status.DECLINED, reason="cannot_reproduce")
    assert declined == "Closed without a fix: we could not reproduce the problem"
    assert en.text(Status.TRIAGED, kind=Kind.BUGFIX, slot=None) == "Registered and waiting to be planned"
    assert mappings.wording["da"].text(Status.TRIAGED, kind=Kind.BUGFIX, slot=SprintSlot.NEXT) == (
        "Planlagt som fejlrettelse i næste sprint"
    )
