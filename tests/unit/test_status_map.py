"""Tracker state -> reporter-facing status and severity, from the shipped mappings/status.yaml."""

from __future__ import annotations

import logging

import pytest

from bridge.domain import IssueSnapshot, Severity, Status
from bridge.mappings import LabelScheme, Mappings, StatusMap
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


# --- the engine, with status rules made for the test ----------------------------------------------

RULES = StatusMap.model_validate(
    {
        "gitlab": {
            "open_labels": {"Workflow::QA": "in_qa", "workflow::doing": "in_progress"},
            "declined_labels": {"Resolution::Duplicate": "duplicate", "resolution::wontfix": "wont_fix"},
        },
        "jira": {
            "status_ids": {"10001": "in_qa", "10002": "in_progress"},
            "status_names": {"In QA": "in_qa", "Doing": "in_progress", "Parked": "triaged"},
            "categories": {"new": "triaged", "indeterminate": "in_progress", "done": "resolved"},
            "declined_resolutions": {"Won't Do": "wont_fix", "Duplicate": "duplicate"},
        },
        "jira_priority_severity": {"Highest": "critical", "High": "high", "Low": "low"},
    }
)


def jira_issue(
    *, status_id: str | None = None, name: str | None = None, category: str | None = None, resolution: str | None = None
) -> IssueSnapshot:
    return IssueSnapshot(
        key="SUP-1",
        title="t",
        open=category != "done",
        status_id=status_id,
        status_name=name,
        status_category=category,
        resolution=resolution,
    )


@pytest.mark.parametrize(
    ("labels", "open_", "expected"),
    [
        (("workflow::qa",), True, Mapped(status=Status.IN_QA)),  # rule and label differ in case
        (("WORKFLOW::DOING",), True, Mapped(status=Status.IN_PROGRESS)),
        (("workflow::doing", "workflow::qa"), True, Mapped(status=Status.IN_QA)),  # the rule listed first wins
        (("workflow::qa",), False, Mapped(status=Status.RESOLVED)),  # closed: open labels no longer count
        (("RESOLUTION::DUPLICATE",), False, Mapped(status=Status.DECLINED, reason="duplicate")),
        (("Resolution::WontFix", "resolution::duplicate"), False, Mapped(status=Status.DECLINED, reason="duplicate")),
        (("resolution::duplicate",), True, Mapped(status=Status.TRIAGED)),  # open: declined labels don't count
        (("workflow::qa-ish", "resolution"), True, Mapped(status=Status.TRIAGED)),
    ],
)
def test_gitlab_labels_match_case_insensitively_in_rule_order(
    labels: tuple[str, ...], open_: bool, expected: Mapped
) -> None:
    """GitLab labels are compared without case (people retype them), whole, in the order the rules list them."""
    issue = IssueSnapshot(key="3", title="t", open=open_, labels=labels)
    assert map_status("gitlab", issue, Status.IN_PROGRESS, RULES) == expected


@pytest.mark.parametrize(
    ("issue", "expected"),
    [
        (jira_issue(status_id="10001", name="Doing", category="indeterminate"), Status.IN_QA),  # the id decides
        (jira_issue(status_id="10002", name="In QA", category="new"), Status.IN_PROGRESS),
        (jira_issue(status_id="99", name="in qa", category="indeterminate"), Status.IN_QA),  # then the name
        (jira_issue(status_id="99", name="DOING", category="new"), Status.IN_PROGRESS),
        (jira_issue(name="parked", category="indeterminate"), Status.TRIAGED),
        (jira_issue(status_id="", name="Doing", category="new"), Status.IN_PROGRESS),
        (jira_issue(status_id="99", name="Elsewhere", category="indeterminate"), Status.IN_PROGRESS),  # category
        (jira_issue(name="", category="new"), Status.TRIAGED),
        (jira_issue(category="done"), Status.RESOLVED),
    ],
)
def test_jira_status_is_taken_from_id_then_name_then_category(issue: IssueSnapshot, expected: Status) -> None:
    """A Jira status id in the rules decides; else its name, whatever its case; else its category."""
    assert map_status("jira", issue, Status.IN_PROGRESS, RULES) == Mapped(status=expected)


@pytest.mark.parametrize(
    ("resolution", "expected"),
    [
        ("Won't Do", Mapped(status=Status.DECLINED, reason="wont_fix")),
        ("won't do", Mapped(status=Status.DECLINED, reason="wont_fix")),
        ("DUPLICATE", Mapped(status=Status.DECLINED, reason="duplicate")),
        ("Fixed", Mapped(status=Status.RESOLVED)),
        ("Duplicates", Mapped(status=Status.RESOLVED)),
        (None, Mapped(status=Status.RESOLVED)),
    ],
)
def test_jira_resolutions_decline_case_insensitively(resolution: str | None, expected: Mapped) -> None:
    """A done issue whose resolution is a declining one (any case) is declined with that reason."""
    assert map_status("jira", jira_issue(category="done", resolution=resolution), Status.IN_QA, RULES) == expected


def test_a_resolution_on_an_issue_that_is_not_done_does_not_decline() -> None:
    """Only a resolved status can become declined: a leftover resolution on an open issue is ignored."""
    issue = jira_issue(status_id="10001", category="indeterminate", resolution="Duplicate")
    assert map_status("jira", issue, Status.IN_PROGRESS, RULES) == Mapped(status=Status.IN_QA)


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        (Status.RECEIVED, None),
        (Status.TRIAGED, Mapped(status=Status.TRIAGED)),
        (Status.IN_PROGRESS, Mapped(status=Status.TRIAGED)),
        (Status.IN_QA, Mapped(status=Status.TRIAGED)),
        (Status.RESOLVED, Mapped(status=Status.REOPENED)),
        (Status.DECLINED, Mapped(status=Status.REOPENED)),
        (Status.REOPENED, Mapped(status=Status.REOPENED)),
    ],
)
def test_an_open_issue_without_progress_after_what_the_reporter_heard(current: Status, expected: Mapped | None) -> None:
    """Open with no progress: reopened after a close, nothing before the filing job's triage, else triaged."""
    issue = IssueSnapshot(key="3", title="t", open=True, labels=())
    assert map_status("gitlab", issue, current, RULES) == expected
    assert map_status("jira", jira_issue(category="new"), current, RULES) == expected


def test_progress_before_triage_is_reported() -> None:
    """Only "triaged" waits for the filing job; real progress is shown even before it."""
    issue = IssueSnapshot(key="3", title="t", open=True, labels=("workflow::doing",))
    assert map_status("gitlab", issue, Status.RECEIVED, RULES) == Mapped(status=Status.IN_PROGRESS)


def test_an_unknown_jira_state_is_logged_with_what_was_seen(caplog: pytest.LogCaptureFixture) -> None:
    """A state the rules do not cover maps to nothing and is logged, naming tracker, issue and state."""
    issue = jira_issue(status_id="77", name="Limbo", category="undefined")
    with caplog.at_level(logging.WARNING, logger="bridge.pipeline.following.status_map"):
        assert map_status("jira", issue, Status.TRIAGED, RULES) is None
        assert map_status("jira", jira_issue(), Status.TRIAGED, RULES) is None
    first, second = (r for r in caplog.records if r.name == "bridge.pipeline.following.status_map")
    assert first.getMessage() == second.getMessage() == "status.unmapped"
    seen = {k: first.__dict__[k] for k in ("tracker", "issue", "status_name", "status_category")}
    assert seen == {"tracker": "jira", "issue": "SUP-1", "status_name": "Limbo", "status_category": "undefined"}
    assert (second.__dict__["status_name"], second.__dict__["status_category"]) == (None, None)


SEVERITIES = list(Severity)


@pytest.mark.parametrize("current", SEVERITIES)
@pytest.mark.parametrize("first", SEVERITIES)
@pytest.mark.parametrize("second", SEVERITIES)
def test_of_two_severity_labels_the_most_severe_new_one_wins(
    current: Severity, first: Severity, second: Severity, mappings: Mappings
) -> None:
    """With two severity labels the one that differs from the current severity was just added; when both
    differ, the more severe one is taken (by rank, not by name)."""
    scheme = mappings.routing.labels["gitlab"]
    issue = IssueSnapshot(key="3", title="t", open=True, labels=(f"severity::{first}", f"Severity::{second.upper()}"))
    changed = [s for s in (first, second) if s is not current]
    expected = max(changed, key=lambda s: s.rank) if changed else None
    assert severity_in_tracker("gitlab", issue, scheme, mappings.status, current) is expected


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (("severity-critical",), Severity.CRITICAL),
        (("Severity-Low", "hotfix"), Severity.LOW),
        (("severity::low",), None),
    ],
)
def test_severity_labels_follow_the_trackers_own_scheme(
    labels: tuple[str, ...], expected: Severity | None, mappings: Mappings
) -> None:
    """The label scheme decides what a severity label looks like (Jira's ``severity-low``, not GitLab's)."""
    scheme = mappings.routing.labels["jira"]
    issue = IssueSnapshot(key="3", title="t", open=True, labels=labels)
    assert severity_in_tracker("gitlab", issue, scheme, mappings.status, Severity.MEDIUM) is expected


@pytest.mark.parametrize(
    ("priority", "current", "expected"),
    [
        ("Highest", Severity.HIGH, Severity.CRITICAL),
        ("Highest", Severity.CRITICAL, None),
        ("Low", Severity.HIGH, Severity.LOW),
        ("low", Severity.HIGH, None),  # Jira priority names are exact
        (None, Severity.HIGH, None),
        ("", Severity.HIGH, None),
    ],
)
def test_jira_severity_comes_from_the_priority_only(
    priority: str | None, current: Severity, expected: Severity | None
) -> None:
    """In Jira the priority is read through the table; severity labels on a Jira issue are not what counts."""
    issue = IssueSnapshot(key="SUP-1", title="t", open=True, labels=("severity-critical",), priority=priority)
    scheme = LabelScheme(severity="severity-{severity}", kind="{kind}", source="s", po_review="p", needs_planning="n")
    assert severity_in_tracker("jira", issue, scheme, RULES, current) is expected
