"""GitLab and Jira webhook bodies -> the little the bridge needs from them.

Pure parsing. The issue's state is never taken from a webhook body (it may be late or
repeated): an issue event only says "look at this issue again". Comments are events
in their own right and are kept whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bridge.tracking import TRACKING_ID

TITLE_PREFIX = re.compile(r"^\s*\[(" + TRACKING_ID.pattern + r")\]")

SYNC_TICKET = "sync_ticket"
RELAY_COMMENT = "relay_comment"

GITLAB_ISSUE_EVENTS = {"Issue Hook", "Confidential Issue Hook"}
GITLAB_NOTE_EVENTS = {"Note Hook", "Confidential Note Hook"}
JIRA_ISSUE_EVENTS = {"jira:issue_created", "jira:issue_updated"}
JIRA_COMMENT_EVENTS = {"comment_created"}


@dataclass(frozen=True, kw_only=True)
class Comment:
    id: str
    body: str
    author_id: str | None
    internal: bool


@dataclass(frozen=True, kw_only=True)
class TrackerHook:
    """What one webhook delivery is about."""

    tracker: str
    event: str
    tracking_id: str
    issue_key: str
    actor_id: str | None
    comments: tuple[Comment, ...] = ()
    issue_changed: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


class NotOurs(Exception):
    """A valid delivery the bridge has nothing to do with (another event, another issue)."""


def tracking_id_in(title: object) -> str | None:
    match = TITLE_PREFIX.match(title) if isinstance(title, str) else None
    return match.group(1) if match else None


def parse_gitlab(event: str, payload: dict[str, Any]) -> TrackerHook:
    """An Issue Hook or Note Hook on one of our issues; raise ``NotOurs`` otherwise."""
    user = payload.get("user") or {}
    actor = str(user["id"]) if isinstance(user, dict) and user.get("id") is not None else None
    kind = payload.get("object_kind")
    if event in GITLAB_ISSUE_EVENTS and kind == "issue":
        attrs = _dict(payload.get("object_attributes"))
        return _hook("gitlab", event, attrs.get("title"), attrs.get("iid"), actor)
    if event in GITLAB_NOTE_EVENTS and kind == "note":
        attrs = _dict(payload.get("object_attributes"))
        if attrs.get("noteable_type") != "Issue":
            raise NotOurs("a comment on something other than an issue")
        if attrs.get("system"):
            raise NotOurs("a system note")
        issue = _dict(payload.get("issue"))
        internal = bool(
            attrs.get("internal") or attrs.get("confidential") or payload.get("event_type") == "confidential_note"
        )
        comment = Comment(
            id=str(attrs.get("id")), body=str(attrs.get("note") or ""), author_id=actor, internal=internal
        )
        return _hook("gitlab", event, issue.get("title"), issue.get("iid"), actor, (comment,), issue_changed=False)
    raise NotOurs(f"GitLab event {event!r} is not used")


def parse_jira(payload: dict[str, Any]) -> TrackerHook:
    """An issue or comment event on one of our issues; raise ``NotOurs`` otherwise."""
    event = str(payload.get("webhookEvent") or "")
    issue = _dict(payload.get("issue"))
    fields = _dict(issue.get("fields"))
    user = _dict(payload.get("user"))
    actor = _jira_user_id(user)
    comments: tuple[Comment, ...] = ()
    raw_comment = payload.get("comment")
    if isinstance(raw_comment, dict) and event in (*JIRA_COMMENT_EVENTS, "jira:issue_updated"):
        comments = (_jira_comment(raw_comment),)
        actor = comments[0].author_id or actor
    if event in JIRA_ISSUE_EVENTS:
        return _hook("jira", event, fields.get("summary"), issue.get("key"), actor, comments)
    if event in JIRA_COMMENT_EVENTS:
        return _hook("jira", event, fields.get("summary"), issue.get("key"), actor, comments, issue_changed=False)
    raise NotOurs(f"Jira event {event!r} is not used")


def _jira_comment(raw: dict[str, Any]) -> Comment:
    body = raw.get("body")
    text = body if isinstance(body, str) else _adf_text(body)
    internal = bool(raw.get("visibility")) or raw.get("jsdPublic") is False
    for prop in raw.get("properties") or []:
        if isinstance(prop, dict) and prop.get("key") == "sd.public.comment":
            internal = internal or bool(_dict(prop.get("value")).get("internal"))
    return Comment(
        id=str(raw.get("id")), body=text, author_id=_jira_user_id(_dict(raw.get("author"))), internal=internal
    )


def _adf_text(node: Any) -> str:
    """Plain text of an Atlassian Document Format body (some sites send ADF in webhooks)."""
    if isinstance(node, dict):
        if node.get("type") == "text":
            return str(node.get("text") or "")
        parts = [_adf_text(child) for child in node.get("content") or []]
        joiner = "\n" if node.get("type") in ("doc", "bulletList", "orderedList") else ""
        return joiner.join(parts) + ("\n" if node.get("type") == "paragraph" else "")
    if isinstance(node, list):
        return "".join(_adf_text(child) for child in node)
    return ""


def _jira_user_id(user: dict[str, Any]) -> str | None:
    for key in ("accountId", "key", "name"):
        if user.get(key):
            return str(user[key])
    return None


def _hook(
    tracker: str,
    event: str,
    title: object,
    key: object,
    actor: str | None,
    comments: tuple[Comment, ...] = (),
    *,
    issue_changed: bool = True,
) -> TrackerHook:
    tracking_id = tracking_id_in(title)
    if tracking_id is None or key is None:
        raise NotOurs("not an issue the bridge filed")
    return TrackerHook(
        tracker=tracker,
        event=event,
        tracking_id=tracking_id,
        issue_key=str(key),
        actor_id=actor,
        comments=comments,
        issue_changed=issue_changed,
    )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
