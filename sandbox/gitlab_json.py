"""GitLab REST API v4 representations (``labels`` as strings, ``milestone`` as an object)."""

from __future__ import annotations

from datetime import date
from typing import Any

from sandbox import clock
from sandbox.gitlab_model import GlHook, GlIssue, GlMilestone, GlNote, GlProject, GlUser
from sandbox.gitlab_store import GitLabStore

JSON = dict[str, Any]


def user(u: GlUser, base_url: str) -> JSON:
    return {
        "id": u.id,
        "username": u.username,
        "name": u.name,
        "state": "active",
        "locked": False,
        "avatar_url": f"{base_url}/uploads/-/system/user/avatar/{u.id}/avatar.png",
        "web_url": f"{base_url}/{u.username}",
    }


def current_user(u: GlUser, base_url: str) -> JSON:
    return {
        **user(u, base_url),
        "email": u.email,
        "public_email": None,
        "bot": u.username.endswith("-bot"),
        "is_admin": False,
        "created_at": "2024-01-01T00:00:00.000Z",
        "two_factor_enabled": False,
        "external": False,
    }


def project(p: GlProject, base_url: str) -> JSON:
    web_url = f"{base_url}/{p.path_with_namespace}"
    return {
        "id": p.id,
        "description": p.description,
        "name": p.name,
        "name_with_namespace": f"{p.group.name} / {p.name}",
        "path": p.path,
        "path_with_namespace": p.path_with_namespace,
        "created_at": clock.gitlab_rest(p.created_at),
        "default_branch": "main",
        "visibility": "private",
        "web_url": web_url,
        "http_url_to_repo": f"{web_url}.git",
        "issues_enabled": True,
        "namespace": {
            "id": p.group.id,
            "name": p.group.name,
            "path": p.group.path,
            "kind": "group",
            "full_path": p.group.path,
            "parent_id": None,
            "web_url": f"{base_url}/groups/{p.group.path}",
        },
        "_links": {
            "self": f"{base_url}/api/v4/projects/{p.id}",
            "issues": f"{base_url}/api/v4/projects/{p.id}/issues",
        },
    }


def milestone(m: GlMilestone, store: GitLabStore, base_url: str, *, today: date) -> JSON:
    if m.project_id is not None:
        owner = store.projects[m.project_id].path_with_namespace
        web_url = f"{base_url}/{owner}/-/milestones/{m.iid}"
    else:
        web_url = f"{base_url}/groups/{store.group.path}/-/milestones/{m.iid}"
    data: JSON = {
        "id": m.id,
        "iid": m.iid,
        "title": m.title,
        "description": m.description,
        "state": m.state,
        "created_at": clock.gitlab_rest(m.created_at),
        "updated_at": clock.gitlab_rest(m.updated_at),
        "due_date": m.due_date.isoformat() if m.due_date else None,
        "start_date": m.start_date.isoformat() if m.start_date else None,
        "expired": bool(m.due_date and m.due_date < today),
        "web_url": web_url,
    }
    if m.project_id is not None:
        data["project_id"] = m.project_id
    else:
        data["group_id"] = m.group_id
    return data


def issue(i: GlIssue, store: GitLabStore, base_url: str, *, today: date) -> JSON:
    p = store.projects[i.project_id]
    web_url = f"{base_url}/{p.path_with_namespace}/-/issues/{i.iid}"
    api = f"{base_url}/api/v4/projects/{p.id}"
    m = store.milestone(i.milestone_id)
    closed_by = store.users.get(i.closed_by_id) if i.closed_by_id else None
    return {
        "id": i.id,
        "iid": i.iid,
        "project_id": i.project_id,
        "title": i.title,
        "description": i.description,
        "state": i.state,
        "created_at": clock.gitlab_rest(i.created_at),
        "updated_at": clock.gitlab_rest(i.updated_at),
        "closed_at": clock.gitlab_rest(i.closed_at),
        "closed_by": user(closed_by, base_url) if closed_by else None,
        "labels": sorted(i.labels),
        "milestone": milestone(m, store, base_url, today=today) if m else None,
        "assignees": [],
        "assignee": None,
        "author": user(store.users[i.author_id], base_url),
        "type": "ISSUE",
        "issue_type": "issue",
        "user_notes_count": len(i.notes),
        "merge_requests_count": 0,
        "upvotes": 0,
        "downvotes": 0,
        "due_date": i.due_date,
        "confidential": i.confidential,
        "discussion_locked": i.discussion_locked,
        "web_url": web_url,
        "time_stats": {
            "time_estimate": 0,
            "total_time_spent": 0,
            "human_time_estimate": None,
            "human_total_time_spent": None,
        },
        "task_completion_status": {"count": 0, "completed_count": 0},
        "weight": i.weight,
        "has_tasks": False,
        "severity": "UNKNOWN",
        "moved_to_id": None,
        "service_desk_reply_to": None,
        "references": {
            "short": f"#{i.iid}",
            "relative": f"#{i.iid}",
            "full": f"{p.path_with_namespace}#{i.iid}",
        },
        "_links": {
            "self": f"{api}/issues/{i.iid}",
            "notes": f"{api}/issues/{i.iid}/notes",
            "award_emoji": f"{api}/issues/{i.iid}/award_emoji",
            "project": api,
            "closed_as_duplicate_of": None,
        },
    }


def note(n: GlNote, i: GlIssue, store: GitLabStore, base_url: str) -> JSON:
    return {
        "id": n.id,
        "type": None,
        "body": n.body,
        "attachment": None,
        "author": user(store.users[n.author_id], base_url),
        "created_at": clock.gitlab_rest(n.created_at),
        "updated_at": clock.gitlab_rest(n.created_at),
        "system": False,
        "noteable_id": i.id,
        "noteable_type": "Issue",
        "project_id": i.project_id,
        "noteable_iid": i.iid,
        "resolvable": False,
        "confidential": n.internal,
        "internal": n.internal,
        "imported": False,
        "commands_changes": {},
    }


def hook(h: GlHook) -> JSON:
    return {
        "id": h.id,
        "url": h.url,
        "project_id": h.project_id,
        "created_at": clock.gitlab_rest(h.created_at),
        "enable_ssl_verification": True,
        "alert_status": "executable",
        "disabled_until": None,
        "name": None,
        "description": None,
        **h.events,
    }
