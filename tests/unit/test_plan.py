"""Sprint planning: the pure rule, and the cached planner in front of the tracker."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime

import pytest

from bridge.adapters.trackers.base import CapacityUnit, SprintQuery
from bridge.domain import Classification, Destination, Kind, Plan, Severity, Sprint, SprintSlot, SprintWindow
from bridge.errors import PermanentError, RetryableError
from bridge.mappings import Capacity, Mappings, SprintMatch, SprintPolicy
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


# --- what the plan says, what the planner asks the tracker, and how long it trusts the answer ----

SHIPPED_CACHE = 60.0


@pytest.mark.parametrize(
    ("severity", "window", "current_load", "next_load", "reason"),
    [
        (Severity.CRITICAL, BOTH, 99, 99, "critical always goes to the current sprint"),
        (Severity.HIGH, BOTH, 3, 0, "current sprint has room (3/10)"),
        (Severity.HIGH, BOTH, 9.5, 0, "current sprint has room (9.5/10)"),
        (Severity.HIGH, BOTH, 10, 19, "next sprint has room (19/20)"),
        (Severity.HIGH, BOTH, 10, 20, "no current, next sprint exists or has room"),
        (Severity.MEDIUM, SprintWindow(current=CURRENT, next=None), 0, 0, "no next sprint exists or has room"),
        (Severity.CRITICAL, SprintWindow(current=None, next=NEXT), 0, 0, "no current sprint exists or has room"),
    ],
)
def test_the_plan_says_why(
    severity: Severity, window: SprintWindow, current_load: float, next_load: float, reason: str, mappings: Mappings
) -> None:
    """Every plan carries the reason support sees: the rule, or the load against the capacity."""
    plan = choose_sprint(severity, mappings.sprints, window, loads(current_load, next_load))
    assert plan.reason == reason


class RecordingTracker(FakeTracker):
    """A fake tracker that also keeps the arguments of every sprint call."""

    def __init__(self, name: str = "gitlab", *, window: SprintWindow | None = None) -> None:
        super().__init__(name, window=window)
        self.sprint_calls: list[tuple[Destination, SprintQuery, str]] = []
        self.load_calls: list[tuple[Destination, Sprint, str, str]] = []

    def sprints(self, dest: Destination, query: SprintQuery, *, today: str) -> SprintWindow:
        self.sprint_calls.append((dest, query, today))
        return super().sprints(dest, query, today=today)

    def sprint_load(self, dest: Destination, sprint: Sprint, *, label: str, unit: CapacityUnit) -> float:
        self.load_calls.append((dest, sprint, label, unit))
        return super().sprint_load(dest, sprint, label=label, unit=unit)


def custom_planner(
    trackers: dict[str, FakeTracker], policy: SprintPolicy, now: list[datetime], mono: list[float]
) -> SprintPlanner:
    return SprintPlanner(
        policy=policy,
        trackers=trackers,
        bugfix_label=lambda tracker: f"{tracker}-bugfix-label",
        timezone="Europe/Copenhagen",
        clock=lambda: now[0],
        monotonic=lambda: mono[0],
    )


def test_the_planner_asks_the_tracker_with_the_policy_and_the_local_day(mappings: Mappings) -> None:
    """The tracker is asked for the destination's sprints with the policy's query and today's date where
    the team works, and for a sprint's load with that tracker's bugfix label and the capacity unit."""
    policy = mappings.sprints.model_copy(
        update={
            "match": SprintMatch(title_pattern="^Sprint ", include_group_milestones=False),
            "capacity": Capacity(unit="weight", current=10, next=20),
        }
    )
    gitlab, jira = RecordingTracker(window=BOTH), RecordingTracker("jira", window=BOTH)
    dest = Destination(tracker="jira", project="SUP", board_id=7)
    p = custom_planner({"gitlab": gitlab, "jira": jira}, policy, [datetime(2026, 11, 25, 23, 30, tzinfo=UTC)], [0.0])
    assert p.plan(dest, high()).slot is SprintSlot.CURRENT
    query = SprintQuery(title_pattern="^Sprint ", include_group_milestones=False)
    assert jira.sprint_calls == [(dest, query, "2026-11-26")]
    assert jira.load_calls == [(dest, CURRENT, "jira-bugfix-label", "weight")]
    assert gitlab.sprint_calls == gitlab.load_calls == []


def test_a_hotfix_plan_does_not_ask_for_loads(mappings: Mappings) -> None:
    """Critical ignores capacity, so no load is fetched for it."""
    tracker = RecordingTracker(window=BOTH)
    p = custom_planner({"gitlab": tracker}, mappings.sprints, [datetime(2026, 11, 25, 9, tzinfo=UTC)], [0.0])
    critical = Classification(severity=Severity.CRITICAL, kind=Kind.HOTFIX, po_review=True, rules=())
    assert p.plan(DEST, critical).sprint == CURRENT
    assert tracker.load_calls == []


@pytest.mark.parametrize("cache_seconds", [SHIPPED_CACHE, 5.0])
def test_cached_sprints_and_loads_expire_after_exactly_cache_seconds(cache_seconds: float, mappings: Mappings) -> None:
    """Sprints and loads are trusted for ``cache_seconds`` and asked again once that much time has passed."""
    policy = mappings.sprints.model_copy(update={"cache_seconds": cache_seconds})
    assert mappings.sprints.cache_seconds == SHIPPED_CACHE
    tracker = RecordingTracker(window=BOTH)
    mono = [100.0]
    p = custom_planner({"gitlab": tracker}, policy, [datetime(2026, 11, 25, 9, tzinfo=UTC)], mono)
    p.plan(DEST, high())
    mono[0] = 100.0 + cache_seconds - 0.001
    p.plan(DEST, high())
    assert (len(tracker.sprint_calls), len(tracker.load_calls)) == (1, 1)
    mono[0] = 100.0 + cache_seconds
    p.plan(DEST, high())
    assert (len(tracker.sprint_calls), len(tracker.load_calls)) == (2, 2)


def test_sprints_are_cached_per_destination_and_day(mappings: Mappings) -> None:
    """Another project, another board or a new day is asked for separately, within the cache time."""
    other_window = SprintWindow(current=NEXT, next=None)
    tracker, jira = RecordingTracker(window=BOTH), RecordingTracker("jira", window=other_window)
    now = [datetime(2026, 11, 25, 9, tzinfo=UTC)]
    p = custom_planner({"gitlab": tracker, "jira": jira}, mappings.sprints, now, [0.0])
    critical = Classification(severity=Severity.CRITICAL, kind=Kind.HOTFIX, po_review=True, rules=())
    assert p.plan(DEST, critical).sprint == CURRENT
    assert p.plan(Destination(tracker="jira", project="SUP", board_id=1), critical).sprint == NEXT
    assert p.plan(DEST, critical).sprint == CURRENT
    p.plan(Destination(tracker="gitlab", project="acme/other"), critical)
    p.plan(Destination(tracker="gitlab", project="acme/support", board_id=3), critical)
    assert [call[0].project for call in tracker.sprint_calls] == ["acme/support", "acme/other", "acme/support"]
    now[0] = datetime(2026, 11, 25, 23, 30, tzinfo=UTC)  # the next day in Copenhagen
    p.plan(DEST, critical)
    assert [call[2] for call in tracker.sprint_calls] == ["2026-11-25"] * 3 + ["2026-11-26"]
    assert len(jira.sprint_calls) == 1


def test_loads_are_cached_per_destination_and_sprint(mappings: Mappings) -> None:
    """Each destination's sprint has its own load."""
    tracker = RecordingTracker(window=BOTH)
    tracker.loads = {CURRENT.id: 10}
    p = custom_planner({"gitlab": tracker}, mappings.sprints, [datetime(2026, 11, 25, 9, tzinfo=UTC)], [0.0])
    assert p.plan(DEST, high()).slot is SprintSlot.NEXT  # current is full: both loads asked
    other = Destination(tracker="gitlab", project="acme/other")
    p.plan(other, high())
    p.plan(DEST, high())
    assert [(d.project, s.id) for d, s, _, _ in tracker.load_calls] == [
        ("acme/support", CURRENT.id),
        ("acme/support", NEXT.id),
        ("acme/other", CURRENT.id),
        ("acme/other", NEXT.id),
    ]


def test_a_filed_bugfix_counts_until_the_load_expires(mappings: Mappings) -> None:
    """Counting a filed bugfix raises the cached load but does not extend how long it is trusted."""
    tracker = RecordingTracker(window=BOTH)
    tracker.loads = {CURRENT.id: 9}
    mono = [0.0]
    p = custom_planner({"gitlab": tracker}, mappings.sprints, [datetime(2026, 11, 25, 9, tzinfo=UTC)], mono)
    plan = p.plan(DEST, high())
    assert plan.slot is SprintSlot.CURRENT
    mono[0] = 30.0
    p.record_filed(DEST, plan, high())
    assert p.plan(DEST, high()).slot is SprintSlot.NEXT  # 10/10 now
    assert [s.id for _, s, _, _ in tracker.load_calls] == [CURRENT.id, NEXT.id]
    mono[0] = SHIPPED_CACHE
    assert p.plan(DEST, high()).slot is SprintSlot.CURRENT  # the tracker says 9 again
    assert [s.id for _, s, _, _ in tracker.load_calls] == [CURRENT.id, NEXT.id, CURRENT.id]


def test_only_bugfixes_in_a_sprint_are_counted(mappings: Mappings) -> None:
    """A hotfix, or a bugfix filed without a sprint (needs planning), does not change any load."""
    tracker = RecordingTracker(window=BOTH)
    tracker.loads = {CURRENT.id: 9}
    p = custom_planner({"gitlab": tracker}, mappings.sprints, [datetime(2026, 11, 25, 9, tzinfo=UTC)], [0.0])
    plan = p.plan(DEST, high())
    hotfix = Classification(severity=Severity.HIGH, kind=Kind.HOTFIX, po_review=False, rules=())
    p.record_filed(DEST, plan, hotfix)
    p.record_filed(DEST, Plan(sprint=None, slot=None, reason="no current, next sprint exists or has room"), high())
    assert p.plan(DEST, high()).slot is SprintSlot.CURRENT  # still 9/10
    p.record_filed(DEST, Plan(sprint=NEXT, slot=SprintSlot.NEXT, reason="x"), high())  # no cached load: nothing
    assert [s.id for _, s, _, _ in tracker.load_calls] == [CURRENT.id]


def test_an_unavailable_sprint_api_is_logged_with_the_tracker_and_error(
    mappings: Mappings, caplog: pytest.LogCaptureFixture
) -> None:
    """Filing unplanned because the sprint API refused is logged, with which tracker and why."""
    tracker = RecordingTracker("jira", window=BOTH)
    tracker.fail_next["sprint_load"] = [PermanentError("jira: HTTP 404: no board 7")]
    p = custom_planner({"jira": tracker}, mappings.sprints, [datetime(2026, 11, 25, 9, tzinfo=UTC)], [0.0])
    with caplog.at_level(logging.WARNING, logger="bridge.pipeline.filing.plan"):
        plan = p.plan(Destination(tracker="jira", project="SUP", board_id=7), high())
    assert (plan.sprint, plan.slot, plan.reason) == (None, None, "sprints unavailable: jira: HTTP 404: no board 7")
    [record] = [r for r in caplog.records if r.name == "bridge.pipeline.filing.plan"]
    assert record.getMessage() == "plan.unavailable"
    assert (record.tracker, record.error) == ("jira", "jira: HTTP 404: no board 7")  # type: ignore[attr-defined]


def test_forget_drops_only_that_destinations_cached_sprints(mappings: Mappings) -> None:
    """After a sprint was found closed, that destination's sprints are asked for again at once; other
    destinations keep theirs."""
    tracker = RecordingTracker(window=BOTH)
    p = custom_planner({"gitlab": tracker}, mappings.sprints, [datetime(2026, 11, 25, 9, tzinfo=UTC)], [0.0])
    other = Destination(tracker="gitlab", project="acme/support", board_id=3)
    for dest in (DEST, other):
        p.plan(dest, high())
    p.forget(DEST)
    for dest in (DEST, other):
        p.plan(dest, high())
    assert [call[0] for call in tracker.sprint_calls] == [DEST, other, DEST]
