"""JQL search over the Jira store: what each issue looks like to a clause, JQL functions, ORDER BY."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from sandbox import jql
from sandbox.jira_model import STATUS_CATEGORIES, JiraError, JiraIssue
from sandbox.jira_store import JiraStore


def facts(store: JiraStore, issue: JiraIssue) -> dict[str, list[str]]:
    """The lower-cased values each JQL field has for ``issue``."""
    status = store.status(issue)
    cat_id, cat_name, _ = STATUS_CATEGORIES[status.category]
    sprints = store.issue_sprints(issue)
    values = {
        "project": [issue.project.key, issue.project.id, issue.project.name],
        "key": [issue.key, issue.id],
        "labels": list(issue.labels),
        "component": [c.name for c in issue.components] + [c.id for c in issue.components],
        "sprint": [str(s.id) for s in sprints] + [s.name for s in sprints],
        "status": [status.name, status.id],
        "statuscategory": [status.category, cat_name, str(cat_id)],
        "summary": [issue.summary],
        "description": [issue.description or ""],
        "text": [issue.summary, issue.description or ""],
        "priority": [issue.priority.name, issue.priority.id],
        "resolution": [issue.resolution.name, issue.resolution.id] if issue.resolution else [],
        "issuetype": [issue.issuetype.name, issue.issuetype.id],
        "created": [issue.created.isoformat()],
        "updated": [issue.updated.isoformat()],
    }
    return {k: [v.lower() for v in vs] for k, vs in values.items()}


def functions(store: JiraStore) -> Callable[[str], list[str]]:
    """``openSprints()``, ``futureSprints()``, ``closedSprints()`` and ``currentUser()``."""
    states = {"opensprints": ("active", "future"), "closedsprints": ("closed",), "futuresprints": ("future",)}

    def call(name: str) -> list[str]:
        if name in states:
            return [str(s.id) for s in store.sprints.values() if s.state in states[name]]
        if name == "currentuser":
            return [store.bot.account_id]
        raise jql.JqlError(f"Error in the JQL Query: the sandbox does not know the function '{name}()'.")

    return call


def _sort_key(store: JiraStore, issue: JiraIssue, name: str) -> Any:
    if name in ("created", "key"):
        return int(issue.id)
    if name == "updated":
        return (issue.updated, int(issue.id))
    if name == "priority":
        return -int(issue.priority.id)
    if name == "status":
        return store.status(issue).name
    return issue.summary.lower()


def search(store: JiraStore, query: str, *, validate: bool = True) -> list[JiraIssue]:
    """Issues matching the JQL subset, in its ORDER BY (default: created, newest first).

    With ``validate`` a ``key = X`` naming no issue is a 400, as in Jira.
    """
    parsed = jql.parse(query)
    if validate:
        for clause in parsed.clauses:
            if clause.field != "key" or clause.op not in ("=", "in"):
                continue
            for value in clause.values:
                if not value.function and store.find_issue(value.text) is None:
                    raise JiraError(400, [f"An issue with key '{value.text}' does not exist for field 'key'."])
    call = functions(store)
    found = [
        issue
        for issue in store.issues.values()
        if all(jql.clause_matches(c, facts(store, issue), call) for c in parsed.clauses)
    ]
    for name, descending in reversed(parsed.order or (("created", True),)):
        found.sort(key=functools.partial(_sort_key, store, name=name), reverse=descending)
    return found


def matches(store: JiraStore, issue: JiraIssue, query: str) -> bool:
    """For webhook JQL filters; a filter the sandbox cannot parse matches everything."""
    try:
        parsed = jql.parse(query)
    except jql.JqlError:
        return True
    values, call = facts(store, issue), functions(store)
    return all(jql.clause_matches(c, values, call) for c in parsed.clauses)
