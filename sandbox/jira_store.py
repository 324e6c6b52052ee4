"""Jira's seeded configuration (project SUP, workflow, priorities, resolutions) and the operations on issues.

The caller holds the sandbox lock. Operations return change records that ``jira_hooks`` turns into
webhook events; ``jira_json`` renders REST responses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sandbox import clock
from sandbox.jira_model import (
    SPRINT_FIELD,
    STORY_POINTS_FIELD,
    Board,
    Comment,
    CommentAdded,
    Component,
    IssueCreated,
    IssueUpdated,
    JiraChange,
    JiraError,
    JiraIssue,
    JiraProject,
    JiraUser,
    JiraWebhook,
    Named,
    Sprint,
    Status,
    Transition,
)


def _named(value: Any, choices: list[Named]) -> Named | None:
    if isinstance(value, str | int):
        value = {"name": str(value)} if not str(value).isdigit() else {"id": str(value)}
    if not isinstance(value, dict):
        return None
    for choice in choices:
        if str(value.get("id", "")) == choice.id or value.get("name") == choice.name:
            return choice
    return None


class JiraStore:
    """Project ``SUP`` (id 10000), board 1, a To Do -> In Progress -> In QA -> Done workflow, and the
    components ``widget``, ``billing`` and ``login`` (named like three of the bridge's categories)."""

    def __init__(self, *, bot_email: str) -> None:
        self.bot = JiraUser("712020:0b5e4c2a-bridge-bot", "Bridge Bot", bot_email)
        self.developer = JiraUser("712020:7d1f9a3e-developer", "Dana Developer", "dana.developer@example.com")
        self.users = {u.account_id: u for u in (self.bot, self.developer)}
        self.project = JiraProject("10000", "SUP", "Support")
        self.board = Board(1, "SUP board", self.project)
        self.issue_types = [
            Named("10001", "Bug", "A problem which impairs or prevents the functions of the product."),
            Named("10002", "Task", "A small, distinct piece of work."),
            Named("10003", "Story", "A user story."),
        ]
        self.priorities = [
            Named("1", "Highest"),
            Named("2", "High"),
            Named("3", "Medium"),
            Named("4", "Low"),
            Named("5", "Lowest"),
        ]
        self.resolutions = [
            Named("10000", "Fixed", "A fix for this issue is checked in and tested."),
            Named("10001", "Won't Do", "This issue won't be actioned."),
            Named("10002", "Duplicate", "The problem is a duplicate of an existing issue."),
            Named("10003", "Cannot Reproduce", "All attempts at reproducing this issue failed."),
        ]
        self.statuses = {
            s.id: s
            for s in (
                Status("10000", "To Do", "new"),
                Status("3", "In Progress", "indeterminate"),
                Status("10001", "In QA", "indeterminate"),
                Status("10002", "Done", "done"),
            )
        }
        self.transitions = [
            Transition("11", "Start Progress", ("10000",), "3"),
            Transition("21", "Send to QA", ("3",), "10001"),
            Transition("31", "Done", ("10000", "3", "10001"), "10002"),
            Transition("41", "QA Failed", ("10001",), "3"),
            Transition("51", "Reopen", ("10002",), "10000"),
        ]
        self.components = [
            Component("10100", "widget", "The chat widget customers embed"),
            Component("10101", "billing", "Invoices, payments and subscriptions"),
            Component("10102", "login", "Sign-in and SSO"),
        ]
        self.sprints: dict[int, Sprint] = {}
        self.issues: dict[str, JiraIssue] = {}
        self.webhooks: dict[int, JiraWebhook] = {}
        self._next = {"issue": 10001, "number": 1, "comment": 10501, "changelog": 24001, "webhook": 1}

    def _id(self, kind: str) -> int:
        value = self._next[kind]
        self._next[kind] = value + 1
        return value

    # -- lookups -------------------------------------------------------------------------------

    def find_issue(self, ref: str) -> JiraIssue | None:
        """An issue by key (``SUP-3``, any case) or numeric id."""
        if ref.isdigit():
            return next((i for i in self.issues.values() if i.id == ref), None)
        return self.issues.get(ref.upper())

    def find_project(self, ref: str) -> JiraProject | None:
        p = self.project
        return p if ref in (p.id, p.key) or ref.upper() == p.key else None

    def status(self, issue: JiraIssue) -> Status:
        return self.statuses[issue.status_id]

    def available_transitions(self, issue: JiraIssue) -> list[Transition]:
        return [t for t in self.transitions if issue.status_id in t.from_ids]

    def board_sprints(self, board_id: int) -> list[Sprint]:
        order = {"closed": 0, "active": 1, "future": 2}
        found = [s for s in self.sprints.values() if s.board_id == board_id]
        return sorted(found, key=lambda s: (order[s.state], s.id))

    def issue_sprints(self, issue: JiraIssue) -> list[Sprint]:
        return [self.sprints[i] for i in issue.sprint_ids if i in self.sprints]

    # -- writes --------------------------------------------------------------------------------

    def add_sprint(self, sprint: Sprint) -> Sprint:
        self.sprints[sprint.id] = sprint
        return sprint

    def close_sprint(self, sprint: Sprint | None = None, *, start_next: bool = True) -> tuple[Sprint, Sprint | None]:
        """Complete ``sprint`` (default: the board's first active one), as "Complete sprint" does;
        with ``start_next`` the first future sprint becomes active. Issues keep their sprint
        history. Returns (closed, started)."""
        if sprint is None:
            sprint = next((s for s in self.board_sprints(self.board.id) if s.state == "active"), None)
            if sprint is None:
                raise JiraError(400, ["The board has no active sprint to complete."])
        if sprint.state != "active":
            raise JiraError(400, [f"Sprint {sprint.id} is {sprint.state}; only an active sprint can be completed."])
        sprint.state, sprint.complete = "closed", clock.now()
        started = None
        if start_next:
            started = next((s for s in self.board_sprints(sprint.board_id) if s.state == "future"), None)
            if started is not None:
                started.state = "active"
                started.start = started.start or clock.now()
        return sprint, started

    def add_webhook(
        self, *, name: str, url: str, events: list[str], secret: str | None, jql_filter: str | None
    ) -> JiraWebhook:
        hook = JiraWebhook(self._id("webhook"), name, url, events, secret, jql_filter, clock.now())
        self.webhooks[hook.id] = hook
        return hook

    def _labels(self, value: Any) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            raise JiraError(400, errors={"labels": "Labels must be a list of strings."})
        for label in value:
            if not label or any(ch.isspace() for ch in label):
                raise JiraError(400, errors={"labels": f"The label '{label}' contains spaces which is invalid."})
            if len(label) > 255:
                raise JiraError(400, errors={"labels": "The label must not exceed 255 characters."})
        return list(dict.fromkeys(value))

    def component(self, ref: Any) -> Component:
        """A component by ``{"name": ...}`` or ``{"id": ...}`` (or a bare name), as Jira reads them."""
        if isinstance(ref, str):
            ref = {"name": ref}
        if not isinstance(ref, dict):
            raise JiraError(400, errors={"components": "Component must be an object with an id or a name."})
        if "id" in ref:
            found = next((c for c in self.components if c.id == str(ref["id"])), None)
            if found is None:
                raise JiraError(400, errors={"components": f"Component with id '{ref['id']}' does not exist."})
            return found
        found = next((c for c in self.components if c.name == ref.get("name")), None)
        if found is None:
            raise JiraError(400, errors={"components": f"Component name '{ref.get('name')}' is not valid"})
        return found

    def _components(self, value: Any) -> list[Component]:
        if not isinstance(value, list):
            raise JiraError(400, errors={"components": "Components must be a list."})
        return list(dict.fromkeys(self.component(ref) for ref in value))

    def _sprint_value(self, value: Any) -> list[int]:
        if value is None:
            return []
        if isinstance(value, dict):
            value = value.get("id")
        if not isinstance(value, int | str) or not str(value).isdigit() or int(value) not in self.sprints:
            raise JiraError(400, errors={SPRINT_FIELD: f"Sprint with id {value} does not exist."})
        sprint = self.sprints[int(value)]
        if sprint.state == "closed":
            raise JiraError(400, errors={SPRINT_FIELD: "Issue can be assigned only to active or future sprints."})
        return [sprint.id]

    def _story_points(self, value: Any) -> float | None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise JiraError(400, errors={STORY_POINTS_FIELD: "Operation value must be a number."})
        return None if value is None else float(value)

    def create_issue(self, fields: Mapping[str, Any], actor: JiraUser) -> IssueCreated:
        errors: dict[str, str] = {}
        project_ref = fields.get("project")
        if isinstance(project_ref, dict):
            project_ref = project_ref.get("key") or project_ref.get("id")
        project = self.find_project(str(project_ref)) if project_ref is not None else None
        if project is None:
            errors["project"] = "Specify a valid project ID or key"
        issuetype = _named(fields.get("issuetype"), self.issue_types)
        if issuetype is None:
            errors["issuetype"] = "Specify an issue type"
        summary = fields.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            errors["summary"] = "You must specify a summary of the issue."
        elif len(summary) > 255:
            errors["summary"] = "Summary must be less than 255 characters."
        description = fields.get("description")
        if description is not None and not isinstance(description, str):
            errors["description"] = "Operation value must be a string"
        priority: Named | None = self.priorities[2]
        if "priority" in fields:
            priority = _named(fields["priority"], self.priorities)
            if priority is None:
                errors["priority"] = "Specify the Priority (id or name) in the string format"
        for name in fields:
            if name not in _CREATE_FIELDS:
                errors[name] = f"Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."
        if errors:
            raise JiraError(400, errors=errors)
        labels = self._labels(fields.get("labels", []))
        components = self._components(fields.get("components", []))
        sprint_ids = self._sprint_value(fields.get(SPRINT_FIELD))
        points = self._story_points(fields.get(STORY_POINTS_FIELD))
        assert project is not None
        assert issuetype is not None
        assert priority is not None
        assert isinstance(summary, str)
        now = clock.now()
        number = self._id("number")
        issue = JiraIssue(
            id=str(self._id("issue")),
            key=f"{project.key}-{number}",
            project=project,
            issuetype=issuetype,
            summary=summary,
            description=description,
            priority=priority,
            reporter=actor,
            created=now,
            updated=now,
            labels=labels,
            sprint_ids=sprint_ids,
            story_points=points,
            components=components,
        )
        self.issues[issue.key] = issue
        return IssueCreated(issue, actor)

    def _updated(
        self, issue: JiraIssue, actor: JiraUser, type_name: str, items: list[dict[str, Any]]
    ) -> IssueUpdated | None:
        if not items:
            return None
        issue.updated = clock.now()
        return IssueUpdated(issue, actor, type_name, items, str(self._id("changelog")))

    def edit_issue(
        self, issue: JiraIssue, fields: Mapping[str, Any], update: Mapping[str, Any], actor: JiraUser
    ) -> IssueUpdated | None:
        """``PUT /issue/{key}``: ``fields`` sets, ``update`` applies add/remove/set operations."""
        for name in [*fields, *update]:
            if name not in _EDIT_FIELDS:
                raise JiraError(
                    400,
                    errors={name: f"Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."},
                )
        items: list[dict[str, Any]] = []
        labels = list(issue.labels)
        if "labels" in fields:
            labels = self._labels(fields["labels"])
        for op in update.get("labels", []):
            if not isinstance(op, dict):
                raise JiraError(400, errors={"labels": "Operation must be an object."})
            if "set" in op:
                labels = self._labels(op["set"])
            if "add" in op:
                labels = [*labels, *[x for x in self._labels([op["add"]]) if x not in labels]]
            if "remove" in op:
                labels = [x for x in labels if x != op["remove"]]
        if labels != issue.labels:
            items.append(_item("labels", "jira", "labels", None, " ".join(issue.labels), None, " ".join(labels)))
            issue.labels = labels
        items.extend(self._edit_components(issue, fields, update))
        if "summary" in fields:
            summary = fields["summary"]
            if not isinstance(summary, str) or not summary.strip():
                raise JiraError(400, errors={"summary": "You must specify a summary of the issue."})
            if summary != issue.summary:
                items.append(_item("summary", "jira", "summary", None, issue.summary, None, summary))
                issue.summary = summary
        if "description" in fields:
            description = fields["description"]
            if description is not None and not isinstance(description, str):
                raise JiraError(400, errors={"description": "Operation value must be a string"})
            if description != issue.description:
                items.append(_item("description", "jira", "description", None, issue.description, None, description))
                issue.description = description
        if "priority" in fields:
            priority = _named(fields["priority"], self.priorities)
            if priority is None:
                raise JiraError(400, errors={"priority": "Specify the Priority (id or name) in the string format"})
            if priority != issue.priority:
                old = issue.priority
                items.append(_item("priority", "jira", "priority", old.id, old.name, priority.id, priority.name))
                issue.priority = priority
        if STORY_POINTS_FIELD in fields:
            points = self._story_points(fields[STORY_POINTS_FIELD])
            if points != issue.story_points:
                items.append(
                    _item(
                        "Story point estimate",
                        "custom",
                        STORY_POINTS_FIELD,
                        None,
                        _num(issue.story_points),
                        None,
                        _num(points),
                    )
                )
                issue.story_points = points
        if SPRINT_FIELD in fields:
            items.extend(self._set_sprints(issue, self._sprint_value(fields[SPRINT_FIELD])))
        return self._updated(issue, actor, "issue_updated", items)

    def _edit_components(
        self, issue: JiraIssue, fields: Mapping[str, Any], update: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """``fields.components`` sets them; ``update.components`` applies set/add/remove operations.
        The changelog has one ``Component`` item per component removed (``from``) or added (``to``)."""
        components = list(issue.components)
        if "components" in fields:
            components = self._components(fields["components"])
        for op in update.get("components", []):
            if not isinstance(op, dict):
                raise JiraError(400, errors={"components": "Operation must be an object."})
            if "set" in op:
                components = self._components(op["set"])
            if "add" in op:
                added = self.component(op["add"])
                components = [*components, *([added] if added not in components else [])]
            if "remove" in op:
                removed = self.component(op["remove"])
                components = [c for c in components if c != removed]
        before, issue.components = issue.components, components
        items = [
            _item("Component", "jira", "components", c.id, c.name, None, None) for c in before if c not in components
        ]
        items += [
            _item("Component", "jira", "components", None, None, c.id, c.name) for c in components if c not in before
        ]
        return items

    def _set_sprints(self, issue: JiraIssue, open_ids: list[int]) -> list[dict[str, Any]]:
        """Replace the issue's open sprint (closed sprints stay in its history)."""
        closed = [i for i in issue.sprint_ids if self.sprints[i].state == "closed"]
        new_ids = closed + [i for i in open_ids if i not in closed]
        if new_ids == issue.sprint_ids:
            return []
        old_ids = issue.sprint_ids
        issue.sprint_ids = new_ids

        def names(ids: list[int]) -> str:
            return ", ".join(self.sprints[i].name for i in ids)

        return [
            _item(
                "Sprint",
                "custom",
                SPRINT_FIELD,
                ", ".join(map(str, old_ids)),
                names(old_ids),
                ", ".join(map(str, new_ids)),
                names(new_ids),
            )
        ]

    def transition(
        self,
        issue: JiraIssue,
        transition_id: str,
        fields: Mapping[str, Any],
        update: Mapping[str, Any],
        actor: JiraUser,
    ) -> list[JiraChange]:
        """Run a workflow transition; a resolution may only be set on the way into Done."""
        transition = next((t for t in self.available_transitions(issue) if t.id == transition_id), None)
        if transition is None:
            raise JiraError(400, [f"Transition id '{transition_id}' is not valid for this issue."])
        target = self.statuses[transition.to_id]
        resolution: Named | None = None
        for name in fields:
            if name != "resolution" or target.category != "done":
                raise JiraError(
                    400,
                    errors={name: f"Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."},
                )
        if target.category == "done":
            resolution = self.resolutions[0]
            if "resolution" in fields:
                resolution = _named(fields["resolution"], self.resolutions)
                if resolution is None:
                    raise JiraError(400, errors={"resolution": "Resolution is invalid."})
        comments = []
        for op in update.get("comment", []):
            body = op.get("add", {}).get("body") if isinstance(op, dict) else None
            if not isinstance(body, str):
                raise JiraError(400, errors={"comment": "Comment body must be a string."})
            comments.append(body)
        old = self.status(issue)
        items = [_item("status", "jira", "status", old.id, old.name, target.id, target.name)]
        if resolution != issue.resolution:
            before = issue.resolution
            items.append(
                _item(
                    "resolution",
                    "jira",
                    "resolution",
                    before.id if before else None,
                    before.name if before else None,
                    resolution.id if resolution else None,
                    resolution.name if resolution else None,
                )
            )
        issue.status_id = target.id
        issue.resolution = resolution
        issue.resolutiondate = clock.now() if resolution else None
        changes: list[JiraChange] = []
        updated = self._updated(issue, actor, "issue_generic", items)
        if updated:
            changes.append(updated)
        changes.extend(self.add_comment(issue, body, actor) for body in comments)
        return changes

    def add_comment(
        self,
        issue: JiraIssue,
        body: Any,
        actor: JiraUser,
        *,
        internal: bool = False,
        visibility: dict[str, Any] | None = None,
    ) -> CommentAdded:
        if not isinstance(body, str) or not body.strip():
            raise JiraError(400, errors={"comment": "Comment body can not be empty!"})
        comment = Comment(str(self._id("comment")), body, actor, clock.now(), not internal, visibility)
        issue.comments.append(comment)
        issue.updated = comment.created
        return CommentAdded(issue, comment, actor)

    def move_to_sprint(self, sprint: Sprint | None, refs: list[Any], actor: JiraUser) -> list[JiraChange]:
        """Agile ``POST sprint/{id}/issue`` (or the backlog when ``sprint`` is ``None``)."""
        if sprint is not None and sprint.state == "closed":
            raise JiraError(400, ["Cannot move issues to a closed sprint."])
        if len(refs) > 50:
            raise JiraError(400, ["The number of issues must not exceed 50."])
        issues = []
        for ref in refs:
            issue = self.find_issue(str(ref))
            if issue is None:
                raise JiraError(400, [f"Issue '{ref}' does not exist or you do not have permission to see it."])
            issues.append(issue)
        changes: list[JiraChange] = []
        for issue in issues:
            items = self._set_sprints(issue, [sprint.id] if sprint else [])
            updated = self._updated(issue, actor, "issue_updated", items)
            if updated:
                changes.append(updated)
        return changes


_CREATE_FIELDS = frozenset(
    {
        "project",
        "issuetype",
        "summary",
        "description",
        "priority",
        "labels",
        SPRINT_FIELD,
        STORY_POINTS_FIELD,
        "assignee",
        "reporter",
        "components",
        "duedate",
        "environment",
    }
)
_EDIT_FIELDS = frozenset(
    {"summary", "description", "priority", "labels", "components", SPRINT_FIELD, STORY_POINTS_FIELD}
)


def _num(value: float | None) -> str | None:
    if value is None:
        return None
    return str(int(value)) if value == int(value) else str(value)


def _item(
    field_name: str,
    fieldtype: str,
    field_id: str,
    from_id: str | None,
    from_string: str | None,
    to_id: str | None,
    to_string: str | None,
) -> dict[str, Any]:
    return {
        "field": field_name,
        "fieldtype": fieldtype,
        "fieldId": field_id,
        "from": from_id,
        "fromString": from_string,
        "to": to_id,
        "toString": to_string,
    }
