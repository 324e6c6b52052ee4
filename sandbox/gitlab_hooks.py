"""GitLab webhook bodies: Issue Hook and Note Hook, shaped like ``IssueBuilder``/``NoteBuilder`` output."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sandbox import clock
from sandbox.events import HookEvent
from sandbox.gitlab_model import GlIssue, GlProject, GlUser, IssueChange, NoteAdded
from sandbox.gitlab_store import GitLabStore

JSON = dict[str, Any]


def _user(u: GlUser, base_url: str) -> JSON:
    return {
        "id": u.id,
        "name": u.name,
        "username": u.username,
        "avatar_url": f"{base_url}/uploads/-/system/user/avatar/{u.id}/avatar.png",
        "email": u.email,
    }


def _project(p: GlProject, base_url: str) -> JSON:
    web_url = f"{base_url}/{p.path_with_namespace}"
    return {
        "id": p.id,
        "name": p.name,
        "description": p.description,
        "web_url": web_url,
        "avatar_url": None,
        "git_ssh_url": f"git@{base_url.split('://')[-1]}:{p.path_with_namespace}.git",
        "git_http_url": f"{web_url}.git",
        "namespace": p.group.name,
        "visibility_level": 0,
        "path_with_namespace": p.path_with_namespace,
        "default_branch": "main",
        "ci_config_path": None,
        "homepage": web_url,
        "url": f"{web_url}.git",
        "ssh_url": f"git@{base_url.split('://')[-1]}:{p.path_with_namespace}.git",
        "http_url": f"{web_url}.git",
    }


def _repository(p: GlProject, base_url: str) -> JSON:
    web_url = f"{base_url}/{p.path_with_namespace}"
    return {"name": p.name, "url": f"{web_url}.git", "description": p.description, "homepage": web_url}


def label_objects(store: GitLabStore, project_id: int, titles: list[str]) -> list[JSON]:
    """Labels as webhook objects (``type: ProjectLabel``), sorted by title like GitLab."""
    result = []
    for title in sorted(titles):
        label = store.label(project_id, title)
        result.append(
            {
                "id": label.id,
                "title": label.title,
                "color": label.color,
                "project_id": label.project_id,
                "created_at": clock.gitlab_hook(label.created_at),
                "updated_at": clock.gitlab_hook(label.created_at),
                "template": False,
                "description": label.description,
                "type": "ProjectLabel",
                "group_id": None,
            }
        )
    return result


def _issue_url(store: GitLabStore, issue: GlIssue, base_url: str) -> str:
    return f"{base_url}/{store.projects[issue.project_id].path_with_namespace}/-/issues/{issue.iid}"


def _change_value(store: GitLabStore, issue: GlIssue, key: str, value: Any) -> Any:
    if key == "labels":
        return label_objects(store, issue.project_id, list(value))
    if isinstance(value, datetime):
        return clock.gitlab_hook_utc(value)
    return value


def issue_event(store: GitLabStore, change: IssueChange, base_url: str) -> HookEvent:
    """The Issue Hook (``Confidential Issue Hook`` for a confidential issue) for one change."""
    issue = change.issue
    project = store.projects[issue.project_id]
    labels = label_objects(store, issue.project_id, issue.labels)
    attributes: JSON = {
        "author_id": issue.author_id,
        "closed_at": clock.gitlab_hook(issue.closed_at),
        "confidential": issue.confidential,
        "created_at": clock.gitlab_hook(issue.created_at),
        "description": issue.description,
        "discussion_locked": issue.discussion_locked,
        "due_date": issue.due_date,
        "id": issue.id,
        "iid": issue.iid,
        "last_edited_at": clock.gitlab_hook(issue.last_edited_at),
        "last_edited_by_id": issue.last_edited_by_id,
        "milestone_id": issue.milestone_id,
        "moved_to_id": None,
        "duplicated_to_id": None,
        "project_id": issue.project_id,
        "relative_position": 0,
        "state_id": issue.state_id,
        "time_estimate": 0,
        "title": issue.title,
        "updated_at": clock.gitlab_hook(issue.updated_at),
        "updated_by_id": issue.updated_by_id,
        "weight": issue.weight,
        "health_status": None,
        "type": "Issue",
        "url": _issue_url(store, issue, base_url),
        "total_time_spent": 0,
        "time_change": 0,
        "human_total_time_spent": None,
        "human_time_change": None,
        "human_time_estimate": None,
        "assignee_ids": [],
        "assignee_id": None,
        "labels": labels,
        "state": issue.state,
        "severity": "unknown",
        "customer_relations_contacts": [],
        "action": change.action,
    }
    confidential = issue.confidential
    payload: JSON = {
        "object_kind": "issue",
        "event_type": "confidential_issue" if confidential else "issue",
        "user": _user(change.actor, base_url),
        "project": _project(project, base_url),
        "object_attributes": attributes,
        "labels": labels,
        "changes": {
            key: {
                "previous": _change_value(store, issue, key, old),
                "current": _change_value(store, issue, key, new),
            }
            for key, (old, new) in change.changes.items()
        },
        "repository": _repository(project, base_url),
    }
    return HookEvent(
        tracker="gitlab",
        name="Confidential Issue Hook" if confidential else "Issue Hook",
        scope="confidential_issues_events" if confidential else "issues_events",
        project_id=project.id,
        payload=payload,
        subject=f"{project.path_with_namespace}#{issue.iid}",
    )


def note_event(store: GitLabStore, added: NoteAdded, base_url: str) -> HookEvent:
    """The Note Hook; internal notes and notes on confidential issues are ``Confidential Note Hook``."""
    issue, note = added.issue, added.note
    project = store.projects[issue.project_id]
    confidential = note.internal or issue.confidential
    url = _issue_url(store, issue, base_url)
    payload: JSON = {
        "object_kind": "note",
        "event_type": "confidential_note" if confidential else "note",
        "user": _user(added.actor, base_url),
        "project_id": project.id,
        "project": _project(project, base_url),
        "object_attributes": {
            "attachment": None,
            "author_id": note.author_id,
            "change_position": None,
            "commit_id": None,
            "created_at": clock.gitlab_hook_utc(note.created_at),
            "discussion_id": f"{note.id:040x}",
            "id": note.id,
            "line_code": None,
            "note": note.body,
            "noteable_id": issue.id,
            "noteable_type": "Issue",
            "original_position": None,
            "position": None,
            "project_id": project.id,
            "resolved_at": None,
            "resolved_by_id": None,
            "resolved_by_push": None,
            "st_diff": None,
            "system": False,
            "type": None,
            "updated_at": clock.gitlab_hook_utc(note.created_at),
            "updated_by_id": None,
            "internal": note.internal,
            "confidential": note.internal,
            "description": note.body,
            "url": f"{url}#note_{note.id}",
            "action": "create",
        },
        "repository": _repository(project, base_url),
        "issue": {
            "author_id": issue.author_id,
            "closed_at": clock.gitlab_hook_utc(issue.closed_at),
            "confidential": issue.confidential,
            "created_at": clock.gitlab_hook_utc(issue.created_at),
            "description": issue.description,
            "due_date": issue.due_date,
            "id": issue.id,
            "iid": issue.iid,
            "milestone_id": issue.milestone_id,
            "project_id": issue.project_id,
            "state_id": issue.state_id,
            "title": issue.title,
            "updated_at": clock.gitlab_hook_utc(issue.updated_at),
            "updated_by_id": issue.updated_by_id,
            "weight": issue.weight,
            "url": url,
            "assignee_ids": [],
            "assignee_id": None,
            "labels": label_objects(store, issue.project_id, issue.labels),
            "state": issue.state,
            "severity": "unknown",
            "position": 0,
            "branch_name": None,
        },
    }
    return HookEvent(
        tracker="gitlab",
        name="Confidential Note Hook" if confidential else "Note Hook",
        scope="confidential_note_events" if confidential else "note_events",
        project_id=project.id,
        payload=payload,
        subject=f"{project.path_with_namespace}#{issue.iid}",
    )
