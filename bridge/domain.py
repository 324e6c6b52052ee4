"""Value objects and enums that travel through the pipeline."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any


class Severity(enum.StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        """Higher is more severe; used to take the maximum of several rules."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}


class Kind(enum.StrEnum):
    HOTFIX = "hotfix"
    BUGFIX = "bugfix"


class Status(enum.StrEnum):
    """The reporter-facing statuses of CONTRACT section 1, and nothing else."""

    RECEIVED = "received"
    TRIAGED = "triaged"
    IN_PROGRESS = "in_progress"
    IN_QA = "in_qa"
    RESOLVED = "resolved"
    DECLINED = "declined"
    REOPENED = "reopened"


class Channel(enum.StrEnum):
    CHATBOT = "chatbot"
    EMAIL = "email"


class SprintSlot(enum.StrEnum):
    CURRENT = "current"
    NEXT = "next"


@dataclass(frozen=True, kw_only=True)
class Attachment:
    filename: str
    content_type: str | None = None
    url: str | None = None


@dataclass(frozen=True, kw_only=True)
class Report:
    """What a reporter sent, as the classifier and the tracker see it."""

    title: str
    description: str
    impact: str | None = None
    declared_priority: str | None = None
    product: str | None = None
    organization: str | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    attachments: tuple[Attachment, ...] = ()
    channel: Channel = Channel.CHATBOT


@dataclass(frozen=True, kw_only=True)
class Classification:
    severity: Severity
    kind: Kind
    po_review: bool
    rules: tuple[str, ...]
    """Names of the rules that fired, shown to support in the issue."""


@dataclass(frozen=True, kw_only=True)
class Sprint:
    """A GitLab milestone or a Jira sprint."""

    id: str
    name: str
    start_date: date | None = None
    due_date: date | None = None


@dataclass(frozen=True, kw_only=True)
class SprintWindow:
    current: Sprint | None
    next: Sprint | None

    def get(self, slot: SprintSlot) -> Sprint | None:
        return self.current if slot is SprintSlot.CURRENT else self.next


@dataclass(frozen=True, kw_only=True)
class Plan:
    sprint: Sprint | None
    slot: SprintSlot | None
    reason: str

    @property
    def needs_planning(self) -> bool:
        return self.sprint is None


@dataclass(frozen=True, kw_only=True)
class Destination:
    """Where an issue is filed: which tracker, which project, which board."""

    tracker: str
    project: str
    board_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class IssueRef:
    """A tracker issue: GitLab iid or Jira key, and its web URL (never shown to reporters)."""

    key: str
    url: str | None = None


@dataclass(frozen=True, kw_only=True)
class IssueSnapshot:
    """An issue's current state as the tracker reports it, read fresh (never from a webhook body)."""

    key: str
    title: str
    open: bool
    labels: tuple[str, ...] = ()
    status_id: str | None = None
    """Jira status id (GitLab: None)."""
    status_name: str | None = None
    """Jira status name (GitLab: None)."""
    status_category: str | None = None
    """Jira status category key: ``new``, ``indeterminate`` or ``done`` (GitLab: None)."""
    resolution: str | None = None
    """Jira resolution name (GitLab: None)."""
    priority: str | None = None
    """Jira priority name (GitLab: None)."""
    sprint_id: str | None = None
    """GitLab milestone id or Jira open sprint id the issue is in, if any."""
    updated_at: datetime | None = None
    components: tuple[str, ...] = ()
    """Jira component names (GitLab has none)."""


@dataclass(frozen=True, kw_only=True)
class Account:
    """The tracker user the bridge acts as; its own changes must never echo back."""

    id: str
    """GitLab user id or Jira accountId (Data Center: user key)."""
    username: str | None = None


@dataclass(frozen=True, kw_only=True)
class NewIssue:
    """Everything a tracker adapter needs to file one issue, already decided."""

    tracking_id: str
    report: Report
    classification: Classification
    labels: tuple[str, ...]
    priority: str | None
    """Jira priority name; GitLab ignores it."""
    sprint: Sprint | None
    reporter_name: str | None = None
    reporter_email: str | None = None
    """Only set when configuration allows personal data in the tracker."""
    category: str | None = None
    """The report's category (``categories.yaml``), shown beside the severity in the description."""
    category_rule: str | None = None
    """Why: the category rule that fired (``product:widget``, ``phrase:invoice``, ``default``)."""
    components: tuple[str, ...] = ()
    """Jira components to set (the category, when the project has a component of that name)."""

    @property
    def title(self) -> str:
        return f"[{self.tracking_id}] {self.report.title}"
