"""Tracker issue state -> reporter-facing status, severity and category, from ``mappings/``.

Pure: it looks only at the issue as the tracker reports it now and at what the reporter
was last told, so applying the same state twice, or a late one, changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from bridge.domain import IssueSnapshot, Severity, Status
from bridge.mappings import GitLabStatusMap, JiraStatusMap, LabelScheme, StatusMap

log = logging.getLogger(__name__)

CLOSED_STATUSES = (Status.RESOLVED, Status.DECLINED)


@dataclass(frozen=True, kw_only=True)
class Mapped:
    status: Status
    reason: str | None = None


def map_status(tracker: str, issue: IssueSnapshot, current: Status, rules: StatusMap) -> Mapped | None:
    """The status the reporter should see now, or None when the state is unknown (logged)."""
    mapped = _map_gitlab(issue, rules.gitlab) if tracker == "gitlab" else _map_jira(issue, rules.jira)
    if mapped is None:
        log.warning(
            "status.unmapped",
            extra={
                "tracker": tracker,
                "issue": issue.key,
                "status_name": issue.status_name,
                "status_category": issue.status_category,
            },
        )
        return None
    if mapped.status is Status.TRIAGED and current in (*CLOSED_STATUSES, Status.REOPENED):
        # Back from closed with no progress yet: that is what "reopened" means to the reporter.
        return Mapped(status=Status.REOPENED)
    if mapped.status is Status.TRIAGED and current is Status.RECEIVED:
        return None  # the filing job announces triage, with the plan; don't race it
    return mapped


def _map_gitlab(issue: IssueSnapshot, rules: GitLabStatusMap) -> Mapped | None:
    labels = {label.casefold() for label in issue.labels}
    if not issue.open:
        for label, reason in rules.declined_labels.items():
            if label.casefold() in labels:
                return Mapped(status=Status.DECLINED, reason=reason)
        return Mapped(status=Status.RESOLVED)
    for label, status in rules.open_labels.items():
        if label.casefold() in labels:
            return Mapped(status=status)
    return Mapped(status=Status.TRIAGED)


def _map_jira(issue: IssueSnapshot, rules: JiraStatusMap) -> Mapped | None:
    status: Status | None = None
    if issue.status_id and issue.status_id in rules.status_ids:
        status = rules.status_ids[issue.status_id]
    elif issue.status_name and issue.status_name.casefold() in {k.casefold() for k in rules.status_names}:
        status = next(v for k, v in rules.status_names.items() if k.casefold() == issue.status_name.casefold())
    elif issue.status_category:
        status = rules.categories.get(issue.status_category)
    if status is None:
        return None
    if status is Status.RESOLVED and issue.resolution:
        wanted = issue.resolution.casefold()
        for resolution, reason in rules.declined_resolutions.items():
            if resolution.casefold() == wanted:
                return Mapped(status=Status.DECLINED, reason=reason)
    return Mapped(status=status)


def severity_in_tracker(
    tracker: str, issue: IssueSnapshot, labels: LabelScheme, rules: StatusMap, current: Severity | None
) -> Severity | None:
    """The severity support set in the tracker, when it differs from ``current``; else None.

    GitLab: the severity label (``severity::high``). Jira: the priority, which is where Jira
    users set it; the bridge then brings the severity label in line.
    """
    if tracker == "jira":
        by_priority = rules.jira_priority_severity.get(issue.priority or "")
        return by_priority if by_priority is not None and by_priority is not current else None
    by_label = {labels.severity.format(severity=s.value, kind="", source="").casefold(): s for s in Severity}
    found = {by_label[label.casefold()] for label in issue.labels if label.casefold() in by_label}
    # With two severity labels at once, the one that is not the current one was just added.
    changed = [s for s in found if s is not current]
    return max(changed, key=lambda s: s.rank) if changed else None


CATEGORY_MAX = 100
"""Longest category kept (the ticket's column); a longer name written in the tracker is cut."""


def categories_in_tracker(tracker: str, issue: IssueSnapshot, labels: LabelScheme, names: Sequence[str]) -> list[str]:
    """Every category the issue carries, in the order found: labels of the scheme's ``category``
    form (any name: support may write one ``categories.yaml`` does not have, kept as written), then
    for Jira with ``category_as_component`` the components named like a known category (other
    components are the project's own business). A known name is spelt as in the mapping."""
    known = {name.casefold(): name for name in names}
    found: list[str] = []
    for label in issue.labels:
        name = labels.category_of_label(label)
        if name is not None:
            found.append(known.get(name.casefold(), name[:CATEGORY_MAX]))
    if tracker == "jira" and labels.category_as_component:
        found += [known[c.casefold()] for c in issue.components if c.casefold() in known]
    return list(dict.fromkeys(found))


def category_in_tracker(
    tracker: str, issue: IssueSnapshot, labels: LabelScheme, names: Sequence[str], current: str | None
) -> str | None:
    """The category support set in the tracker, when it differs from ``current``; else None.

    With several categories on the issue, the ones that are not ``current`` were just added; of
    those, a known one comes first (in ``categories.yaml``'s order), then the rest by name. An issue
    that carries no category at all says nothing: the ticket keeps its own."""
    changed = [name for name in categories_in_tracker(tracker, issue, labels, names) if name != current]
    if not changed:
        return None
    order = {name: index for index, name in enumerate(names)}
    return min(changed, key=lambda name: (order.get(name, len(order)), name))
