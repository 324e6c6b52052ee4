"""Jira's records: users, workflow statuses and transitions, sprints, issues, comments, webhooks, changes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SPRINT_FIELD = "customfield_10020"
STORY_POINTS_FIELD = "customfield_10016"

# statusCategory key -> (id, name, colorName)
STATUS_CATEGORIES: dict[str, tuple[int, str, str]] = {
    "new": (2, "To Do", "blue-gray"),
    "indeterminate": (4, "In Progress", "yellow"),
    "done": (3, "Done", "green"),
}


@dataclass(frozen=True)
class JiraUser:
    account_id: str
    display_name: str
    email: str


@dataclass(frozen=True)
class Status:
    id: str
    name: str
    category: str


@dataclass(frozen=True)
class Transition:
    id: str
    name: str
    from_ids: tuple[str, ...]
    to_id: str


@dataclass(frozen=True)
class Named:
    """Priority, resolution or issue type: an id and a name."""

    id: str
    name: str
    description: str = ""


@dataclass(frozen=True)
class Component:
    """A project component (``GET /project/{key}/components``)."""

    id: str
    name: str
    description: str = ""


@dataclass
class Sprint:
    id: int
    name: str
    state: str
    """``closed``, ``active`` or ``future``."""
    board_id: int
    start: datetime | None = None
    end: datetime | None = None
    complete: datetime | None = None
    goal: str = ""


@dataclass(frozen=True)
class JiraProject:
    id: str
    key: str
    name: str


@dataclass(frozen=True)
class Board:
    id: int
    name: str
    project: JiraProject


@dataclass
class Comment:
    id: str
    body: str
    author: JiraUser
    created: datetime
    public: bool
    visibility: dict[str, Any] | None = None


@dataclass
class JiraIssue:
    id: str
    key: str
    project: JiraProject
    issuetype: Named
    summary: str
    description: str | None
    priority: Named
    reporter: JiraUser
    created: datetime
    updated: datetime
    status_id: str = "10000"
    labels: list[str] = field(default_factory=list)
    resolution: Named | None = None
    resolutiondate: datetime | None = None
    sprint_ids: list[int] = field(default_factory=list)
    story_points: float | None = None
    comments: list[Comment] = field(default_factory=list)
    components: list[Component] = field(default_factory=list)


@dataclass
class JiraWebhook:
    id: int
    name: str
    url: str
    events: list[str]
    secret: str | None
    jql: str | None
    created: datetime
    enabled: bool = True


@dataclass
class IssueCreated:
    issue: JiraIssue
    actor: JiraUser


@dataclass
class IssueUpdated:
    issue: JiraIssue
    actor: JiraUser
    type_name: str
    """``issue_event_type_name``: ``issue_generic`` for transitions, ``issue_updated`` for edits."""
    items: list[dict[str, Any]]
    changelog_id: str


@dataclass
class CommentAdded:
    issue: JiraIssue
    comment: Comment
    actor: JiraUser


JiraChange = IssueCreated | IssueUpdated | CommentAdded


class JiraError(Exception):
    """A request Jira would refuse, with its ``errorMessages`` / ``errors`` body."""

    def __init__(self, status: int, messages: list[str] | None = None, errors: dict[str, str] | None = None) -> None:
        super().__init__("; ".join([*(messages or []), *(errors or {}).values()]))
        self.status = status
        self.messages = messages or []
        self.errors = errors or {}
