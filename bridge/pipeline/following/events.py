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

GITLAB_ISSUE_KINDS = {"issue", "work_item"}
"""``work_item``: GitLab 17.2+ sends it (still as ``Issue Hook``) once an issue's type is changed to
incident or task; it is the same issue, so it is followed like one."""
GITLAB_EVENT_NAMES = {
    "Issue Hook",
    "Confidential Issue Hook",
    "Work Item Hook",
    "Confidential Work Item Hook",
    "Note Hook",
    "Confidential Note Hook",
}
JIRA_ISSUE_EVENTS = {"jira:issue_created", "jira:issue_updated"}
JIRA_DELETE_EVENTS = {"jira:issue_deleted"}
"""Read like any issue event: the fresh read answers 404 and the ticket is set aside for support."""
JIRA_COMMENT_EVENTS = {"comment_created"}


@dataclass(frozen=True, kw_only=True)
class Comment:
    id: str
    body: str
    author_id: str | None
    internal: bool
    author_username: str | None = None
    """Only used when the tracker did not say ``author_id`` (older GitLab payloads)."""
    shared: bool = False
    """The tracker itself marks it for the customer (Jira Service Management ``jsdPublic: true``)."""


@dataclass(frozen=True, kw_only=True)
class TrackerHook:
    """What one webhook delivery is about."""

    tracker: str
    event: str
    tracking_id: str
    issue_key: str
    actor_id: str | None
    comments: tuple[Comment, ...] = ()
    actor_username: str | None = None
    """Only used when the tracker did not say ``actor_id`` (older GitLab payloads)."""
    issue_changed: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


class NotOurs(Exception):
    """A valid delivery the bridge has nothing to do with (another event, another issue)."""


def tracking_id_in(title: object) -> str | None:
    match = TITLE_PREFIX.match(title) if isinstance(title, str) else None
    return match.group(1) if match else None


def parse_gitlab(event: str, payload: dict[str, Any]) -> TrackerHook:
    """An issue (or work item) event or a note on one of our issues; raise ``NotOurs`` otherwise.

    Keyed on ``object_kind``, not on the ``X-Gitlab-Event`` header: work items arrive as
    ``Issue Hook`` too, and the header of confidential events differs.

    The actor is ``user.id``. Older GitLab payloads carry no ``user.id``: then a note's actor is its
    ``object_attributes.author_id``, and otherwise ``user.username`` identifies them (an issue's
    ``author_id`` is who opened it, usually the bridge, never who changed it).
    """
    user = _dict(payload.get("user"))
    actor = _identifier(user.get("id"))
    username = user.get("username") if isinstance(user.get("username"), str) and user.get("username") else None
    kind = payload.get("object_kind")
    kind = kind if isinstance(kind, str) else None  # a custom template can put anything there
    attrs = _dict(payload.get("object_attributes"))
    if kind in GITLAB_ISSUE_KINDS or kind == "note":
        # The header names the event as stored; one we do not know is not kept verbatim.
        event = event if event in GITLAB_EVENT_NAMES else ("Note Hook" if kind == "note" else "Issue Hook")
    if kind in GITLAB_ISSUE_KINDS:
        return _hook("gitlab", event, attrs.get("title"), attrs.get("iid"), actor, actor_username=username)
    if kind == "note":
        if attrs.get("noteable_type") != "Issue":
            raise NotOurs("a comment on something other than an issue")
        if attrs.get("system"):
            raise NotOurs("a system note")
        actor = actor or _identifier(attrs.get("author_id"))
        issue = _dict(payload.get("issue") or payload.get("work_item"))
        internal = bool(
            attrs.get("internal") or attrs.get("confidential") or payload.get("event_type") == "confidential_note"
        )
        comment = Comment(
            id=str(attrs.get("id")),
            body=str(attrs.get("note") or ""),
            author_id=actor,
            author_username=username,
            internal=internal,
        )
        return _hook(
            "gitlab",
            event,
            issue.get("title"),
            issue.get("iid"),
            actor,
            (comment,),
            issue_changed=False,
            actor_username=username,
        )
    raise NotOurs(f"GitLab event {event[:60]!r} ({str(kind)[:40]!r}) is not used")


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
    if event in JIRA_ISSUE_EVENTS or event in JIRA_DELETE_EVENTS:
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
        id=str(raw.get("id")),
        body=text,
        author_id=_jira_user_id(_dict(raw.get("author"))),
        internal=internal,
        shared=raw.get("jsdPublic") is True and not internal,
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


def _identifier(value: Any) -> str | None:
    """A user id as a string (GitLab sends numbers), or None when absent or not an id."""
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        return None
    return str(value)


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
    actor_username: str | None = None,
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
        actor_username=actor_username,
        comments=comments,
        issue_changed=issue_changed,
    )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
