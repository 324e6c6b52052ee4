"""Classification -> sprint, from ``mappings/sprints.yaml`` and the tracker's sprints.

``choose_sprint`` is the pure rule; ``SprintPlanner`` feeds it sprint windows and
loads from the tracker, cached briefly so a burst of reports costs few API calls.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

from bridge.adapters.trackers.base import SprintQuery, Tracker
from bridge.domain import Classification, Destination, Kind, Plan, Severity, Sprint, SprintWindow
from bridge.errors import PermanentError
from bridge.mappings import SprintPolicy

log = logging.getLogger(__name__)


def choose_sprint(
    severity: Severity, policy: SprintPolicy, window: SprintWindow, load_of: Callable[[Sprint], float]
) -> Plan:
    placement = policy.placement[severity]
    for slot in placement.sprints:
        sprint = window.get(slot)
        if sprint is None:
            continue
        if placement.ignore_capacity:
            return Plan(sprint=sprint, slot=slot, reason=f"{severity.value} always goes to the {slot.value} sprint")
        load, limit = load_of(sprint), policy.capacity.limit(slot)
        if load < limit:
            return Plan(sprint=sprint, slot=slot, reason=f"{slot.value} sprint has room ({load:g}/{limit:g})")
    slots = ", ".join(s.value for s in placement.sprints)
    return Plan(sprint=None, slot=None, reason=f"no {slots} sprint exists or has room")


class SprintPlanner:
    def __init__(
        self,
        *,
        policy: SprintPolicy,
        trackers: Mapping[str, Tracker],
        bugfix_label: Callable[[str], str],
        timezone: str,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._policy = policy
        self._trackers = trackers
        self._bugfix_label = bugfix_label
        self._tz = ZoneInfo(timezone)
        self._now = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str, int | None, str], tuple[float, SprintWindow]] = {}
        self._loads: dict[tuple[str, str, str], tuple[float, float]] = {}

    @property
    def query(self) -> SprintQuery:
        match = self._policy.match
        return SprintQuery(title_pattern=match.title_pattern, include_group_milestones=match.include_group_milestones)

    def today(self) -> str:
        return self._now().astimezone(self._tz).date().isoformat()

    def plan(self, dest: Destination, classification: Classification) -> Plan:
        try:
            window = self._window(dest)
            return choose_sprint(classification.severity, self._policy, window, lambda s: self._load(dest, s))
        except PermanentError as exc:
            # No sprint API (no Jira Software licence, no board): file unplanned, never fail the report.
            log.warning("plan.unavailable", extra={"tracker": dest.tracker, "error": str(exc)})
            return Plan(sprint=None, slot=None, reason=f"sprints unavailable: {exc}")

    def forget(self, dest: Destination) -> None:
        """Drop the cached sprint windows of ``dest``: a sprint in them was found closed."""
        with self._lock:
            for key in [k for k in self._windows if k[:3] == (dest.tracker, dest.project, dest.board_id)]:
                del self._windows[key]

    def record_filed(self, dest: Destination, plan: Plan, classification: Classification) -> None:
        """Count a newly filed bugfix in the cached load, so a burst does not overfill a sprint."""
        if plan.sprint is None or classification.kind is not Kind.BUGFIX:
            return
        key = (dest.tracker, dest.project, plan.sprint.id)
        with self._lock:
            cached = self._loads.get(key)
            if cached is not None:
                self._loads[key] = (cached[0], cached[1] + 1)

    def _window(self, dest: Destination) -> SprintWindow:
        today = self.today()
        key = (dest.tracker, dest.project, dest.board_id, today)
        with self._lock:
            cached = self._windows.get(key)
            if cached and cached[0] > self._monotonic():
                return cached[1]
        window = self._trackers[dest.tracker].sprints(dest, self.query, today=today)
        with self._lock:
            self._windows[key] = (self._monotonic() + self._policy.cache_seconds, window)
        return window

    def _load(self, dest: Destination, sprint: Sprint) -> float:
        key = (dest.tracker, dest.project, sprint.id)
        with self._lock:
            cached = self._loads.get(key)
            if cached and cached[0] > self._monotonic():
                return cached[1]
        load = self._trackers[dest.tracker].sprint_load(
            dest, sprint, label=self._bugfix_label(dest.tracker), unit=self._policy.capacity.unit
        )
        with self._lock:
            self._loads[key] = (self._monotonic() + self._policy.cache_seconds, load)
        return load
