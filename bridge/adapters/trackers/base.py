"""The port every tracker adapter implements.

The pipeline speaks only this protocol; it never imports ``gitlab`` or ``jira``.
Every method raises ``RetryableError`` or ``PermanentError`` and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from bridge.domain import Account, Destination, IssueRef, IssueSnapshot, NewIssue, Sprint, SprintWindow

CapacityUnit = Literal["issues", "weight"]


@dataclass(frozen=True, kw_only=True)
class SprintQuery:
    """How to find the current and next sprint (from ``mappings/sprints.yaml``)."""

    title_pattern: str | None = None
    """A regular expression a GitLab milestone or Jira sprint name must match (search, not full match)."""
    include_group_milestones: bool = True


@dataclass(frozen=True, kw_only=True)
class WebhookSetup:
    """What an adapter's ``ensure_webhook`` did in the tracker (or, with ``dry_run``, would do)."""

    action: Literal["created", "updated", "would create", "would update"]
    hook_id: str | None
    """The tracker's id of the hook (None for a hook a dry run would create)."""
    duplicates: int = 0
    """Further hooks with the same URL, left as they are (delete them in the tracker)."""


class ChangedIssues(list[tuple[IssueRef, str]]):
    """What ``changed_since`` found: (ref, title) pairs, oldest change first.

    ``cut_at`` is None when the listing is complete. When the adapter's bound cut it short, it is
    the ``updated_at`` of the last issue listed: later changes are missing, so the caller reads on
    from there rather than from now.
    """

    def __init__(self, items: Iterable[tuple[IssueRef, str]] = (), *, cut_at: datetime | None = None) -> None:
        super().__init__(items)
        self.cut_at = cut_at


class Tracker(Protocol):
    name: str
    """``gitlab`` or ``jira``."""
    sprint_on_create: bool
    """Whether ``create_issue`` puts the issue into ``NewIssue.sprint`` in the same request (GitLab's
    milestone); otherwise the caller does it with ``ensure_in_sprint`` (Jira's agile API)."""
    search_lag_seconds: float
    """How long a new issue may take to appear in ``find_issue`` (Jira's search is eventually
    consistent): after a create whose outcome is unknown, search again only once this has passed."""

    def find_issue(self, dest: Destination, *, tracking_id: str) -> IssueRef | None:
        """The issue whose title starts with ``[<tracking_id>]``, if one exists.

        Called before every create: a create that timed out may have succeeded.
        """
        ...

    def create_issue(self, dest: Destination, issue: NewIssue) -> IssueRef:
        """File the issue with labels, priority and, if ``sprint_on_create``, its sprint.

        Raises ``OutcomeUnknown`` when the request was sent and the answer does not say whether the
        issue exists (a timeout, a 500/502/504): the caller must look before creating again.
        """
        ...

    def ensure_in_sprint(self, dest: Destination, ref: IssueRef, sprint: Sprint) -> None:
        """Idempotently put an existing issue into a sprint (Jira agile API; GitLab milestone)."""
        ...

    def sprints(self, dest: Destination, query: SprintQuery, *, today: str) -> SprintWindow:
        """The current sprint (contains ``today``, ISO date) and the next one after it."""
        ...

    def sprint_load(self, dest: Destination, sprint: Sprint, *, label: str, unit: CapacityUnit) -> float:
        """Open issues carrying ``label`` in the sprint: their count, or the sum of their weight."""
        ...

    def components(self, dest: Destination) -> tuple[str, ...]:
        """The names of the project's components (Jira, ``GET /project/{key}/components``); GitLab has
        none and answers ``()`` without a request. Callers cache it."""
        ...

    def add_comment(self, dest: Destination, ref: IssueRef, body: str, *, reporter_text: str | None = None) -> None:
        """Add a comment to the issue: ``body`` is the bridge's own words (formatted as written, but
        never running GitLab quick actions or mentions); ``reporter_text``, what a reporter wrote,
        follows it made inert (GitLab blockquote without mentions or references, Jira ``{noformat}``)."""
        ...

    def reopen(self, dest: Destination, ref: IssueRef) -> None:
        """Reopen a closed issue; a no-op when it is already open."""
        ...

    def issue_state(self, dest: Destination, ref: IssueRef) -> IssueSnapshot:
        """The issue as it is now: open/closed, labels, Jira status, resolution, priority, sprint, components."""
        ...

    def update_labels(self, dest: Destination, ref: IssueRef, *, add: Sequence[str], remove: Sequence[str]) -> None:
        """Add and remove labels without touching the others (idempotent)."""
        ...

    def upload_attachment(
        self, dest: Destination, ref: IssueRef, *, filename: str, content_type: str, content: bytes
    ) -> None:
        """Attach a file to the issue: GitLab uploads it to the project and links it in a note,
        Jira adds it as an issue attachment. Not idempotent: a retry attaches it again."""
        ...

    def redact_issue(self, dest: Destination, ref: IssueRef, text: str) -> None:
        """Replace the issue's description with ``text`` (the bridge's own words, written as given):
        the reporter's text leaves the tracker when their personal data is erased. Idempotent."""
        ...

    def account(self) -> Account:
        """Who the bridge is in this tracker (cached after the first call)."""
        ...

    def changed_since(self, dest: Destination, since: datetime) -> ChangedIssues:
        """Issues of the project updated at or after ``since``: (ref, title) pairs, oldest change
        first, for reconciliation; ``cut_at`` says where a listing cut short by its bound stopped."""
        ...

    def check(self, dest: Destination, query: SprintQuery, *, today: str) -> list[str]:
        """Online check of credentials, project, board and current sprint; problems found."""
        ...
