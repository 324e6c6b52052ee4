"""What a developer does in the tracker UI, as the ``developer`` user: used by the page and ``act``.

GitLab: ``progress``/``qa`` set the scoped label ``workflow::in progress``/``workflow::qa``; ``close``
closes, adding ``resolution::<r>`` unless the resolution is ``fixed``; ``reopen`` reopens and drops
``resolution::*``; ``severity <x>`` sets ``severity::<x>``; ``category <x>`` sets the scoped label
``category::<x>``; ``comment`` adds a (possibly internal) note.
Jira: the same verbs run workflow transitions, set the resolution, priority and ``severity-<x>``;
``category <x>`` sets the component ``<x>`` when the project has one (dropping ``category-*`` labels),
else the label ``category-<x>`` (dropping the other ``category-*`` labels and the components).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sandbox.gitlab_model import GitLabError, IssueUpdate
from sandbox.jira_model import JiraChange, JiraError, JiraIssue
from sandbox.state import Sandbox
from sandbox.webhooks import Delivery

ACTIONS = ("progress", "qa", "close", "reopen", "comment", "severity", "category")
RESOLUTIONS = ("fixed", "duplicate", "wontfix", "cannot-reproduce")
SEVERITIES = ("critical", "high", "medium", "low")
JIRA_RESOLUTIONS = {
    "fixed": "Fixed",
    "duplicate": "Duplicate",
    "wontfix": "Won't Do",
    "cannot-reproduce": "Cannot Reproduce",
}
JIRA_PRIORITIES = {"critical": "Highest", "high": "High", "medium": "Medium", "low": "Low"}
CATEGORY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,49}")
"""A category name both trackers take as (part of) a label: no spaces, no commas."""
CATEGORY_SUGGESTIONS = ("login", "billing", "chat-history", "widget", "integrations", "reports", "admin", "other")
"""The bridge's shipped ``mappings/categories.yaml`` names, offered on the page (any name may be typed)."""


class ActionError(ValueError):
    """An action that cannot be done (unknown issue, wrong state, bad argument)."""


@dataclass(frozen=True)
class Act:
    tracker: str
    issue: str
    """GitLab iid in project 1, or Jira key."""
    action: str
    text: str = ""
    internal: bool = False
    resolution: str = "fixed"
    severity: str = ""
    category: str = ""


def run(sb: Sandbox, act: Act) -> str:
    """Do ``act``, fire its webhooks, and say what was done."""
    if act.action not in ACTIONS:
        raise ActionError(f"unknown action {act.action!r}; one of {', '.join(ACTIONS)}")
    if act.action == "close" and act.resolution not in RESOLUTIONS:
        raise ActionError(f"resolution must be one of {', '.join(RESOLUTIONS)}")
    if act.action == "severity" and act.severity not in SEVERITIES:
        raise ActionError(f"severity must be one of {', '.join(SEVERITIES)}")
    if act.action == "category" and not CATEGORY.fullmatch(act.category):
        raise ActionError("a category is letters, digits, - and _ (no spaces), at most 50")
    if act.action == "comment" and not act.text.strip():
        raise ActionError("a comment needs text")
    with sb.lock:
        try:
            if act.tracker == "gitlab":
                message, deliveries = _gitlab(sb, act)
            elif act.tracker == "jira":
                message, deliveries = _jira(sb, act)
            else:
                raise ActionError("tracker must be gitlab or jira")
        except (GitLabError, JiraError) as exc:
            raise ActionError(str(exc)) from exc
    sb.send(deliveries)
    return message


def _gitlab(sb: Sandbox, act: Act) -> tuple[str, list[Delivery]]:
    store = sb.gitlab
    project = store.projects[1]
    issue = store.find_issue(project, int(act.issue)) if act.issue.isdigit() else None
    if issue is None:
        raise ActionError(f"GitLab issue #{act.issue} does not exist")
    dev = store.developer
    ref = f"#{issue.iid}"
    if act.action == "comment":
        added = store.add_note(issue, dev, act.text, internal=act.internal)
        kind = "internal note" if act.internal else "comment"
        return f"{ref}: {kind} added", sb.plan(sb.gitlab_events([added]))
    update = IssueUpdate()
    if act.action in ("progress", "qa"):
        update.add_labels = ["workflow::in progress" if act.action == "progress" else "workflow::qa"]
    elif act.action == "close":
        if issue.state == "closed":
            raise ActionError(f"{ref} is already closed")
        update.state_event = "close"
        if act.resolution != "fixed":
            update.add_labels = [f"resolution::{act.resolution}"]
    elif act.action == "reopen":
        if issue.state == "opened":
            raise ActionError(f"{ref} is not closed")
        update.state_event = "reopen"
        update.remove_labels = [x for x in issue.labels if x.startswith("resolution::")] or None
    elif act.action == "category":
        update.add_labels = [f"category::{act.category}"]  # scoped: replaces the other category::
    else:
        update.add_labels = [f"severity::{act.severity}"]
    change = store.update_issue(issue, dev, update)
    if change is None:
        return f"{ref}: nothing to change", []
    return f"{ref}: {act.action} done", sb.plan(sb.gitlab_events([change]))


def _transition_to(sb: Sandbox, issue: JiraIssue, status_name: str, fields: dict[str, object]) -> list[JiraChange]:
    """Walk the workflow to ``status_name`` (at most two steps: To Do -> In Progress -> In QA)."""
    store = sb.jira
    changes: list[JiraChange] = []
    for _ in range(2):
        if store.status(issue).name == status_name:
            return changes
        options = store.available_transitions(issue)
        direct = [t for t in options if store.statuses[t.to_id].name == status_name]
        step = (
            direct[0] if direct else next((t for t in options if store.statuses[t.to_id].name == "In Progress"), None)
        )
        if step is None:
            break
        step_fields = fields if store.statuses[step.to_id].category == "done" else {}
        changes += store.transition(issue, step.id, step_fields, {}, store.developer)
    if store.status(issue).name != status_name:
        raise ActionError(f"{issue.key} cannot move from {store.status(issue).name} to {status_name}")
    return changes


def _jira(sb: Sandbox, act: Act) -> tuple[str, list[Delivery]]:
    store = sb.jira
    issue = store.find_issue(act.issue)
    if issue is None:
        raise ActionError(f"Jira issue {act.issue} does not exist")
    dev = store.developer
    changes: list[JiraChange] = []
    if act.action == "comment":
        changes.append(store.add_comment(issue, act.text, dev, internal=act.internal))
    elif act.action == "progress":
        changes += _transition_to(sb, issue, "In Progress", {})
    elif act.action == "qa":
        changes += _transition_to(sb, issue, "In QA", {})
    elif act.action == "close":
        if store.status(issue).category == "done":
            raise ActionError(f"{issue.key} is already done")
        changes += _transition_to(sb, issue, "Done", {"resolution": {"name": JIRA_RESOLUTIONS[act.resolution]}})
    elif act.action == "reopen":
        if store.status(issue).category != "done":
            raise ActionError(f"{issue.key} is not done")
        changes += _transition_to(sb, issue, "To Do", {})
    elif act.action == "category":
        labels = [x for x in issue.labels if not x.startswith("category-")]
        if any(c.name == act.category for c in store.components):
            fields: dict[str, object] = {"labels": labels, "components": [{"name": act.category}]}
        else:
            fields = {"labels": [*labels, f"category-{act.category}"], "components": []}
        edited = store.edit_issue(issue, fields, {}, dev)
        changes += [edited] if edited else []
    else:
        labels = [x for x in issue.labels if not x.startswith("severity-")] + [f"severity-{act.severity}"]
        edited = store.edit_issue(
            issue, {"labels": labels, "priority": {"name": JIRA_PRIORITIES[act.severity]}}, {}, dev
        )
        changes += [edited] if edited else []
    return f"{issue.key}: {act.action} done", sb.plan(sb.jira_events(changes))
