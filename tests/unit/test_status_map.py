"""Tracker state -> reporter-facing status and severity, from the shipped mappings/status.yaml."""

from __future__ import annotations

import pytest

from bridge.domain import IssueSnapshot, Severity, Status
from bridge.mappings import Mappings
from bridge.pipeline.following.status_map import Mapped, map_status, severity_in_tracker


def gitlab(open_: bool = True, *labels: str) -> IssueSnapshot:
    return IssueSnapshot(key="3", title="[ST-7K3Q9X2M] x", open=open_, labels=labels)


def jira(
    category: str, name: str = "", resolution: str | None = None, status_id: str = "1", priority: str = "High"
) -> IssueSnapshot:
    return IssueSnapshot(
        key="SUP-1",
        title="[ST-7K3Q9X2M] x",
        open=category != "done",
        status_id=status_id,
        status_name=name,
        status_category=category,
        resolution=resolution,
        priority=priority,
    )


@pytest.mark.parametrize(
    ("issue", "current", "expected"),
    [
        (gitlab(True), Status.TRIAGED, Mapped(status=Status.TRIAGED)),
        (gitlab(True, "workflow::in progress"), Status.TRIAGED, Mapped(status=Status.IN_PROGRESS)),
        (gitlab(True, "Workflow::QA", "bug"), Status.IN_PROGRESS, Mapped(status=Status.IN_QA)),
        (gitlab(False), Status.IN_QA, Mapped(status=Status.RESOLVED)),
        (gitlab(False, "resolution::duplicate"), Status.TRIAGED, Mapped(status=Status.DECLINED, reason="duplicate")),
        (
            gitlab(False, "resolution::cannot-reproduce"),
            Status.TRIAGED,
            Mapped(status=Status.DECLINED, reason="cannot_reproduce"),
        ),
        (gitlab(True), Status.RESOLVED, Mapped(status=Status.REOPENED)),
        (gitlab(True), Status.DECLINED, Mapped(status=Status.REOPENED)),
        (gitlab(True), Status.REOPENED, Mapped(status=Status.REOPENED)),
        (gitlab(True, "workflow::in progress"), Status.RESOLVED, Mapped(status=Status.IN_PROGRESS)),
        (gitlab(True), Status.RECEIVED, None),
        (jira("new", "To Do"), Status.TRIAGED, Mapped(status=Status.TRIAGED)),
        (jira("indeterminate", "In Progress"), Status.TRIAGED, Mapped(status=Status.IN_PROGRESS)),
        (jira("indeterminate", "In QA"), Status.IN_PROGRESS, Mapped(status=Status.IN_QA)),
        (jira("indeterminate", "Testing"), Status.IN_PROGRESS, Mapped(status=Status.IN_QA)),
        (jira("done", "Done", "Fixed"), Status.IN_QA, Mapped(status=Status.RESOLVED)),
        (jira("done", "Done", "Won't Do"), Status.IN_QA, Mapped(status=Status.DECLINED, reason="wont_fix")),
        (jira("done", "Lukket", "Duplicate"), Status.TRIAGED, Mapped(status=Status.DECLINED, reason="duplicate")),
        (jira("new", "Reopened"), Status.RESOLVED, Mapped(status=Status.REOPENED)),
        (jira("undefined", "Weird"), Status.TRIAGED, None),
    ],
)
def test_map_status(issue: IssueSnapshot, current: Status, expected: Mapped | None, mappings: Mappings) -> None:
    """Labels, Jira statuses, categories and resolutions map to the CONTRACT vocabulary."""
    tracker = "jira" if issue.status_category is not None else "gitlab"
    assert map_status(tracker, issue, current, mappings.status) == expected


def test_localized_jira_status_name_falls_back_to_category(mappings: Mappings) -> None:
    """A Danish workflow ("I gang") still maps through its category."""
    assert map_status("jira", jira("indeterminate", "I gang"), Status.TRIAGED, mappings.status) == Mapped(
        status=Status.IN_PROGRESS
    )


@pytest.mark.parametrize(
    ("labels", "current", "expected"),
    [
        (("severity::high", "type::bugfix"), Severity.HIGH, None),
        (("severity::critical", "type::bugfix"), Severity.HIGH, Severity.CRITICAL),
        (("severity::high", "severity::critical"), Severity.HIGH, Severity.CRITICAL),
        (("bug",), Severity.HIGH, None),
    ],
)
def test_gitlab_severity_label(
    labels: tuple[str, ...], current: Severity, expected: Severity | None, mappings: Mappings
) -> None:
    """A severity label changed by support is followed; an unchanged or missing one is not."""
    scheme = mappings.routing.labels["gitlab"]
    assert severity_in_tracker("gitlab", gitlab(True, *labels), scheme, mappings.status, current) is expected


@pytest.mark.parametrize(
    ("priority", "current", "expected"),
    [
        ("Highest", Severity.HIGH, Severity.CRITICAL),
        ("High", Severity.HIGH, None),
        ("Lowest", Severity.LOW, None),
        ("Custom", Severity.HIGH, None),
    ],
)
def test_jira_priority_is_the_severity(
    priority: str, current: Severity, expected: Severity | None, mappings: Mappings
) -> None:
    """In Jira, support changes the priority; the bridge reads severity from it."""
    scheme = mappings.routing.labels["jira"]
    issue = jira("new", "To Do", priority=priority)
    assert severity_in_tracker("jira", issue, scheme, mappings.status, current) is expected
