"""Sprint planning: the pure rule, and the cached planner in front of the tracker."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from bridge.domain import Classification, Destination, Kind, Severity, Sprint, SprintSlot, SprintWindow
from bridge.errors import PermanentError, RetryableError
from bridge.mappings import Mappings
from bridge.pipeline.filing.plan import SprintPlanner, choose_sprint
from tests.conftest import CURRENT, NEXT
from tests.fakes import FakeTracker

BOTH = SprintWindow(current=CURRENT, next=NEXT)
DEST = Destination(tracker="gitlab", project="acme/support")


def loads(current: float, next_: float):  # type: ignore[no-untyped-def]
    return lambda sprint: {CURRENT.id: current, NEXT.id: next_}[sprint.id]


@pytest.mark.parametrize(
    ("severity", "window", "current_load", "next_load", "expected"),
    [
        (Severity.CRITICAL, BOTH, 0, 0, SprintSlot.CURRENT),
        (Severity.CRITICAL, BOTH, 99, 99, SprintSlot.CURRENT),  # hotfixes ignore capacity
        (Severity.HIGH, BOTH, 3, 0, SprintSlot.CURRENT),
        (Severity.HIGH, BOTH, 10, 0, SprintSlot.NEXT),  # current full (limit 10)
        (Severity.HIGH, BOTH, 10, 20, None),  # both full
        (Severity.MEDIUM, BOTH, 0, 0, SprintSlot.NEXT),
        (Severity.LOW, BOTH, 0, 19, SprintSlot.NEXT),
        (Severity.LOW, BOTH, 0, 20, None),
        (Severity.CRITICAL, SprintWindow(current=None, next=NEXT), 0, 0, None),
        (Severity.HIGH, SprintWindow(current=None, next=NEXT), 0, 0, SprintSlot.NEXT),
        (Severity.MEDIUM, SprintWindow(current=CURRENT, next=None), 0, 0, None),
    ],
)
def test_choose_sprint(
    severity: Severity,
    window: SprintWindow,
    current_load: float,
    next_load: float,
    expected: SprintSlot | None,
    mappings: Mappings,
) -> None:
    """Critical -> current always; high -> current while it has room, else next; the rest -> next."""
    plan = choose_sprint(severity, mappings.sprints, window, loads(current_load, next_load))
    assert plan.slot is expected
    assert plan.needs_planning is (expected is None)
    if expected is not None:
        assert plan.sprint is window.get(expected)


def planner(tracker: FakeTracker, mappings: Mappings, clock_time: datetime, mono: list[float]) -> SprintPlanner:
    return SprintPlanner(
        policy=mappings.sprints,
        trackers={"gitlab": tracker},
        bugfix_label=lambda t: "type::bugfix",
        timezone="Europe/Copenhagen",
        clock=lambda: clock_time,
        monotonic=lambda: mono[0],
    )


def high() -> Classification:
    return Classification(severity=Severity.HIGH, kind=Kind.BUGFIX, po_review=False, rules=())


def test_planner_caches_sprints_and_loads(mappings: Mappings) -> None:
    """A burst of reports asks the tracker once per cache period, not once per report."""
    tracker = FakeTracker(window=BOTH)
    mono = [0.0]
    p = planner(tracker, mappings, datetime(2026, 11, 25, 9, tzinfo=UTC), mono)
    for _ in range(5):
        assert p.plan(DEST, high()).slot is SprintSlot.CURRENT
    assert tracker.calls.count("sprints") == 1
    assert tracker.calls.count("sprint_load") == 1
    mono[0] = 61.0
    p.plan(DEST, high())
    assert tracker.calls.count("sprints") == 2


def test_planner_counts_what_it_files_so_a_burst_spills_to_next(mappings: Mappings) -> None:
    """With room for 2 more, the third high report of a burst goes to the next sprint."""
    tracker = FakeTracker(window=BOTH)
    tracker.loads = {CURRENT.id: 8}
    p = planner(tracker, mappings, datetime(2026, 11, 25, 9, tzinfo=UTC), [0.0])
    slots = []
    for _ in range(3):
        plan = p.plan(DEST, high())
        p.record_filed(DEST, plan, high())
        slots.append(plan.slot)
    assert slots == [SprintSlot.CURRENT, SprintSlot.CURRENT, SprintSlot.NEXT]


def test_today_is_taken_in_the_configured_time_zone(mappings: Mappings) -> None:
    """23:30 UTC on the 25th is already the 26th in Copenhagen."""
    p = planner(FakeTracker(), mappings, datetime(2026, 11, 25, 23, 30, tzinfo=UTC), [0.0])
    assert p.today() == "2026-11-26"


def test_sprint_api_refusal_files_unplanned(mappings: Mappings) -> None:
    """No sprint API (403 without a Jira Software licence) never fails the report."""
    tracker = FakeTracker(window=BOTH)
    tracker.fail_next["sprints"] = [PermanentError("jira: HTTP 403: no licence")]
    plan = planner(tracker, mappings, datetime(2026, 11, 25, 9, tzinfo=UTC), [0.0]).plan(DEST, high())
    assert plan.needs_planning
    assert "403" in plan.reason


def test_tracker_outage_during_planning_is_retried(mappings: Mappings) -> None:
    """A tracker that is down is not a reason to give up planning: the error goes to the job."""
    tracker = FakeTracker(window=BOTH)
    tracker.fail_next["sprints"] = [RetryableError("down")]
    with pytest.raises(RetryableError):
        planner(tracker, mappings, datetime(2026, 11, 25, 9, tzinfo=UTC), [0.0]).plan(DEST, high())


def test_sprint_dates_are_kept(mappings: Mappings) -> None:
    """The plan carries the sprint's name and dates for the reporter."""
    window = SprintWindow(
        current=Sprint(id="1", name="Sprint 48", start_date=date(2026, 11, 23), due_date=date(2026, 12, 6)), next=None
    )
    critical = Classification(severity=Severity.CRITICAL, kind=Kind.HOTFIX, po_review=True, rules=())
    plan = planner(FakeTracker(window=window), mappings, datetime(2026, 11, 25, 9, tzinfo=UTC), [0.0]).plan(
        DEST, critical
    )
    assert plan.sprint is not None
    assert plan.sprint.due_date == date(2026, 12, 6)
