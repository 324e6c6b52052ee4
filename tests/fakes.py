"""A working in-memory tracker: our own port, faked rather than mocked."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bridge.adapters.trackers.base import CapacityUnit, SprintQuery
from bridge.domain import Destination, IssueRef, NewIssue, Sprint, SprintWindow
from bridge.errors import BridgeError


@dataclass
class FakeIssue:
    key: str
    project: str
    title: str
    labels: tuple[str, ...]
    priority: str | None
    sprint_id: str | None
    state: str = "opened"
    comments: list[str] = field(default_factory=list)
    new_issue: NewIssue | None = None


class FakeTracker:
    """Behaves like a tracker; ``fail_next`` queues errors, ``lose_response`` makes a create
    succeed but raise (the "created but answered 502" case)."""

    def __init__(self, name: str = "gitlab", *, window: SprintWindow | None = None) -> None:
        self.name = name
        self.issues: list[FakeIssue] = []
        self.window = window or SprintWindow(current=None, next=None)
        self.loads: dict[str, float] = {}
        self.fail_next: dict[str, list[BridgeError]] = {}
        self.lose_response: list[BridgeError] = []
        self.calls: list[str] = []

    def _maybe_fail(self, op: str) -> None:
        self.calls.append(op)
        pending = self.fail_next.get(op)
        if pending:
            raise pending.pop(0)

    def find_issue(self, dest: Destination, *, tracking_id: str) -> IssueRef | None:
        self._maybe_fail("find_issue")
        for issue in self.issues:
            if issue.project == dest.project and issue.title.startswith(f"[{tracking_id}]"):
                return IssueRef(key=issue.key, url=f"https://tracker.example/{issue.key}")
        return None

    def create_issue(self, dest: Destination, issue: NewIssue) -> IssueRef:
        self._maybe_fail("create_issue")
        key = str(len(self.issues) + 1)
        self.issues.append(
            FakeIssue(
                key=key,
                project=dest.project,
                title=issue.title,
                labels=issue.labels,
                priority=issue.priority,
                sprint_id=issue.sprint.id if issue.sprint else None,
                new_issue=issue,
            )
        )
        if self.lose_response:
            raise self.lose_response.pop(0)
        return IssueRef(key=key, url=f"https://tracker.example/{key}")

    def ensure_in_sprint(self, dest: Destination, ref: IssueRef, sprint: Sprint) -> None:
        self._maybe_fail("ensure_in_sprint")
        self.issue(ref.key).sprint_id = sprint.id

    def sprints(self, dest: Destination, query: SprintQuery, *, today: str) -> SprintWindow:
        self._maybe_fail("sprints")
        return self.window

    def sprint_load(self, dest: Destination, sprint: Sprint, *, label: str, unit: CapacityUnit) -> float:
        self._maybe_fail("sprint_load")
        return self.loads.get(sprint.id, 0)

    def add_comment(self, dest: Destination, ref: IssueRef, body: str) -> None:
        self._maybe_fail("add_comment")
        self.issue(ref.key).comments.append(body)

    def reopen(self, dest: Destination, ref: IssueRef) -> None:
        self._maybe_fail("reopen")
        self.issue(ref.key).state = "opened"

    def check(self, dest: Destination, query: SprintQuery, *, today: str) -> list[str]:
        return []

    def issue(self, key: str) -> FakeIssue:
        return next(i for i in self.issues if i.key == key)

    def snapshot(self) -> list[dict[str, Any]]:
        return [vars(i) for i in self.issues]
