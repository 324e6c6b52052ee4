"""A working in-memory tracker: our own port, faked rather than mocked."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bridge.adapters.trackers.base import CapacityUnit, ChangedIssues, SprintQuery
from bridge.domain import Account, Destination, IssueRef, IssueSnapshot, NewIssue, Sprint, SprintWindow
from bridge.errors import BridgeError, NotFoundError, PermanentError


def _utcnow() -> datetime:
    return datetime.now(UTC)


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
    reporter_texts: list[str | None] = field(default_factory=list)
    """Per comment: the reporter's text the adapter was told to make inert (None: the bridge's words only)."""
    new_issue: NewIssue | None = None
    status_id: str | None = None
    status_name: str | None = None
    status_category: str | None = None
    """Jira-ish: ``new``, ``indeterminate`` or ``done``; None for a GitLab-ish issue."""
    resolution: str | None = None
    updated_at: datetime = field(default_factory=_utcnow)
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)
    """(filename, content type, content) of every file uploaded to the issue."""
    redacted_description: str | None = None
    """The description ``redact_issue`` replaced the rendered one with."""
    components: tuple[str, ...] = ()
    """Jira-ish component names (set on create from ``NewIssue.components``, or by a test as support)."""


class FakeTracker:
    """Behaves like a tracker; ``fail_next`` queues errors, ``lose_response`` makes a create
    succeed but raise (the "created but answered 502" case)."""

    def __init__(self, name: str = "gitlab", *, window: SprintWindow | None = None) -> None:
        self.name = name
        self.sprint_on_create = name != "jira"
        """Like the real adapters: GitLab sets the milestone on create, Jira needs ``ensure_in_sprint``."""
        self.search_lag_seconds = 0.0
        self.unindexed: set[str] = set()
        """Keys of issues ``find_issue`` does not see yet (Jira's eventually consistent search)."""
        self.closed_sprints: set[str] = set()
        """Sprint ids ``ensure_in_sprint`` refuses, as Jira refuses a closed sprint (HTTP 400)."""
        self.issues: list[FakeIssue] = []
        self.window = window or SprintWindow(current=None, next=None)
        self.loads: dict[str, float] = {}
        self.fail_next: dict[str, list[BridgeError]] = {}
        self.lose_response: list[BridgeError] = []
        self.calls: list[str] = []
        self.on_create: Callable[[FakeIssue], None] | None = None
        """Called once an issue is made, before the answer: what happens in the tracker meanwhile."""
        self.now: Callable[[], datetime] = _utcnow
        self.changed_limit: int | None = None
        """At most this many issues per ``changed_since``, like the adapters' page bound (None: all)."""
        self.project_components: dict[str, tuple[str, ...]] = {}
        """Component names per project, as ``components`` lists them (Jira-ish; none by default)."""
        """The clock stamping ``updated_at`` on create and on every change; tests may replace it."""

    def _maybe_fail(self, op: str) -> None:
        self.calls.append(op)
        pending = self.fail_next.get(op)
        if pending:
            raise pending.pop(0)

    def find_issue(self, dest: Destination, *, tracking_id: str) -> IssueRef | None:
        self._maybe_fail("find_issue")
        for issue in self.issues:
            if issue.key in self.unindexed:
                continue
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
                sprint_id=issue.sprint.id if issue.sprint and self.sprint_on_create else None,
                new_issue=issue,
                updated_at=self.now(),
                components=self._known_components(dest, issue.components),
            )
        )
        if self.on_create is not None:
            self.on_create(self.issues[-1])
        if self.lose_response:
            raise self.lose_response.pop(0)
        return IssueRef(key=key, url=f"https://tracker.example/{key}")

    def ensure_in_sprint(self, dest: Destination, ref: IssueRef, sprint: Sprint) -> None:
        self._maybe_fail("ensure_in_sprint")
        if sprint.id in self.closed_sprints:
            raise PermanentError(
                f"{self.name} add to sprint {sprint.id}: HTTP 400: Cannot move issues to a closed sprint."
            )
        found = self._existing(ref)
        found.sprint_id = sprint.id
        found.updated_at = self.now()

    def sprints(self, dest: Destination, query: SprintQuery, *, today: str) -> SprintWindow:
        self._maybe_fail("sprints")
        return self.window

    def sprint_load(self, dest: Destination, sprint: Sprint, *, label: str, unit: CapacityUnit) -> float:
        self._maybe_fail("sprint_load")
        return self.loads.get(sprint.id, 0)

    def components(self, dest: Destination) -> tuple[str, ...]:
        self._maybe_fail("components")
        return self.project_components.get(dest.project, ())

    def _known_components(self, dest: Destination, names: Sequence[str]) -> tuple[str, ...]:
        """Like Jira, a create naming a component the project does not have is refused (400)."""
        unknown = [name for name in names if name not in self.project_components.get(dest.project, ())]
        if unknown:
            raise PermanentError(f"{self.name} create issue: HTTP 400: Component name '{unknown[0]}' is not valid")
        return tuple(names)

    def add_comment(self, dest: Destination, ref: IssueRef, body: str, *, reporter_text: str | None = None) -> None:
        self._maybe_fail("add_comment")
        found = self.issue(ref.key)
        found.comments.append(body if reporter_text is None else f"{body}\n\n{reporter_text}")
        found.reporter_texts.append(reporter_text)
        found.updated_at = self.now()

    def reopen(self, dest: Destination, ref: IssueRef) -> None:
        self._maybe_fail("reopen")
        found = self.issue(ref.key)
        if found.state == "opened" and found.status_category != "done":
            return  # already open: a no-op, like the real adapters
        found.state = "opened"
        if found.status_category == "done":
            found.status_category, found.resolution = "new", None
        found.updated_at = self.now()

    def issue_state(self, dest: Destination, ref: IssueRef) -> IssueSnapshot:
        self._maybe_fail("issue_state")
        found = self._existing(ref)
        return IssueSnapshot(
            key=found.key,
            title=found.title,
            open=found.state == "opened" and found.status_category != "done",
            labels=tuple(found.labels),
            status_id=found.status_id,
            status_name=found.status_name,
            status_category=found.status_category,
            resolution=found.resolution,
            priority=found.priority,
            sprint_id=found.sprint_id,
            updated_at=found.updated_at,
            components=found.components,
        )

    def update_labels(self, dest: Destination, ref: IssueRef, *, add: Sequence[str], remove: Sequence[str]) -> None:
        self._maybe_fail("update_labels")
        found = self._existing(ref)
        kept = [label for label in found.labels if label not in remove]
        labels = tuple(dict.fromkeys([*kept, *(label for label in add if label not in remove)]))
        if labels != tuple(found.labels):
            found.labels = labels
            found.updated_at = self.now()

    def upload_attachment(
        self, dest: Destination, ref: IssueRef, *, filename: str, content_type: str, content: bytes
    ) -> None:
        self._maybe_fail("upload_attachment")
        found = self._existing(ref)
        found.attachments.append((filename, content_type, content))
        found.updated_at = self.now()

    def redact_issue(self, dest: Destination, ref: IssueRef, text: str) -> None:
        self._maybe_fail("redact_issue")
        found = self._existing(ref)
        found.redacted_description = text
        found.updated_at = self.now()

    def account(self) -> Account:
        self._maybe_fail("account")
        return Account(id="bot", username="bridge-bot")

    def changed_since(self, dest: Destination, since: datetime) -> ChangedIssues:
        self._maybe_fail("changed_since")
        since = since if since.tzinfo is not None else since.replace(tzinfo=UTC)  # naive is UTC, as in the adapters
        changed = sorted(
            (i for i in self.issues if i.project == dest.project and i.updated_at >= since),
            key=lambda i: i.updated_at,
        )
        listed = changed[: self.changed_limit] if self.changed_limit is not None else changed
        return ChangedIssues(
            ((IssueRef(key=i.key, url=f"https://tracker.example/{i.key}"), i.title) for i in listed),
            cut_at=listed[-1].updated_at if len(listed) < len(changed) else None,
        )

    def check(self, dest: Destination, query: SprintQuery, *, today: str) -> list[str]:
        return []

    def issue(self, key: str) -> FakeIssue:
        return next(i for i in self.issues if i.key == key)

    def _existing(self, ref: IssueRef) -> FakeIssue:
        """The issue, or the NotFoundError a real tracker's 404 becomes."""
        for found in self.issues:
            if found.key == ref.key:
                return found
        raise NotFoundError(f"{self.name}: issue {ref.key} not found (HTTP 404)")

    def snapshot(self) -> list[dict[str, Any]]:
        return [vars(i) for i in self.issues]


class RecordingMailer:
    """Keeps every message it is given; ``fail_next`` queues errors like FakeTracker."""

    def __init__(self) -> None:
        from email.message import EmailMessage

        self.sent: list[EmailMessage] = []
        self.fail_next: list[BridgeError] = []

    def send(self, message: Any) -> None:
        if self.fail_next:
            raise self.fail_next.pop(0)
        self.sent.append(message)
