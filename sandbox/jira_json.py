"""Jira REST v2 and agile 1.0 representations."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sandbox import clock
from sandbox.jira_model import (
    SPRINT_FIELD,
    STATUS_CATEGORIES,
    STORY_POINTS_FIELD,
    Board,
    Comment,
    Component,
    JiraIssue,
    JiraProject,
    JiraUser,
    JiraWebhook,
    Named,
    Sprint,
    Status,
    Transition,
)
from sandbox.jira_store import JiraStore

JSON = dict[str, Any]


def user(u: JiraUser, base: str) -> JSON:
    return {
        "self": f"{base}/rest/api/2/user?accountId={u.account_id}",
        "accountId": u.account_id,
        "accountType": "atlassian",
        "emailAddress": u.email,
        "displayName": u.display_name,
        "active": True,
        "timeZone": "Europe/Copenhagen",
        "avatarUrls": {"48x48": f"{base}/avatar/{u.account_id}.png"},
    }


def myself(u: JiraUser, base: str) -> JSON:
    return {**user(u, base), "locale": "en_US", "groups": {"size": 1, "items": []}}


def server_info(base: str, deployment_type: str) -> JSON:
    return {
        "baseUrl": base,
        "version": "1001.0.0-SNAPSHOT",
        "versionNumbers": [1001, 0, 0],
        "deploymentType": deployment_type,
        "buildNumber": 100287,
        "buildDate": "2026-01-01T00:00:00.000+0000",
        "serverTime": clock.jira(clock.now()),
        "scmInfo": "sandbox",
        "serverTitle": "Jira (sandbox)",
    }


def named(kind: str, n: Named, base: str) -> JSON:
    data: JSON = {"self": f"{base}/rest/api/2/{kind}/{n.id}", "id": n.id, "name": n.name}
    if n.description:
        data["description"] = n.description
    return data


def issue_type(n: Named, base: str) -> JSON:
    return {**named("issuetype", n, base), "subtask": False, "hierarchyLevel": 0, "iconUrl": ""}


def priority(n: Named, base: str) -> JSON:
    colors = {"1": "#d04437", "2": "#f15C75", "3": "#f79232", "4": "#707070", "5": "#999999"}
    return {**named("priority", n, base), "statusColor": colors.get(n.id, "#999999"), "iconUrl": ""}


def status(s: Status, base: str) -> JSON:
    cat_id, cat_name, color = STATUS_CATEGORIES[s.category]
    return {
        "self": f"{base}/rest/api/2/status/{s.id}",
        "description": "",
        "iconUrl": "",
        "name": s.name,
        "id": s.id,
        "statusCategory": {
            "self": f"{base}/rest/api/2/statuscategory/{cat_id}",
            "id": cat_id,
            "key": s.category,
            "colorName": color,
            "name": cat_name,
        },
    }


def component_ref(c: Component, base: str) -> JSON:
    """A component as an issue's ``components`` field lists it."""
    data: JSON = {"self": f"{base}/rest/api/2/component/{c.id}", "id": c.id, "name": c.name}
    if c.description:
        data["description"] = c.description
    return data


def component(c: Component, p: JiraProject, store: JiraStore, base: str) -> JSON:
    """``GET /project/{key}/components``: one entry."""
    lead = user(store.bot, base)
    return {
        **component_ref(c, base),
        "lead": lead,
        "assigneeType": "PROJECT_DEFAULT",
        "assignee": lead,
        "realAssigneeType": "PROJECT_DEFAULT",
        "realAssignee": lead,
        "isAssigneeTypeValid": True,
        "project": p.key,
        "projectId": int(p.id),
    }


def project(p: JiraProject, store: JiraStore, base: str) -> JSON:
    return {
        "self": f"{base}/rest/api/2/project/{p.id}",
        "id": p.id,
        "key": p.key,
        "name": p.name,
        "projectTypeKey": "software",
        "simplified": False,
        "style": "classic",
        "lead": user(store.bot, base),
        "issueTypes": [issue_type(t, base) for t in store.issue_types],
        "components": [component_ref(c, base) for c in store.components],
    }


def project_ref(p: JiraProject, base: str) -> JSON:
    return {"self": f"{base}/rest/api/2/project/{p.id}", "id": p.id, "key": p.key, "name": p.name}


def sprint_field(s: Sprint) -> JSON:
    data: JSON = {"id": s.id, "name": s.name, "state": s.state, "boardId": s.board_id, "goal": s.goal}
    if s.start:
        data["startDate"] = clock.agile(s.start)
    if s.end:
        data["endDate"] = clock.agile(s.end)
    if s.complete:
        data["completeDate"] = clock.agile(s.complete)
    return data


def sprint(s: Sprint, base: str) -> JSON:
    data: JSON = {"id": s.id, "self": f"{base}/rest/agile/1.0/sprint/{s.id}", "state": s.state, "name": s.name}
    for key in ("startDate", "endDate", "completeDate"):
        value = sprint_field(s).get(key)
        if value:
            data[key] = value
    data["originBoardId"] = s.board_id
    data["goal"] = s.goal
    return data


def board(b: Board, base: str) -> JSON:
    return {
        "id": b.id,
        "self": f"{base}/rest/agile/1.0/board/{b.id}",
        "name": b.name,
        "type": "scrum",
        "location": {
            "projectId": int(b.project.id),
            "projectKey": b.project.key,
            "projectName": b.project.name,
            "displayName": f"{b.project.name} ({b.project.key})",
            "projectTypeKey": "software",
            "name": f"{b.project.name} ({b.project.key})",
        },
    }


def comment(c: Comment, issue: JiraIssue, base: str) -> JSON:
    data: JSON = {
        "self": f"{base}/rest/api/2/issue/{issue.id}/comment/{c.id}",
        "id": c.id,
        "author": user(c.author, base),
        "body": c.body,
        "updateAuthor": user(c.author, base),
        "created": clock.jira(c.created),
        "updated": clock.jira(c.created),
        "jsdPublic": c.public,
    }
    if c.visibility:
        data["visibility"] = c.visibility
    if not c.public:
        data["properties"] = [{"key": "sd.public.comment", "value": {"internal": True}}]
    return data


def comments_page(issue: JiraIssue, base: str) -> JSON:
    items = [comment(c, issue, base) for c in issue.comments]
    return {"comments": items, "maxResults": len(items), "total": len(items), "startAt": 0}


def issue_fields(issue: JiraIssue, store: JiraStore, base: str) -> JSON:
    return {
        "summary": issue.summary,
        "description": issue.description,
        "issuetype": issue_type(issue.issuetype, base),
        "project": project_ref(issue.project, base),
        "priority": priority(issue.priority, base),
        "labels": list(issue.labels),
        "components": [component_ref(c, base) for c in issue.components],
        "status": status(store.status(issue), base),
        "resolution": named("resolution", issue.resolution, base) if issue.resolution else None,
        "resolutiondate": clock.jira(issue.resolutiondate),
        "created": clock.jira(issue.created),
        "updated": clock.jira(issue.updated),
        "reporter": user(issue.reporter, base),
        "creator": user(issue.reporter, base),
        "assignee": None,
        SPRINT_FIELD: [sprint_field(s) for s in store.issue_sprints(issue)] or None,
        STORY_POINTS_FIELD: issue.story_points,
        "comment": comments_page(issue, base),
    }


def issue(issue: JiraIssue, store: JiraStore, base: str, wanted: Iterable[str] | None = None) -> JSON:
    """An issue; ``wanted`` narrows ``fields`` (``*all``/``*navigable`` or absent mean all)."""
    fields = issue_fields(issue, store, base)
    names = [w for w in (wanted or []) if w]
    if names and not any(n in ("*all", "*navigable") for n in names):
        excluded = {n[1:] for n in names if n.startswith("-")}
        included = {n for n in names if not n.startswith("-")}
        fields = {k: v for k, v in fields.items() if (not included or k in included) and k not in excluded}
    return {
        "expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
        "id": issue.id,
        "self": f"{base}/rest/api/2/issue/{issue.id}",
        "key": issue.key,
        "fields": fields,
    }


def transition(t: Transition, store: JiraStore, base: str, *, with_fields: bool) -> JSON:
    target = store.statuses[t.to_id]
    data: JSON = {
        "id": t.id,
        "name": t.name,
        "to": status(target, base),
        "hasScreen": target.category == "done",
        "isGlobal": False,
        "isInitial": False,
        "isAvailable": True,
        "isConditional": False,
        "isLooped": False,
    }
    if with_fields:
        data["fields"] = (
            {
                "resolution": {
                    "required": False,
                    "schema": {"type": "resolution", "system": "resolution"},
                    "name": "Resolution",
                    "key": "resolution",
                    "operations": ["set"],
                    "allowedValues": [named("resolution", r, base) for r in store.resolutions],
                }
            }
            if target.category == "done"
            else {}
        )
    return data


def fields_list() -> list[JSON]:
    """``GET /field``: the system fields used here plus Sprint and Story point estimate."""

    def system(field_id: str, name: str, kind: str, clauses: list[str]) -> JSON:
        return {
            "id": field_id,
            "key": field_id,
            "name": name,
            "custom": False,
            "orderable": True,
            "navigable": True,
            "searchable": True,
            "clauseNames": clauses,
            "schema": {"type": kind, "system": field_id},
        }

    def custom(field_id: str, name: str, kind: str, custom_type: str, clauses: list[str]) -> JSON:
        number = int(field_id.rsplit("_", 1)[1])
        return {
            "id": field_id,
            "key": field_id,
            "name": name,
            "custom": True,
            "orderable": True,
            "navigable": True,
            "searchable": True,
            "clauseNames": [*clauses, f"cf[{number}]"],
            "schema": {"type": kind, "custom": custom_type, "customId": number},
        }

    return [
        system("summary", "Summary", "string", ["summary"]),
        system("description", "Description", "string", ["description"]),
        system("issuetype", "Issue Type", "issuetype", ["issuetype", "type"]),
        system("project", "Project", "project", ["project"]),
        system("priority", "Priority", "priority", ["priority"]),
        system("labels", "Labels", "array", ["labels"]),
        system("components", "Component/s", "array", ["component"]),
        system("status", "Status", "status", ["status"]),
        system("resolution", "Resolution", "resolution", ["resolution"]),
        system("resolutiondate", "Resolved", "datetime", ["resolutiondate", "resolved"]),
        system("created", "Created", "datetime", ["created", "createdDate"]),
        system("updated", "Updated", "datetime", ["updated", "updatedDate"]),
        system("reporter", "Reporter", "user", ["reporter"]),
        system("assignee", "Assignee", "user", ["assignee"]),
        system("comment", "Comment", "comments-page", ["comment"]),
        custom(SPRINT_FIELD, "Sprint", "array", "com.pyxis.greenhopper.jira:gh-sprint", ["Sprint"]),
        custom(
            STORY_POINTS_FIELD,
            "Story point estimate",
            "number",
            "com.pyxis.greenhopper.jira:jsw-story-points",
            ["Story point estimate"],
        ),
    ]


def webhook(h: JiraWebhook, base: str) -> JSON:
    return {
        "self": f"{base}/rest/webhooks/1.0/webhook/{h.id}",
        "name": h.name,
        "url": h.url,
        "events": list(h.events),
        "filters": {"issue-related-events-section": h.jql or ""},
        "excludeBody": False,
        "enabled": h.enabled,
        "lastUpdated": clock.epoch_ms(h.created),
    }
