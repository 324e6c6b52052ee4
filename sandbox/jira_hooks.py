"""Jira webhook bodies: ``jira:issue_created``, ``jira:issue_updated`` (with ``changelog``), ``comment_created``."""

from __future__ import annotations

from typing import Any

from sandbox import clock, jira_json
from sandbox.events import HookEvent
from sandbox.jira_model import CommentAdded, IssueCreated, IssueUpdated, JiraChange, JiraIssue
from sandbox.jira_store import JiraStore

JSON = dict[str, Any]


def _issue(store: JiraStore, issue: JiraIssue, base: str) -> JSON:
    return {
        "id": issue.id,
        "self": f"{base}/rest/api/2/issue/{issue.id}",
        "key": issue.key,
        "fields": jira_json.issue_fields(issue, store, base),
    }


def event(store: JiraStore, change: JiraChange, base: str) -> HookEvent:
    """The webhook event for one change."""
    at = clock.epoch_ms(clock.now())
    issue = change.issue
    payload: JSON
    if isinstance(change, IssueCreated):
        name = "jira:issue_created"
        payload = {
            "timestamp": at,
            "webhookEvent": name,
            "issue_event_type_name": "issue_created",
            "user": jira_json.user(change.actor, base),
            "issue": _issue(store, issue, base),
        }
    elif isinstance(change, IssueUpdated):
        name = "jira:issue_updated"
        payload = {
            "timestamp": at,
            "webhookEvent": name,
            "issue_event_type_name": change.type_name,
            "user": jira_json.user(change.actor, base),
            "issue": _issue(store, issue, base),
            "changelog": {"id": change.changelog_id, "items": change.items},
        }
    else:
        assert isinstance(change, CommentAdded)
        name = "comment_created"
        fields = jira_json.issue_fields(issue, store, base)
        payload = {
            "timestamp": at,
            "webhookEvent": name,
            "comment": jira_json.comment(change.comment, issue, base),
            "issue": {
                "id": issue.id,
                "self": f"{base}/rest/api/2/issue/{issue.id}",
                "key": issue.key,
                "fields": {k: fields[k] for k in ("summary", "status", "issuetype", "priority", "labels")},
            },
        }
    return HookEvent(
        tracker="jira",
        name=name,
        scope=name,
        project_id=int(issue.project.id),
        payload=payload,
        subject=issue.key,
    )
