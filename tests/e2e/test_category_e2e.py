"""The category end to end: a report gets its category in the tracker sandbox (GitLab's scoped label,
Jira's component or label), a developer changes it there, and the status API follows.

Runs against GitLab and Jira (the ``stack`` fixture is parametrized by ``BRIDGE_TRACKER``).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import report_event
from tests.e2e.harness import Issue, Stack, new_event_id, wait_until

pytestmark = pytest.mark.e2e

REPORTER = {"email": "kategori@kunde.dk", "name": "Karin Kategori", "locale": "da", "organization": "Kunde A/S"}


def components(issue: Issue) -> list[str]:
    """Jira's components of the issue (GitLab has none)."""
    if issue.tracker != "jira":
        return []
    return [c["name"] for c in issue.raw["fields"].get("components") or []]


def categories(issue: Issue) -> list[str]:
    """Every category the issue carries: category labels of the tracker's scheme, and Jira components."""
    prefix = "category::" if issue.tracker == "gitlab" else "category-"
    return [label.removeprefix(prefix) for label in issue.labels if label.startswith(prefix)] + components(issue)


def api_category(stack: Stack, tracking_id: str) -> Any:
    response = stack.api_ticket(tracking_id)
    assert response.status_code == 200, response.text
    return response.json()["category"]


def wait_category(stack: Stack, tracking_id: str, expected: dict[str, str]) -> None:
    wait_until(
        lambda: api_category(stack, tracking_id) == expected,
        20,
        what=f"the status API to show {tracking_id}'s category as {expected}",
    )


def test_a_report_gets_its_category_and_a_developer_changes_it(stack: Stack) -> None:
    """The widget report is labelled ``category::widget`` in GitLab and gets the component ``widget``
    in Jira (the sandbox's SUP has one); the developer sets billing, then a category the mapping does
    not have, and the status API shows each, the unknown one by its name."""
    tracking_id = stack.file_report(report_event(event_id=new_event_id(), reporter=REPORTER))
    stack.wait_status(tracking_id, "triaged")
    issue = stack.wait_issue(tracking_id)
    if stack.tracker == "gitlab":
        assert "category::widget" in issue.labels
    else:
        assert components(issue) == ["widget"]
        assert not any(label.startswith("category-") for label in issue.labels)
    assert api_category(stack, tracking_id) == {"name": "widget", "text": "Chat-widget"}

    stack.act(issue, "category", category="billing")
    wait_category(stack, tracking_id, {"name": "billing", "text": "Betaling og fakturering"})
    assert categories(stack.issues_for(tracking_id)[0]) == ["billing"]

    stack.act(issue, "category", category="mobile-app")
    wait_category(stack, tracking_id, {"name": "mobile-app", "text": "mobile-app"})
    assert stack.api_status(tracking_id) == "triaged"  # a category change moves no status


def test_a_category_without_a_jira_component_is_a_label(stack: Stack) -> None:
    """A report about statistics is in ``reports``: GitLab's scoped label, and in Jira (SUP has no such
    component) the label ``category-reports``."""
    event = report_event(event_id=new_event_id(), reporter=REPORTER)
    event["report"] = {"title": "Statistik for sidste måned mangler", "description": "Dashboardet er tomt."}
    tracking_id = stack.file_report(event)
    stack.wait_status(tracking_id, "triaged")
    issue = stack.wait_issue(tracking_id)
    expected = "category::reports" if stack.tracker == "gitlab" else "category-reports"
    assert expected in issue.labels
    assert components(issue) == []
    assert api_category(stack, tracking_id) == {"name": "reports", "text": "Rapporter og statistik"}
