"""GitLab's seeded group, project and users, and the operations on issues, notes, milestones and hooks.

The caller holds the sandbox lock. Operations return change records; ``gitlab_hooks`` turns them
into webhook events and ``gitlab_json`` into REST responses.
"""

from __future__ import annotations

import zlib
from datetime import date
from typing import Any

from sandbox import clock
from sandbox.gitlab_model import (
    GitLabError,
    GlGroup,
    GlHook,
    GlIssue,
    GlLabel,
    GlMilestone,
    GlNote,
    GlProject,
    GlUser,
    IssueChange,
    IssueUpdate,
    NoteAdded,
    apply_labels,
)

LABEL_COLORS = ("#428BCA", "#44AD8E", "#A8D695", "#5CB85C", "#69D100", "#004E00", "#F0AD4E", "#D9534F")


class GitLabStore:
    """One group ``acme`` with one project ``acme/support``; users ``bridge-bot`` and ``developer``."""

    def __init__(self, *, bot_email: str = "bridge-bot@example.com") -> None:
        created = clock.now()
        self.users: dict[int, GlUser] = {
            1: GlUser(1, "bridge-bot", "Bridge Bot", bot_email),
            2: GlUser(2, "developer", "Dana Developer", "dana.developer@example.com"),
        }
        self.bot = self.users[1]
        self.developer = self.users[2]
        self.group = GlGroup(10, "acme", "acme")
        self.projects: dict[int, GlProject] = {
            1: GlProject(1, "support", "support", self.group, "Customer problem reports", created)
        }
        self.milestones: dict[int, GlMilestone] = {}
        self.labels: dict[tuple[int, str], GlLabel] = {}
        self.issues: dict[tuple[int, int], GlIssue] = {}
        self.hooks: dict[int, GlHook] = {}
        self._next = {"issue": 101, "note": 1001, "label": 201, "milestone": 11, "hook": 1}
        self._iid: dict[str, int] = {}

    def _id(self, kind: str) -> int:
        value = self._next[kind]
        self._next[kind] = value + 1
        return value

    def _next_iid(self, scope: str) -> int:
        value = self._iid.get(scope, 0) + 1
        self._iid[scope] = value
        return value

    # -- lookups -------------------------------------------------------------------------------

    def find_project(self, ref: str) -> GlProject | None:
        """A project by numeric id or ``group/project`` path."""
        if ref.isdigit():
            return self.projects.get(int(ref))
        return next((p for p in self.projects.values() if p.path_with_namespace == ref), None)

    def find_issue(self, project: GlProject, iid: int) -> GlIssue | None:
        return self.issues.get((project.id, iid))

    def project_issues(self, project: GlProject) -> list[GlIssue]:
        return [i for (pid, _), i in sorted(self.issues.items()) if pid == project.id]

    def project_milestones(self, project: GlProject, *, include_ancestors: bool) -> list[GlMilestone]:
        found = [
            m
            for m in self.milestones.values()
            if m.project_id == project.id or (include_ancestors and m.group_id == project.group.id)
        ]
        return sorted(found, key=lambda m: (m.due_date is None, m.due_date or date.max, m.id))

    def milestone(self, milestone_id: int | None) -> GlMilestone | None:
        return None if milestone_id is None else self.milestones.get(milestone_id)

    def label(self, project_id: int, title: str) -> GlLabel:
        """The project label ``title``, created on first use (as the real API does)."""
        key = (project_id, title)
        if key not in self.labels:
            color = LABEL_COLORS[zlib.crc32(title.encode()) % len(LABEL_COLORS)]
            self.labels[key] = GlLabel(self._id("label"), title, color, project_id, clock.now())
        return self.labels[key]

    # -- writes --------------------------------------------------------------------------------

    def add_milestone(
        self,
        *,
        title: str,
        start: date | None,
        due: date | None,
        state: str = "active",
        project: GlProject | None = None,
        group: GlGroup | None = None,
        description: str = "",
    ) -> GlMilestone:
        scope = f"p{project.id}" if project else f"g{group.id if group else 0}"
        now = clock.now()
        milestone = GlMilestone(
            id=self._id("milestone"),
            iid=self._next_iid("milestone-" + scope),
            title=title,
            description=description,
            state=state,
            start_date=start,
            due_date=due,
            created_at=now,
            updated_at=now,
            project_id=project.id if project else None,
            group_id=group.id if group else None,
        )
        self.milestones[milestone.id] = milestone
        return milestone

    def close_milestone(self, project: GlProject, today: date, milestone: GlMilestone | None = None) -> GlMilestone:
        """Close ``milestone`` (default: the project's active one containing ``today``); its issues keep it."""
        if milestone is None:
            milestone = next(
                (
                    m
                    for m in self.project_milestones(project, include_ancestors=True)
                    if m.state == "active" and m.start_date and m.due_date and m.start_date <= today <= m.due_date
                ),
                None,
            )
            if milestone is None:
                raise GitLabError(400, "no active milestone contains today")
        milestone.state, milestone.updated_at = "closed", clock.now()
        return milestone

    def add_hook(self, project: GlProject, url: str, token: str | None, events: dict[str, bool]) -> GlHook:
        hook = GlHook(self._id("hook"), project.id, url, token, clock.now(), events)
        self.hooks[hook.id] = hook
        return hook

    def _usable_milestone(self, project: GlProject, milestone_id: int | None) -> int | None:
        """GitLab silently drops a milestone that is not the project's or its group's."""
        if not milestone_id:
            return None
        ids = {m.id for m in self.project_milestones(project, include_ancestors=True)}
        return milestone_id if milestone_id in ids else None

    def create_issue(
        self,
        project: GlProject,
        actor: GlUser,
        *,
        title: str,
        description: str | None = None,
        labels: list[str] | None = None,
        milestone_id: int | None = None,
        confidential: bool = False,
        weight: int | None = None,
        due_date: str | None = None,
    ) -> IssueChange:
        if not title.strip():
            raise GitLabError(400, {"title": ["can't be blank"]})
        now = clock.now()
        issue = GlIssue(
            id=self._id("issue"),
            iid=self._next_iid(f"issue-{project.id}"),
            project_id=project.id,
            title=title,
            description=description,
            author_id=actor.id,
            created_at=now,
            updated_at=now,
            labels=apply_labels([], labels or []),
            milestone_id=self._usable_milestone(project, milestone_id),
            confidential=confidential,
            weight=weight,
            due_date=due_date,
        )
        for label in issue.labels:
            self.label(project.id, label)
        self.issues[(project.id, issue.iid)] = issue
        after = snapshot(issue)
        changes: dict[str, tuple[Any, Any]] = {k: (None, v) for k, v in after.items() if v not in (None, [], False)}
        changes["labels"] = ([], after["labels"])
        for key in ("id", "iid", "project_id", "author_id", "created_at"):
            changes[key] = (None, getattr(issue, key))
        return IssueChange(issue, actor, "open", changes)

    def update_issue(self, issue: GlIssue, actor: GlUser, update: IssueUpdate) -> IssueChange | None:
        """Apply ``update``; ``None`` when nothing changed (GitLab then sends no hook)."""
        project = self.projects[issue.project_id]
        before = snapshot(issue)
        weight_before = issue.weight
        if update.title is not None:
            if not update.title.strip():
                raise GitLabError(400, {"title": ["can't be blank"]})
            issue.title = update.title
        if update.description is not None:
            issue.description = update.description
        labels = list(issue.labels)
        if update.labels is not None:
            labels = apply_labels([], update.labels)
        if update.add_labels:
            labels = apply_labels(labels, update.add_labels)
        if update.remove_labels:
            labels = [x for x in labels if x not in update.remove_labels]
        issue.labels = labels
        for label in labels:
            self.label(project.id, label)
        if update.milestone_id is not None:
            issue.milestone_id = self._usable_milestone(project, update.milestone_id)
        if update.confidential is not None:
            issue.confidential = update.confidential
        if update.clear_weight:
            issue.weight = None
        elif update.weight is not None:
            issue.weight = update.weight
        if update.due_date is not None:
            issue.due_date = update.due_date or None
        if update.discussion_locked is not None:
            issue.discussion_locked = update.discussion_locked
        action = "update"
        now = clock.now()
        if update.state_event == "close" and issue.state == "opened":
            issue.state, issue.closed_at, issue.closed_by_id, action = "closed", now, actor.id, "close"
        elif update.state_event == "reopen" and issue.state == "closed":
            issue.state, issue.closed_at, issue.closed_by_id, action = "opened", None, None, "reopen"
        elif update.state_event not in (None, "", "close", "reopen"):
            raise GitLabError(400, {"state_event": ["is invalid"]})
        edited = snapshot(issue)
        if edited == before and issue.weight == weight_before:
            return None
        if edited["title"] != before["title"] or edited["description"] != before["description"]:
            issue.last_edited_at, issue.last_edited_by_id = now, actor.id
        issue.updated_at, issue.updated_by_id = now, actor.id
        after = snapshot(issue)
        changes = {k: (before[k], after[k]) for k in after if before[k] != after[k]}
        return IssueChange(issue, actor, action, changes)

    def add_note(self, issue: GlIssue, actor: GlUser, body: str, *, internal: bool) -> NoteAdded:
        if not body.strip():
            raise GitLabError(400, {"note": ["can't be blank"]})
        note = GlNote(self._id("note"), body, actor.id, internal, clock.now())
        issue.notes.append(note)
        return NoteAdded(issue, note, actor)


def snapshot(issue: GlIssue) -> dict[str, Any]:
    """The Issue Hook "safe" attributes whose changes are reported in ``changes``."""
    return {
        "title": issue.title,
        "description": issue.description,
        "state_id": issue.state_id,
        "closed_at": issue.closed_at,
        "milestone_id": issue.milestone_id,
        "confidential": issue.confidential,
        "due_date": issue.due_date,
        "discussion_locked": issue.discussion_locked,
        "labels": sorted(issue.labels),
        "updated_at": issue.updated_at,
        "updated_by_id": issue.updated_by_id,
        "last_edited_at": issue.last_edited_at,
        "last_edited_by_id": issue.last_edited_by_id,
    }
