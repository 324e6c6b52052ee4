"""GitLab's records (users, project, milestones, labels, issues, notes, hooks), updates, changes, errors."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any


@dataclass
class GlUser:
    id: int
    username: str
    name: str
    email: str


@dataclass
class GlGroup:
    id: int
    name: str
    path: str


@dataclass
class GlProject:
    id: int
    name: str
    path: str
    group: GlGroup
    description: str
    created_at: datetime

    @property
    def path_with_namespace(self) -> str:
        return f"{self.group.path}/{self.path}"


@dataclass
class GlMilestone:
    id: int
    iid: int
    title: str
    description: str
    state: str
    """``active`` or ``closed``."""
    start_date: date | None
    due_date: date | None
    created_at: datetime
    updated_at: datetime
    project_id: int | None = None
    group_id: int | None = None


@dataclass
class GlLabel:
    id: int
    title: str
    color: str
    project_id: int
    created_at: datetime
    description: str | None = None


@dataclass
class GlNote:
    id: int
    body: str
    author_id: int
    internal: bool
    created_at: datetime


@dataclass
class GlIssue:
    id: int
    iid: int
    project_id: int
    title: str
    description: str | None
    author_id: int
    created_at: datetime
    updated_at: datetime
    state: str = "opened"
    labels: list[str] = field(default_factory=list)
    milestone_id: int | None = None
    confidential: bool = False
    weight: int | None = None
    due_date: str | None = None
    discussion_locked: bool | None = None
    closed_at: datetime | None = None
    closed_by_id: int | None = None
    updated_by_id: int | None = None
    last_edited_at: datetime | None = None
    last_edited_by_id: int | None = None
    notes: list[GlNote] = field(default_factory=list)

    @property
    def state_id(self) -> int:
        return 1 if self.state == "opened" else 2


@dataclass
class GlHook:
    id: int
    project_id: int
    url: str
    token: str | None
    created_at: datetime
    events: dict[str, bool]
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))


HOOK_EVENT_FLAGS = (
    "push_events",
    "issues_events",
    "confidential_issues_events",
    "note_events",
    "confidential_note_events",
    "merge_requests_events",
    "tag_push_events",
    "job_events",
    "pipeline_events",
    "wiki_page_events",
)


@dataclass
class IssueUpdate:
    """Attributes of a ``PUT /issues/:iid``; ``None`` means "not given"."""

    title: str | None = None
    description: str | None = None
    state_event: str | None = None
    labels: list[str] | None = None
    add_labels: list[str] | None = None
    remove_labels: list[str] | None = None
    milestone_id: int | None = None
    """``0`` unassigns."""
    confidential: bool | None = None
    weight: int | None = None
    clear_weight: bool = False
    due_date: str | None = None
    discussion_locked: bool | None = None


@dataclass
class IssueChange:
    """What one write did to an issue: the Issue Hook's ``action`` and ``changes``."""

    issue: GlIssue
    actor: GlUser
    action: str
    changes: dict[str, tuple[Any, Any]]


@dataclass
class NoteAdded:
    issue: GlIssue
    note: GlNote
    actor: GlUser


class GitLabError(Exception):
    """A request the real GitLab would refuse: ``status`` and the JSON ``message``."""

    def __init__(self, status: int, message: Any) -> None:
        super().__init__(str(message))
        self.status = status
        self.message = message


def scope_of(label: str) -> str | None:
    """The scope of a scoped label (``workflow::qa`` -> ``workflow``), else ``None``."""
    return label.rsplit("::", 1)[0] if "::" in label else None


def apply_labels(current: list[str], added: list[str]) -> list[str]:
    """``current`` plus ``added``; an added scoped label replaces others of its scope."""
    result = list(current)
    for label in added:
        scope = scope_of(label)
        if scope is not None:
            result = [x for x in result if x == label or scope_of(x) != scope]
        if label not in result:
            result.append(label)
    return result
