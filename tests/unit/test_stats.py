"""The pure numbers behind ``python -m bridge stats`` and the ticket gauges: windows, medians, the
reopen rate, and labels bounded to known vocabularies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bridge.adapters.store.reporting import Milestones, TicketGroup
from bridge.pipeline.reporting.stats import (
    OTHER,
    UNCLASSIFIED,
    Stats,
    as_json,
    as_text,
    compute,
    format_duration,
    median_after,
    parse_duration,
    status_change_counts,
    ticket_counts,
)

NAMES = ("login", "billing", "widget", "other")
UNTIL = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SINCE = UNTIL - timedelta(days=30)


def group(category: str | None, severity: str | None, channel: str, status: str, count: int) -> TicketGroup:
    return TicketGroup(category=category, severity=severity, channel=channel, status=status, count=count)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("2w", timedelta(days=14)),
        ("90m", timedelta(minutes=90)),
        (" 7D ", timedelta(days=7)),
    ],
)
def test_parse_duration_reads_a_number_and_a_unit(text: str, expected: timedelta) -> None:
    """Minutes, hours, days and weeks, case-insensitive, surrounding spaces ignored."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "30", "d", "0d", "-3d", "3y", "1.5d", "3 days", "30d12h"])
def test_parse_duration_refuses_anything_else(text: str) -> None:
    """No unit, a zero, a sign, an unknown unit or a fraction is refused with an example of the form."""
    with pytest.raises(ValueError, match="such as 30d"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0, "0s"), (12, "12s"), (250, "4m 10s"), (3600, "1h"), (7500, "2h 5m"), (273600, "3d 4h"), (86461, "1d 1m")],
)
def test_format_duration_shows_the_two_largest_units(seconds: float, expected: str) -> None:
    """People read ``3d 4h``, not 273600 seconds; units that are zero are left out."""
    assert format_duration(seconds) == expected


def test_labels_are_bounded_to_known_vocabularies() -> None:
    """A category outside the mapping, an unknown severity, channel or status count as ``other``; a
    ticket not yet classified is ``unclassified``; groups that become the same labels are added up."""
    counts = ticket_counts(
        [
            group("widget", "critical", "chatbot", "triaged", 2),
            group("Widget<script>", "critical", "chatbot", "triaged", 1),
            group("renamed-long-ago", "critical", "chatbot", "triaged", 4),
            group(None, None, "chatbot", "received", 3),
            group("billing", "urgent!!", "fax", "lost", 5),
        ],
        NAMES,
    )
    assert counts == {
        ("widget", "critical", "chatbot", "triaged"): 2,
        (OTHER, "critical", "chatbot", "triaged"): 5,
        (OTHER, UNCLASSIFIED, "chatbot", "received"): 3,
        ("billing", OTHER, OTHER, OTHER): 5,
    }


def test_status_change_counts_bound_the_status() -> None:
    assert status_change_counts({"resolved": 3, "reopened": 1, "Exploded": 2, "weird": 1}) == {
        "resolved": 3,
        "reopened": 1,
        OTHER: 3,
    }


def test_median_counts_only_tickets_whose_first_change_is_in_the_window() -> None:
    """Received -> first triaged, over the tickets first triaged in the window (both ends included)."""
    received = SINCE - timedelta(days=2)
    milestones = [
        Milestones(received=received, triaged=SINCE - timedelta(seconds=1), resolved=None),  # before the window
        Milestones(received=SINCE, triaged=SINCE, resolved=None),  # at its start: 0 s
        Milestones(received=SINCE, triaged=SINCE + timedelta(minutes=10), resolved=None),
        Milestones(received=SINCE, triaged=SINCE + timedelta(minutes=30), resolved=None),
        Milestones(received=UNTIL, triaged=UNTIL, resolved=None),  # at its end: 0 s
        Milestones(received=UNTIL, triaged=UNTIL + timedelta(seconds=1), resolved=None),  # after it
        Milestones(received=SINCE, triaged=None, resolved=None),  # not triaged yet
    ]
    median = median_after(milestones, "triaged", since=SINCE, until=UNTIL)
    assert median.tickets == 4
    assert median.seconds == 300  # 0, 0, 600, 1800


def test_median_of_an_even_count_is_the_mean_of_the_middle_two_and_none_without_tickets() -> None:
    milestones = [
        Milestones(received=SINCE, triaged=None, resolved=SINCE + timedelta(hours=hours)) for hours in (1, 2, 4, 100)
    ]
    assert median_after(milestones, "resolved", since=SINCE, until=UNTIL).seconds == 3 * 3600
    empty = median_after(milestones, "triaged", since=SINCE, until=UNTIL)
    assert (empty.seconds, empty.tickets) == (None, 0)


def test_a_change_recorded_before_receipt_counts_as_no_wait() -> None:
    """Clocks of two hosts may disagree by a moment: a negative wait is 0, never below."""
    milestones = [Milestones(received=SINCE + timedelta(hours=1), triaged=SINCE + timedelta(minutes=59), resolved=None)]
    assert median_after(milestones, "triaged", since=SINCE, until=UNTIL).seconds == 0


def compute_sample(**overrides: Any) -> Stats:
    values: dict[str, Any] = {
        "since": SINCE,
        "until": UNTIL,
        "groups": [
            group("widget", "critical", "chatbot", "triaged", 3),
            group("widget", "critical", "email", "resolved", 1),
            group("billing", "medium", "email", "received", 2),
            group(None, None, "chatbot", "received", 1),
        ],
        "milestones": [
            Milestones(received=SINCE, triaged=SINCE + timedelta(minutes=2), resolved=SINCE + timedelta(days=3)),
        ],
        "reopened": 1,
        "resolved": 4,
        "organizations": [("Kunde A/S", 5), ("anna@kunde.dk", 2), ("Firma ApS", 1)],
        "category_names": NAMES,
    }
    values.update(overrides)
    return compute(**values)


def test_compute_counts_by_category_and_severity_and_by_channel() -> None:
    stats = compute_sample()
    assert stats.total == 7
    assert stats.by_category_severity == {
        ("widget", "critical"): 4,
        ("billing", "medium"): 2,
        (OTHER, UNCLASSIFIED): 1,
    }
    assert stats.by_channel == {"chatbot": 4, "email": 3}
    assert stats.triage.seconds == 120
    assert stats.resolve.seconds == 3 * 86400


def test_reopen_rate_is_reopened_over_resolved_and_none_without_resolutions() -> None:
    assert compute_sample().reopen_rate == 0.25
    assert compute_sample(reopened=0, resolved=0).reopen_rate is None


def test_an_organisation_that_is_an_address_is_never_shown() -> None:
    """The chatbot passes what the reporter typed as the organisation: an address never appears."""
    stats = compute_sample()
    assert stats.top_organizations == (("Kunde A/S", 5), ("Firma ApS", 1))
    assert "@" not in as_text(stats)
    assert "@" not in str(as_json(stats))


def test_json_has_every_number_under_a_stable_key() -> None:
    body = as_json(compute_sample())
    assert body["since"] == "2026-10-26T12:00:00Z"
    assert body["until"] == "2026-11-25T12:00:00Z"
    assert body["reports"] == 7
    assert body["by_category_severity"] == [  # in the mapping's order, most severe first
        {"category": "billing", "severity": "medium", "reports": 2},
        {"category": "widget", "severity": "critical", "reports": 4},
        {"category": "other", "severity": "unclassified", "reports": 1},
    ]
    assert body["by_channel"] == {"chatbot": 4, "email": 3}
    assert body["time_to_triage"] == {"median_seconds": 120, "tickets": 1}
    assert body["time_to_resolve"] == {"median_seconds": 259200, "tickets": 1}
    assert body["reopen"] == {"reopened": 1, "resolved": 4, "rate": 0.25}
    assert body["top_organizations"] == [
        {"organization": "Kunde A/S", "reports": 5},
        {"organization": "Firma ApS", "reports": 1},
    ]


def test_text_shows_a_category_by_severity_table_and_the_times() -> None:
    text = as_text(compute_sample())
    lines = text.splitlines()
    assert lines[0] == "reports received 2026-10-26 12:00 UTC to 2026-11-25 12:00 UTC: 7"
    header = next(line for line in lines if line.startswith("CATEGORY"))
    assert header.split() == ["CATEGORY", "CRITICAL", "HIGH", "MEDIUM", "LOW", "UNCLASSIFIED", "TOTAL"]
    assert next(line for line in lines if line.startswith("widget")).split() == ["widget", "4", "0", "0", "0", "0", "4"]
    assert next(line for line in lines if line.startswith("other")).split() == ["other", "0", "0", "0", "0", "1", "1"]
    assert "by channel: chatbot 4, email 3" in lines
    assert "time to triage (received -> triaged): median 2m over 1 ticket(s)" in lines
    assert "time to resolve (received -> resolved): median 3d over 1 ticket(s)" in lines
    assert "reopen rate: 25.0% (1 reopened / 4 resolved)" in lines


def test_text_of_an_empty_window_says_so() -> None:
    stats = compute_sample(groups=[], milestones=[], reopened=0, resolved=0, organizations=[])
    text = as_text(stats)
    assert "(no reports)" in text
    assert "time to triage (received -> triaged): - (no tickets)" in text
    assert "reopen rate: - (0 reopened / 0 resolved)" in text
