"""Filing end to end: signed reports over HTTP -> exactly one issue each in the tracker sandbox.

Runs against GitLab and Jira (the ``stack`` fixture is parametrized by ``BRIDGE_TRACKER``).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests

from tests.conftest import report_event
from tests.e2e.harness import Issue, Stack, new_event_id, wait_until

pytestmark = pytest.mark.e2e

PROBLEM_JSON = "application/problem+json"

# The CONTRACT's example (section 2): critical, high-impact, enterprise customer.
CRITICAL_EMAIL = "anna@kunde.dk"
# A plain report classified medium: no priority word, no keyword, no tier, no product floor.
MEDIUM_EMAIL = "ole.hansen@lillefirma.dk"


def critical_report(**overrides: Any) -> dict[str, Any]:
    return report_event(event_id=new_event_id(), **overrides)


def medium_report() -> dict[str, Any]:
    return {
        "event_id": new_event_id(),
        "type": "report.created",
        "reporter": {"email": MEDIUM_EMAIL, "name": "Ole Hansen", "locale": "da", "organization": "Lille Firma ApS"},
        "report": {
            "title": "Datoen i CSV-eksporten har amerikansk format",
            "description": "Når vi eksporterer månedsrapporten, står datoerne som MM/DD/YYYY.",
            "impact": "Lidt forvirrende for bogholderiet",
            "priority": "normal",
            "product": "reports",
        },
    }


def oversized_report_body() -> bytes:
    """A signed-able report whose body is over the 1 MiB limit (server.max_body_bytes)."""
    event = critical_report()
    event["report"]["description"] = "x" * (1024 * 1024 + 10)
    return json.dumps(event).encode()


def expected_labels(tracker: str, severity: str, kind: str) -> set[str]:
    if tracker == "gitlab":
        return {f"severity::{severity}", f"type::{kind}", "source::chatbot"}
    return {f"severity-{severity}", kind, "source-chatbot"}


def one_issue_each(stack: Stack, tracking_ids: list[str]) -> dict[str, list[Issue]]:
    issues = stack.issues()
    return {tid: [i for i in issues if i.tracking_id == tid] for tid in tracking_ids}


def wait_one_issue_each(stack: Stack, tracking_ids: list[str], timeout: float) -> None:
    def every_report_has_an_issue() -> bool:
        return all(one_issue_each(stack, tracking_ids).values())

    wait_until(every_report_has_an_issue, timeout, what=f"one issue for each of {tracking_ids}")


def assert_exactly_one_issue_each(stack: Stack, tracking_ids: list[str]) -> None:
    """One issue per report, and each (all critical) complete: in the current sprint, even if adopted."""
    found = one_issue_each(stack, tracking_ids)
    counts = {tid: len(issues) for tid, issues in found.items()}
    assert counts == dict.fromkeys(tracking_ids, 1), f"issues per tracking ID: {counts}"
    current_sprint, _ = stack.current_and_next_sprint()
    sprints = {tid: issues[0].sprints for tid, issues in found.items()}
    assert sprints == dict.fromkeys(tracking_ids, (current_sprint,)), f"sprints per tracking ID: {sprints}"


def test_reports_are_filed_with_labels_priority_and_sprint(stack: Stack) -> None:
    """A signed report is answered 202 at once and filed as one labelled issue in the right sprint, without email."""
    current_sprint, next_sprint = stack.current_and_next_sprint()

    critical = critical_report()
    started = time.perf_counter()
    response = stack.post_event(critical)
    elapsed = time.perf_counter() - started
    assert response.status_code == 202, response.text
    assert elapsed < 0.5, f"the webhook took {elapsed * 1000:.0f} ms to answer"
    body = response.json()
    critical_id = body["tracking_id"]
    assert body["status"] == "received"
    assert body["status_url"].startswith(f"{stack.web_url}/t/{critical_id}?s=")

    medium_id = stack.file_report(medium_report())

    # "triaged" means the issue exists with its severity and planned sprint (CONTRACT section 1); the
    # issue itself appears earlier, while Jira's sprint is still being set through the board API.
    stack.wait_status(critical_id, "triaged")
    stack.wait_status(medium_id, "triaged")
    issue = stack.wait_issue(critical_id)
    assert issue.title == f"[{critical_id}] {critical['report']['title']}"
    assert expected_labels(stack.tracker, "critical", "hotfix") | {"needs-po-review"} <= set(issue.labels)
    assert issue.sprints == (current_sprint,)
    if stack.tracker == "jira":
        assert issue.priority == "Highest"

    medium = stack.wait_issue(medium_id)
    assert medium.title == f"[{medium_id}] Datoen i CSV-eksporten har amerikansk format"
    assert expected_labels(stack.tracker, "medium", "bugfix") <= set(medium.labels)
    assert "needs-po-review" not in medium.labels
    assert medium.sprints == (next_sprint,)
    if stack.tracker == "jira":
        assert medium.priority == "Medium"

    for filed, address in ((issue, CRITICAL_EMAIL), (medium, MEDIUM_EMAIL)):
        everything = json.dumps(filed.raw, ensure_ascii=False).lower()
        assert address not in everything, f"the reporter's email address is in {filed.key}"


def test_bad_requests_are_refused_and_create_nothing(stack: Stack) -> None:
    """Unsigned, stale, malformed, incomplete, oversized and non-JSON requests get problem+json and file nothing."""
    before = {issue.key for issue in stack.issues()}
    good = json.dumps(critical_report()).encode()

    unsigned = stack.post_raw(good, {"Content-Type": "application/json"})
    stale = stack.post_raw(good, stack.signed_headers(good, at=int(time.time()) - 600))
    malformed_body = b'{"event_id": "evt_broken", "type": '
    malformed = stack.post_raw(malformed_body, stack.signed_headers(malformed_body))
    incomplete_event = {"event_id": new_event_id(), "type": "report.created", "reporter": {}, "report": {}}
    incomplete_body = json.dumps(incomplete_event).encode()
    incomplete = stack.post_raw(incomplete_body, stack.signed_headers(incomplete_body))
    huge_body = oversized_report_body()
    huge = stack.post_on_new_connection(huge_body, stack.signed_headers(huge_body))
    # Chunked, so without Content-Length: the server must still see it is over the limit, not cut it.
    chunks = (huge_body[i : i + 65536] for i in range(0, len(huge_body), 65536))
    huge_chunked = requests.post(
        f"{stack.web_url}/webhooks/chatbot", data=chunks, headers=stack.signed_headers(huge_body), timeout=10
    )
    assert huge_chunked.request.headers.get("Transfer-Encoding") == "chunked"
    plain = stack.post_raw(good, {**stack.signed_headers(good), "Content-Type": "text/plain"})

    answers = {
        "unsigned": (unsigned, 401),
        "stale": (stale, 401),
        "malformed": (malformed, 400),
        "incomplete": (incomplete, 400),
        "huge": (huge, 413),
        "huge, chunked": (huge_chunked, 413),
        "text/plain": (plain, 415),
    }
    got = {name: response.status_code for name, (response, _) in answers.items()}
    assert got == {name: status for name, (_, status) in answers.items()}
    for name, (response, status) in answers.items():
        assert response.headers["Content-Type"].startswith(PROBLEM_JSON), name
        assert response.json()["status"] == status, name
    fields = {error["field"] for error in incomplete.json()["errors"]}
    assert {"reporter.email", "report.title", "report.description"} <= fields

    # Barrier: a good report sent after the bad ones is filed; by then a wrongly stored one would be too.
    sentinel_id = stack.file_report(critical_report())
    stack.wait_issue(sentinel_id)
    stack.wait_filed([sentinel_id])
    new = [issue for issue in stack.issues() if issue.key not in before]
    assert [issue.tracking_id for issue in new] == [sentinel_id]


def test_tracker_outage_then_recovery_files_each_report_once(stack: Stack) -> None:
    """Reports accepted during a tracker outage are all filed, once each, after it ends."""
    since = stack.last_request_id()
    stack.add_fault(outage=True, retry_after_s=1)
    try:
        tracking_ids = [stack.file_report(critical_report()) for _ in range(5)]

        def outage_hits() -> int:
            hits = [e for e in stack.requests_log(since=since) if e.get("fault") == "outage"]
            return len(hits) if len(hits) >= 5 else 0

        wait_until(outage_hits, 20, what="the worker to run into the outage")
        time.sleep(1.5)  # a few more retry rounds against the outage
        assert all(not found for found in one_issue_each(stack, tracking_ids).values())
    finally:
        stack.clear_faults()

    wait_one_issue_each(stack, tracking_ids, timeout=40)
    stack.wait_filed(tracking_ids)
    assert_exactly_one_issue_each(stack, tracking_ids)


def test_create_answered_502_after_creating_makes_no_duplicate(stack: Stack) -> None:
    """A create that succeeded but was answered 502 is adopted on retry, not created again."""
    since = stack.last_request_id()
    stack.add_fault(endpoint="create_issue", create_then_502=2)
    try:
        tracking_ids = [stack.file_report(critical_report()) for _ in range(3)]
        wait_one_issue_each(stack, tracking_ids, timeout=30)
        stack.wait_filed(tracking_ids, timeout=40)
    finally:
        stack.clear_faults()
    assert_exactly_one_issue_each(stack, tracking_ids)
    lost_answers = [e for e in stack.requests_log(since=since) if e.get("fault") == "create_then_502"]
    assert len(lost_answers) == 2, "the fault should have swallowed the answers of two creates"


def test_duplicate_delivery_is_answered_200_and_files_once(stack: Stack) -> None:
    """The same event_id twice gets 202 then 200 with the same body, and one issue."""
    event = critical_report()
    first = stack.post_event(event)
    second = stack.post_event(event)
    assert (first.status_code, second.status_code) == (202, 200)
    assert second.json() == first.json()
    tracking_id = first.json()["tracking_id"]
    stack.wait_issue(tracking_id)
    stack.wait_filed([tracking_id])
    assert_exactly_one_issue_each(stack, [tracking_id])
