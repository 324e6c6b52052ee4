"""A tracker issue as the sandbox's state (``GET /_sandbox/state``) shows it, for either tracker."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bridge.tracking import TRACKING_ID

_TITLE_ID = re.compile(r"\[(" + TRACKING_ID.pattern + r")\]")


@dataclass(frozen=True)
class Issue:
    """A sandbox issue of either tracker, in the few terms the checks need."""

    tracker: str
    key: str
    """What ``/_sandbox/act`` takes: the GitLab iid or the Jira key."""
    title: str
    labels: tuple[str, ...]
    sprints: tuple[str, ...]
    """GitLab: the milestone's title; Jira: the names in the Sprint field."""
    priority: str | None
    closed: bool
    comments: tuple[str, ...]
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def gitlab(cls, data: dict[str, Any]) -> Issue:
        milestone = data.get("milestone") or {}
        return cls(
            tracker="gitlab",
            key=str(data["iid"]),
            title=data["title"],
            labels=tuple(data.get("labels") or ()),
            sprints=(milestone["title"],) if milestone else (),
            priority=None,
            closed=data["state"] == "closed",
            comments=tuple(note.get("body", "") for note in data.get("notes") or () if not note.get("system")),
            raw=data,
        )

    @classmethod
    def jira(cls, data: dict[str, Any]) -> Issue:
        fields = data["fields"]
        sprints = fields.get("customfield_10020") or []
        return cls(
            tracker="jira",
            key=data["key"],
            title=fields["summary"],
            labels=tuple(fields.get("labels") or ()),
            sprints=tuple(s["name"] for s in sprints),
            priority=(fields.get("priority") or {}).get("name"),
            closed=fields["status"]["statusCategory"]["key"] == "done",
            comments=tuple(c.get("body", "") for c in (fields.get("comment") or {}).get("comments") or ()),
            raw=data,
        )

    @classmethod
    def all_in(cls, state: dict[str, Any], tracker: str | None = None) -> list[Issue]:
        """The issues in a sandbox state: of ``tracker``, or of both."""
        found: list[Issue] = []
        if tracker in (None, "gitlab"):
            found += [cls.gitlab(issue) for issue in state["gitlab"]["issues"]]
        if tracker in (None, "jira"):
            found += [cls.jira(issue) for issue in state["jira"]["issues"]]
        return found

    @property
    def tracking_id(self) -> str | None:
        match = _TITLE_ID.match(self.title)
        return match.group(1) if match else None
