"""Planning end to end against the Jira sandbox: a sprint that closes between the create and the
sprint call (Jira's agile API answers 400 for a closed sprint).

The module starts a Jira stack of its own: closing the sandbox's sprint must not move the plans
the shared stack's other tests expect.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import report_event
from tests.e2e.harness import Stack, new_event_id

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(tmp_path_factory.mktemp("e2e-jira-sprints"), tracker="jira").start()
    try:
        yield running
    finally:
        running.stop()


def test_sprint_closed_between_create_and_plan_files_one_issue_in_the_next_open_sprint(stack: Stack) -> None:
    """The sprint closes (and the next one starts) while the create's answer is on its way: one issue,
    its key kept, the sprint call refused once, the issue planned into the next open sprint."""
    closing, following = stack.current_and_next_sprint()
    since = stack.last_request_id()
    stack.add_fault(endpoint="create_issue", close_sprint_after_create=1)
    try:
        tracking_id = stack.file_report(report_event(event_id=new_event_id()))  # critical: the current sprint
        body = stack.wait_status(tracking_id, "triaged", timeout=30)
    finally:
        stack.clear_faults()

    (issue,) = stack.issues_for(tracking_id)
    assert issue.sprints == (following,)
    assert body["planned_for"]["name"] == following
    assert body["needs_support"] is False
    sprints = {s["name"]: s["state"] for s in stack.state()["jira"]["sprints"]}
    assert (sprints[closing], sprints[following]) == ("closed", "active")

    log = stack.requests_log(since=since)
    creates = [e for e in log if e["endpoint"] == "create_issue" and e["method"] == "POST"]
    assert [e["status"] for e in creates] == [201]
    placements = [(e["path"].split("/")[-2], e["status"]) for e in log if e["endpoint"] == "add_sprint_issues"]
    closing_id = next(str(s["id"]) for s in stack.state()["jira"]["sprints"] if s["name"] == closing)
    assert placements[0] == (closing_id, 400)
    assert [status for _, status in placements[1:]] == [204]
