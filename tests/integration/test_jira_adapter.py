"""JiraTracker against Jira's documented REST v2 / agile 1.0 payloads, mocked at the HTTP boundary."""

from __future__ import annotations

import base64
import json
import re
import time
import traceback
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from bridge.adapters.trackers.base import SprintQuery
from bridge.adapters.trackers.jira import JiraTracker, render_description
from bridge.domain import (
    Account,
    Attachment,
    Channel,
    Classification,
    Destination,
    IssueRef,
    IssueSnapshot,
    Kind,
    NewIssue,
    Report,
    Severity,
    Sprint,
    SprintWindow,
)
from bridge.errors import NotFoundError, OutcomeUnknown, PermanentError, RetryableError

URL = "https://acme.atlassian.net"
USER = "bot@acme.dk"
TOKEN = "ATATT3xFfGF0-s3cr3t-api-token"
POINTS = "customfield_10016"
DEST = Destination(tracker="jira", project="SUP", board_id=7)
TODAY = "2024-06-12"

API = f"{URL}/rest/api/2"
SEARCH = f"{API}/search/jql"
LEGACY_SEARCH = f"{API}/search"
AGILE = f"{URL}/rest/agile/1.0"
CREATED = {"id": "10000", "key": "SUP-24", "self": f"{API}/issue/10000"}


@pytest.fixture
def api() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


@pytest.fixture
def tracker() -> JiraTracker:
    return JiraTracker(url=URL + "/", user=USER, api_token=TOKEN, timeout=3.5, story_points_field=POINTS)


def new_issue(**overrides: Any) -> NewIssue:
    report = Report(
        title="Kan ikke logge ind",
        description="Login fejler med 500 siden i morges.",
        impact="Hele kundeservice står stille",
        declared_priority="Kritisk",
        product="Portal",
        organization="Ærø Kommune",
        environment={"browser": "Firefox 126", "os": "Windows 11"},
        attachments=(Attachment(filename="fejl.png", content_type="image/png", url="https://files.example/a/1"),),
        channel=Channel.EMAIL,
    )
    values: dict[str, Any] = {
        "tracking_id": "BR-1",
        "report": report,
        "classification": Classification(
            severity=Severity.HIGH, kind=Kind.HOTFIX, po_review=True, rules=("login_down", "many_users")
        ),
        "labels": ("support", "chat intake"),
        "priority": "High",
        "sprint": Sprint(id="42", name="Sprint 24", start_date=date(2024, 6, 10), due_date=date(2024, 6, 23)),
        "reporter_name": "Søren Ærø",
    }
    values.update(overrides)
    return NewIssue(**values)


def body(call: Any) -> Any:
    return json.loads(call.request.body)


def query(call: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query)


def sprint(id: int, name: str, state: str, start: str | None = None, end: str | None = None) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": id,
        "self": f"{AGILE}/sprint/{id}",
        "state": state,
        "name": name,
        "originBoardId": 7,
        "goal": "",
    }
    if start:
        raw["startDate"] = start
    if end:
        raw["endDate"] = end
    return raw


def sprint_page(values: list[dict[str, Any]], *, start: int, last: bool, total: int) -> dict[str, Any]:
    return {"maxResults": 50, "startAt": start, "total": total, "isLast": last, "values": values}


def found_issues(issues: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [
        {"expand": "", "id": str(10000 + i), "self": f"{API}/issue/{10000 + i}", "key": key, "fields": fields}
        for i, (key, fields) in enumerate(issues)
    ]


def search_result(issues: list[tuple[str, dict[str, Any]]], *, total: int, start: int = 0) -> dict[str, Any]:
    """A page of the classic (Data Center) ``/search``: ``startAt``/``total`` paging."""
    return {
        "expand": "names,schema",
        "startAt": start,
        "maxResults": 50,
        "total": total,
        "issues": found_issues(issues),
    }


def jql_page(issues: list[tuple[str, dict[str, Any]]], *, token: str | None = None) -> dict[str, Any]:
    """A page of the enhanced ``/search/jql``: no ``total``; ``nextPageToken`` unless ``isLast``."""
    page: dict[str, Any] = {"issues": found_issues(issues), "isLast": token is None}
    if token is not None:
        page["nextPageToken"] = token
    return page


def ids(count: int, first: int = 1) -> list[tuple[str, dict[str, Any]]]:
    """Issues as ``/search/jql`` returns them for ``fields=id``."""
    return [(f"SUP-{n}", {}) for n in range(first, first + count)]


def path(call: Any) -> str:
    return urlsplit(call.request.url).path


DC_NOT_FOUND = {"message": "null for uri: https://jira.acme.dk/rest/api/2/search/jql", "status-code": 404}


def transition(id: str, name: str, category: str) -> dict[str, Any]:
    return {
        "id": id,
        "name": name,
        "to": {"id": "1" + id, "name": name, "statusCategory": {"id": 2, "key": category, "name": category}},
        "hasScreen": False,
        "isGlobal": False,
        "isInitial": False,
        "isConditional": False,
    }


def issue_status(category: str) -> dict[str, Any]:
    return {
        "id": "10000",
        "key": "SUP-24",
        "self": f"{API}/issue/10000",
        "fields": {"status": {"id": "3", "name": "whatever", "statusCategory": {"id": 3, "key": category}}},
    }


def outside_noformat(markup: str) -> str:
    """The parts of the markup Jira renders (everything outside {noformat} pairs)."""
    return "".join(markup.split("{noformat}")[0::2])


# -- construction and transport -------------------------------------------------------------------


def test_constructor_makes_no_request(api: responses.RequestsMock) -> None:
    """Building the tracker does not touch the network (no server-info or login call)."""
    JiraTracker(url=URL, user=USER, api_token=TOKEN)
    assert len(api.calls) == 0


def test_requests_use_basic_auth_and_timeout(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """Calls authenticate with Basic user:token and pass the configured timeout to requests."""
    api.get(SEARCH, json=jql_page([]))
    tracker.find_issue(DEST, tracking_id="BR-1")
    request = api.calls[0].request
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(f"{USER}:{TOKEN}".encode()).decode()
    assert request.req_kwargs["timeout"] == 3.5


# -- find_issue -------------------------------------------------------------------------------


def test_find_issue_sends_phrase_jql_and_keeps_only_exact_prefix(
    tracker: JiraTracker, api: responses.RequestsMock
) -> None:
    """find_issue asks /search/jql for one page on the quoted id and keeps the oldest [tid]-prefixed hit."""
    api.get(
        SEARCH,
        json=jql_page(
            [
                ("SUP-20", {"summary": "Re: [BR-1] Kan ikke logge ind"}),
                ("SUP-21", {"summary": "[BR-10] Anden fejl"}),
                ("SUP-24", {"summary": "[BR-1] Kan ikke logge ind"}),
                ("SUP-25", {"summary": "[BR-1] Kan ikke logge ind (dublet)"}),
            ],
            token="CAEaAggD",  # more pages exist, but one page of 50 is all find_issue reads
        ),
    )
    ref = tracker.find_issue(DEST, tracking_id="BR-1")
    assert ref == IssueRef(key="SUP-24", url=f"{URL}/browse/SUP-24")
    assert len(api.calls) == 1
    assert path(api.calls[0]) == "/rest/api/2/search/jql"
    assert query(api.calls[0]) == {
        "jql": ['project = "SUP" AND summary ~ "\\"BR-1\\"" ORDER BY created ASC'],
        "fields": ["summary"],
        "maxResults": ["50"],
    }


def test_find_issue_returns_none_without_prefix_match(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """Text-search hits that merely mention the tracking id are not the issue."""
    api.get(SEARCH, json=jql_page([("SUP-20", {"summary": "See BR-1 and BR-2"})]))
    assert tracker.find_issue(DEST, tracking_id="BR-1") is None
    assert path(api.calls[0]) == "/rest/api/2/search/jql"


def test_find_issue_rate_limited_is_retryable(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """A 429 on /search/jql is RetryableError with Retry-After: no library retry, no fallback to /search."""
    api.get(SEARCH, status=429, headers={"Retry-After": "7"}, json={"errorMessages": ["Rate limited"]})
    with pytest.raises(RetryableError) as info:
        tracker.find_issue(DEST, tracking_id="BR-1")
    assert info.value.retry_after == 7.0
    assert [path(c) for c in api.calls] == ["/rest/api/2/search/jql"]


# -- search API fallback (Jira Data Center) -----------------------------------------------------


def test_search_falls_back_to_classic_search_on_404_and_remembers(
    tracker: JiraTracker, api: responses.RequestsMock
) -> None:
    """A 404 on /search/jql (Data Center) retries on /search, and later calls go straight to /search."""
    api.get(SEARCH, status=404, json=DC_NOT_FOUND)
    api.get(LEGACY_SEARCH, json=search_result([("SUP-24", {"summary": "[BR-1] Kan ikke logge ind"})], total=1))
    api.get(LEGACY_SEARCH, json={"startAt": 0, "maxResults": 0, "total": 7, "issues": []})
    assert tracker.find_issue(DEST, tracking_id="BR-1") == IssueRef(key="SUP-24", url=f"{URL}/browse/SUP-24")
    load = tracker.sprint_load(DEST, Sprint(id="31", name="Sprint 24"), label="hotfix", unit="issues")
    assert load == 7.0
    assert [path(c) for c in api.calls] == [
        "/rest/api/2/search/jql",
        "/rest/api/2/search",
        "/rest/api/2/search",
    ]
    assert query(api.calls[1]) == query(api.calls[0])  # the same search, on the classic endpoint
    assert query(api.calls[2]) == {
        "jql": ['sprint = 31 AND labels = "hotfix" AND statusCategory != Done'],
        "maxResults": ["0"],
    }


def test_classic_search_410_is_permanent(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """A 410 Gone from the classic /search after a 404 on /search/jql is a clear PermanentError."""
    api.get(SEARCH, status=404, json=DC_NOT_FOUND)
    api.get(
        LEGACY_SEARCH,
        status=410,
        json={"errorMessages": ["The requested API has been removed. Please migrate to /search/jql."]},
    )
    with pytest.raises(PermanentError) as info:
        tracker.find_issue(DEST, tracking_id="BR-1")
    message = str(info.value)
    assert message.startswith("jira find issue: HTTP 410: The requested API has been removed.")
    assert "/rest/api/2/search is gone" in message
    assert "CHANGE-2046" in message
    assert "/rest/api/2/search/jql answered 404" in message
    assert TOKEN not in message
    assert [path(c) for c in api.calls] == ["/rest/api/2/search/jql", "/rest/api/2/search"]
    assert info.value.__cause__ is None


def test_classic_search_failure_is_not_remembered(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """The fallback sticks only once /search worked: after a 410 the next call tries /search/jql again."""
    api.get(SEARCH, status=404, json=DC_NOT_FOUND)
    api.get(LEGACY_SEARCH, status=410, json={"errorMessages": ["Gone"]})
    api.get(SEARCH, json=jql_page([]))
    with pytest.raises(PermanentError, match="HTTP 410"):
        tracker.find_issue(DEST, tracking_id="BR-1")
    assert tracker.find_issue(DEST, tracking_id="BR-1") is None
    assert [path(c) for c in api.calls] == [
        "/rest/api/2/search/jql",
        "/rest/api/2/search",
        "/rest/api/2/search/jql",
    ]


# -- create_issue -----------------------------------------------------------------------------


def test_create_issue_posts_fields_and_nothing_else(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """Create sends project/issuetype dicts, space-free labels and priority in one request; the sprint
    is left to ensure_in_sprint, so the caller can store the new key before the sprint call."""
    api.post(f"{API}/issue", status=201, json=CREATED)
    ref = tracker.create_issue(DEST, new_issue(labels=("support", "chat  intake", "support")))
    assert ref == IssueRef(key="SUP-24", url=f"{URL}/browse/SUP-24")
    assert len(api.calls) == 1  # no prefetch GET, no project/issuetype lookups, no sprint call
    fields = body(api.calls[0])["fields"]
    description = fields.pop("description")
    assert fields == {
        "project": {"key": "SUP"},
        "issuetype": {"name": "Bug"},
        "summary": "[BR-1] Kan ikke logge ind",
        "labels": ["support", "chat-intake"],
        "priority": {"name": "High"},
    }
    assert description.rstrip().endswith("Tracking ID: BR-1")
    assert "Sprint 24" in description
    assert tracker.sprint_on_create is False


def test_create_issue_sends_the_category_component_by_name(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """A category that goes in as a component is the ``components`` field, by the name the project
    spells it; the description names the category and the rule that fired beside the severity."""
    api.post(f"{API}/issue", status=201, json=CREATED)
    issue = new_issue(category="widget", category_rule="product:Chat widget!", components=("Widget",))
    tracker.create_issue(DEST, issue)
    fields = body(api.calls[0])["fields"]
    assert fields["components"] == [{"name": "Widget"}]
    assert fields["labels"] == ["support", "chat-intake"]
    classification = fields["description"].split("h3. Classification")[1].split("h3. Planned sprint")[0]
    assert "* Rules: login\\_down, many\\_users\n* Category: widget (product:Chat widget\\!)" in classification


def test_create_issue_without_a_component_sends_none(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """No category component (the category went in as a label): no ``components`` field at all."""
    api.post(f"{API}/issue", status=201, json=CREATED)
    tracker.create_issue(DEST, new_issue(category="reports", category_rule="default"))
    fields = body(api.calls[0])["fields"]
    assert "components" not in fields
    assert "* Category: reports (default)" in fields["description"]


def test_components_lists_the_projects_component_names(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """``GET /project/{key}/components`` (Jira's documented shape): the names, in Jira's order."""
    api.get(
        f"{API}/project/SUP/components",
        json=[
            {"self": f"{API}/component/10000", "id": "10000", "name": "Widget", "description": "Chat widget",
             "assigneeType": "PROJECT_LEAD", "isAssigneeTypeValid": False, "project": "SUP", "projectId": 10000},
            {"self": f"{API}/component/10001", "id": "10001", "name": "billing", "project": "SUP", "projectId": 10000},
        ],
    )  # fmt: skip
    assert tracker.components(DEST) == ("Widget", "billing")
    assert len(api.calls) == 1


@pytest.mark.parametrize(("status", "error"), [(404, PermanentError), (403, PermanentError), (503, RetryableError)])
def test_components_errors_are_typed(
    tracker: JiraTracker, api: responses.RequestsMock, status: int, error: type[Exception]
) -> None:
    """No such project or no permission is permanent (the filing job then writes the label), an
    outage is retryable."""
    api.get(f"{API}/project/SUP/components", status=status, json={"errorMessages": ["No project could be found"]})
    with pytest.raises(error):
        tracker.components(DEST)


def test_create_issue_without_priority_or_sprint(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """No priority field is sent when unset, and no sprint call is made without a sprint."""
    api.post(f"{API}/issue", status=201, json=CREATED)
    tracker.create_issue(DEST, new_issue(priority=None, sprint=None))
    assert len(api.calls) == 1
    assert "priority" not in body(api.calls[0])["fields"]


def test_create_issue_summary_is_single_line_and_bounded(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """Jira rejects multi-line or >255 character summaries, so the title is flattened and cut."""
    api.post(f"{API}/issue", status=201, json=CREATED)
    report = new_issue().report
    long_report = Report(title="Fejl\nmed linjeskift " + "x" * 300, description=report.description)
    tracker.create_issue(DEST, new_issue(report=long_report, sprint=None))
    summary = body(api.calls[0])["fields"]["summary"]
    assert summary.startswith("[BR-1] Fejl med linjeskift x")
    assert len(summary) == 255


def test_create_issue_reporter_email_only_when_set(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """The reporter's email reaches Jira only when configuration put it on the NewIssue."""
    api.post(f"{API}/issue", status=201, json=CREATED)
    api.post(f"{API}/issue", status=201, json={**CREATED, "key": "SUP-25"})
    tracker.create_issue(DEST, new_issue(sprint=None))
    tracker.create_issue(DEST, new_issue(sprint=None, reporter_email="soren@aeroe.dk"))
    assert "aeroe.dk" not in str(api.calls[0].request.body)
    assert "Reporter email" not in body(api.calls[0])["fields"]["description"]
    assert "soren@aeroe.dk" in body(api.calls[1])["fields"]["description"]


def test_ensure_in_sprint_closed_sprint_is_permanent(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """A sprint closed since it was planned answers 400: a permanent error naming issue and sprint."""
    api.post(
        f"{AGILE}/sprint/42/issue",
        status=400,
        json={"errorMessages": ["Cannot move issues to a closed sprint."], "errors": {}},
    )
    with pytest.raises(PermanentError, match=r"SUP-24.*sprint 42.*HTTP 400.*closed sprint"):
        tracker.ensure_in_sprint(DEST, IssueRef(key="SUP-24"), Sprint(id="42", name="Sprint 24"))
    assert len(api.calls) == 1


def test_create_issue_400_includes_jira_field_errors(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """A 400 is permanent and its message carries Jira's errorMessages and field errors."""
    api.post(
        f"{API}/issue",
        status=400,
        json={
            "errorMessages": ["Bad request"],
            "errors": {
                "priority": "Priority name 'High' is not valid",
                "labels": "The label 'x y' contains spaces",
            },
        },
    )
    with pytest.raises(PermanentError) as info:
        tracker.create_issue(DEST, new_issue())
    message = str(info.value)
    assert "jira create issue: HTTP 400" in message
    assert "Bad request" in message
    assert "priority: Priority name 'High' is not valid" in message
    assert "labels: The label 'x y' contains spaces" in message
    assert len(api.calls) == 1


def test_create_issue_401_is_permanent_and_hides_credentials(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """A 401 is permanent; neither token nor Authorization header shows in the error or its traceback."""
    api.post(
        f"{API}/issue",
        status=401,
        json={"errorMessages": [f"Client must be authenticated (token {TOKEN} rejected)"]},
    )
    with pytest.raises(PermanentError, match="HTTP 401") as info:
        tracker.create_issue(DEST, new_issue())
    rendered = "".join(traceback.format_exception(info.value))
    assert TOKEN not in rendered
    assert "Authorization" not in rendered
    assert "Basic " not in rendered
    assert "JiraError HTTP" not in rendered  # the library's verbose header dump is not chained


def test_create_issue_403_is_permanent(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """A 403 (no create permission) is permanent and keeps Jira's message."""
    api.post(
        f"{API}/issue",
        status=403,
        json={
            "errorMessages": ["You do not have permission to create issues in this project."],
            "errors": {},
        },
    )
    with pytest.raises(PermanentError, match="HTTP 403: You do not have permission"):
        tracker.create_issue(DEST, new_issue())


def test_create_issue_404_is_permanent(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """A 404 is permanent."""
    api.post(f"{API}/issue", status=404, json={"errorMessages": ["Issue does not exist"], "errors": {}})
    with pytest.raises(PermanentError, match="HTTP 404"):
        tracker.create_issue(DEST, new_issue())


def test_create_issue_429_is_retryable_once_with_retry_after(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """A 429 is retryable with the server's Retry-After, and the client library does not retry the POST."""
    api.post(
        f"{API}/issue",
        status=429,
        headers={"Retry-After": "30", "RateLimit-Reason": "jira-burst-based"},
        json={"errorMessages": ["Rate limit exceeded."]},
    )
    with pytest.raises(RetryableError) as info:
        tracker.create_issue(DEST, new_issue())
    assert info.value.retry_after == 30.0
    assert len(api.calls) == 1


def test_create_issue_429_uses_x_ratelimit_reset(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """Without Retry-After, Jira's X-RateLimit-Reset (ISO 8601) sets retry_after."""
    reset = (datetime.now(UTC) + timedelta(minutes=5)).replace(second=0, microsecond=0)
    api.post(
        f"{API}/issue",
        status=429,
        headers={"X-RateLimit-Reset": reset.strftime("%Y-%m-%dT%H:%MZ")},
        json={"errorMessages": ["Rate limit exceeded."]},
    )
    with pytest.raises(RetryableError) as info:
        tracker.create_issue(DEST, new_issue())
    assert info.value.retry_after is not None
    assert 200 < info.value.retry_after <= 300
    assert len(api.calls) == 1


@pytest.mark.parametrize("status", [500, 502, 504])
def test_create_issue_5xx_after_sending_is_outcome_unknown(
    tracker: JiraTracker, api: responses.RequestsMock, status: int
) -> None:
    """A 500/502/504 may follow a committed create: OutcomeUnknown (look before creating again),
    and never re-POSTed by the library."""
    api.post(f"{API}/issue", status=status, json={"errorMessages": ["Internal server error"]})
    started = time.monotonic()
    with pytest.raises(OutcomeUnknown, match=f"HTTP {status}"):
        tracker.create_issue(DEST, new_issue())
    assert len(api.calls) == 1
    assert time.monotonic() - started < 2  # ResilientSession did not sleep before a retry


def test_create_issue_503_is_retryable_and_known_not_done(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """A 503 turns the request away: retryable, but not an unknown outcome."""
    api.post(f"{API}/issue", status=503, body="Service Unavailable")
    with pytest.raises(RetryableError) as info:
        tracker.create_issue(DEST, new_issue())
    assert not isinstance(info.value, OutcomeUnknown)
    assert len(api.calls) == 1


def test_create_issue_503_with_retry_after(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """A 503's Retry-After is passed on as retry_after, with exactly one request."""
    api.post(f"{API}/issue", status=503, headers={"Retry-After": "120"}, body="Service Unavailable")
    with pytest.raises(RetryableError) as info:
        tracker.create_issue(DEST, new_issue())
    assert info.value.retry_after == 120.0
    assert "Service Unavailable" in str(info.value)
    assert len(api.calls) == 1


def test_create_issue_connection_error_is_outcome_unknown(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """A dropped connection may have carried the create: OutcomeUnknown, not retried by the library."""
    api.post(f"{API}/issue", body=requests.exceptions.ConnectionError("Connection reset by peer"))
    with pytest.raises(OutcomeUnknown, match="ConnectionError"):
        tracker.create_issue(DEST, new_issue())
    assert len(api.calls) == 1


def test_create_issue_read_timeout_is_outcome_unknown(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """A read timeout: the create was sent, the answer never came."""
    api.post(f"{API}/issue", body=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(OutcomeUnknown, match="ReadTimeout"):
        tracker.create_issue(DEST, new_issue())
    assert len(api.calls) == 1


def test_create_issue_connect_timeout_is_retryable_and_known_not_done(
    tracker: JiraTracker, api: responses.RequestsMock
) -> None:
    """A connect timeout never reached Jira: retryable, not an unknown outcome."""
    api.post(f"{API}/issue", body=requests.exceptions.ConnectTimeout("connect timed out"))
    with pytest.raises(RetryableError) as info:
        tracker.create_issue(DEST, new_issue())
    assert not isinstance(info.value, OutcomeUnknown)


def test_reads_are_never_outcome_unknown(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """A 502 or a timeout on a read is plainly retryable (reads are safe to repeat)."""
    api.get(f"{API}/issue/SUP-1", status=502, body="Bad Gateway")
    with pytest.raises(RetryableError) as info:
        tracker.issue_state(DEST, IssueRef(key="SUP-1"))
    assert not isinstance(info.value, OutcomeUnknown)


def test_create_issue_unexpected_success_body_is_permanent(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """A 2xx that is not JSON (e.g. a proxy's HTML page) becomes a typed error, not a raw exception."""
    api.post(f"{API}/issue", status=200, body="<html>Login</html>", content_type="text/html")
    with pytest.raises(PermanentError, match="jira create issue"):
        tracker.create_issue(DEST, new_issue())


# -- ensure_in_sprint / add_comment -----------------------------------------------------------


def test_ensure_in_sprint_posts_issue_key(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """ensure_in_sprint POSTs the issue key to the agile sprint endpoint."""
    api.post(f"{AGILE}/sprint/43/issue", status=204)
    tracker.ensure_in_sprint(DEST, IssueRef(key="SUP-24"), Sprint(id="43", name="Sprint 25"))
    assert body(api.calls[0]) == {"issues": ["SUP-24"]}


def test_ensure_in_sprint_rejects_non_numeric_id(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """A sprint id that is not a Jira sprint id is refused before any request."""
    with pytest.raises(PermanentError, match="numeric"):
        tracker.ensure_in_sprint(DEST, IssueRef(key="SUP-24"), Sprint(id="%2e%2e/board", name="x"))
    assert len(api.calls) == 0


def test_add_comment_posts_body(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """add_comment POSTs {"body": text} to the v2 comment endpoint."""
    api.post(
        f"{API}/issue/SUP-24/comment",
        status=201,
        json={"id": "10501", "self": f"{API}/issue/10000/comment/10501", "body": "Kunden har svaret"},
    )
    tracker.add_comment(DEST, IssueRef(key="SUP-24"), "Kunden har svaret")
    assert body(api.calls[0]) == {"body": "Kunden har svaret"}


def test_add_comment_puts_reporter_text_in_noformat(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """The reporter's words follow the bridge's (formatted) heading inside {noformat}: a mention,
    an image, a disguised link or a smuggled {noformat} close stay text."""
    api.post(f"{API}/issue/SUP-24/comment", status=201, json={"id": "10502", "body": "x"})
    hostile = (
        "Hej [~accountid:5b10ac8d82e05b22cc7d4ef5]\n!https://evil.example/p.png!\n"
        "[Jeres faktura|https://evil.example/login]\n{noformat}\n*bold* {color:red}rød{color}"
    )
    tracker.add_comment(DEST, IssueRef(key="SUP-24"), "*The reporter added:*", reporter_text=hostile)
    sent = body(api.calls[0])["body"]
    heading, _, rest = sent.partition("\n\n")
    assert heading == "*The reporter added:*"
    assert rest.startswith("{noformat}\n")
    assert rest.endswith("\n{noformat}")
    inside = rest[len("{noformat}\n") : -len("\n{noformat}")]
    assert "{noformat" not in inside
    assert "[~accountid:5b10ac8d82e05b22cc7d4ef5]" in inside
    assert "!https://evil.example/p.png!" in inside
    assert "[Jeres faktura|https://evil.example/login]" in inside


# -- sprints ----------------------------------------------------------------------------------


def test_sprints_follows_pages_and_picks_current_and_next(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """All pages are read; current is the active sprint containing today, next the first future one."""
    api.get(
        f"{AGILE}/board/7/sprint",
        json=sprint_page(
            [
                sprint(
                    30,
                    "Sprint 23",
                    "active",
                    "2024-05-27T08:00:00.000+02:00",
                    "2024-06-09T17:00:00.000+02:00",
                ),
                sprint(
                    31,
                    "Sprint 24",
                    "active",
                    "2024-06-10T08:00:00.000+02:00",
                    "2024-06-23T17:00:00.000+02:00",
                ),
            ],
            start=0,
            last=False,
            total=4,
        ),
    )
    api.get(
        f"{AGILE}/board/7/sprint",
        json=sprint_page(
            [
                sprint(32, "Sprint 25", "future"),
                sprint(33, "Sprint 26", "future", "2024-07-08T08:00:00.000Z"),
            ],
            start=2,
            last=True,
            total=4,
        ),
    )
    window = tracker.sprints(DEST, SprintQuery(), today=TODAY)
    assert window == SprintWindow(
        current=Sprint(id="31", name="Sprint 24", start_date=date(2024, 6, 10), due_date=date(2024, 6, 23)),
        next=Sprint(id="32", name="Sprint 25", start_date=None, due_date=None),
    )
    assert [query(c)["startAt"] for c in api.calls] == [["0"], ["2"]]
    assert all(query(c)["state"] == ["active,future"] for c in api.calls)


def test_sprints_title_pattern_filters_names(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """Only sprints whose name matches title_pattern (re.search) are considered."""
    api.get(
        f"{AGILE}/board/7/sprint",
        json=sprint_page(
            [
                sprint(40, "Team B Sprint 9", "active", "2024-06-10T08:00:00.000Z", "2024-06-23T17:00:00.000Z"),
                sprint(41, "Team A Sprint 5", "active", "2024-06-03T08:00:00.000Z", "2024-06-16T17:00:00.000Z"),
                sprint(42, "Team B Sprint 10", "future"),
                sprint(43, "Team A Sprint 6", "future"),
            ],
            start=0,
            last=True,
            total=4,
        ),
    )
    window = tracker.sprints(DEST, SprintQuery(title_pattern=r"Team A"), today=TODAY)
    assert window.current is not None
    assert window.current.id == "41"
    assert window.next is not None
    assert window.next.id == "43"


def test_sprints_several_active_none_containing_today_takes_first(
    tracker: JiraTracker, api: responses.RequestsMock
) -> None:
    """With several active sprints and none spanning today, the first active one is current."""
    api.get(
        f"{AGILE}/board/7/sprint",
        json=sprint_page(
            [
                sprint(50, "Old", "active", "2024-05-01T08:00:00.000Z", "2024-05-14T08:00:00.000Z"),
                sprint(51, "Older", "active", "2024-04-01T08:00:00.000Z", "2024-04-14T08:00:00.000Z"),
            ],
            start=0,
            last=True,
            total=2,
        ),
    )
    window = tracker.sprints(DEST, SprintQuery(), today=TODAY)
    assert window.current is not None
    assert window.current.id == "50"
    assert window.next is None


def test_sprints_without_board_makes_no_request(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """A destination without a board has no sprints, and Jira is not asked."""
    window = tracker.sprints(Destination(tracker="jira", project="SUP"), SprintQuery(), today=TODAY)
    assert window == SprintWindow(current=None, next=None)
    assert len(api.calls) == 0


def test_sprints_board_403_is_permanent(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """A 403 from the agile API (no Jira Software access) is permanent."""
    api.get(
        f"{AGILE}/board/7/sprint",
        status=403,
        json={"errorMessages": ["The user does not have permission to view this board."]},
    )
    with pytest.raises(PermanentError, match=r"board 7.*HTTP 403"):
        tracker.sprints(DEST, SprintQuery(), today=TODAY)


# -- sprint_load ------------------------------------------------------------------------------


def test_sprint_load_counts_issues_across_token_pages(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """Counting pages through /search/jql (fields=id, 100 a page) by nextPageToken until isLast."""
    api.get(SEARCH, json=jql_page(ids(100), token="CAEaAggD"))
    api.get(SEARCH, json=jql_page(ids(100, first=101), token="CAEaAggE"))
    api.get(SEARCH, json=jql_page(ids(7, first=201)))
    load = tracker.sprint_load(DEST, Sprint(id="31", name="Sprint 24"), label="hotfix", unit="issues")
    assert load == 207.0
    assert all(path(c) == "/rest/api/2/search/jql" for c in api.calls)
    first = {
        "jql": ['sprint = 31 AND labels = "hotfix" AND statusCategory != Done'],
        "fields": ["id"],
        "maxResults": ["100"],
    }
    assert [query(c) for c in api.calls] == [
        first,
        {**first, "nextPageToken": ["CAEaAggD"]},
        {**first, "nextPageToken": ["CAEaAggE"]},
    ]


def test_sprint_load_count_is_bounded_to_50_pages(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """A search that never reaches isLast stops after 50 requests, returning the issues seen so far."""
    api.get(SEARCH, json=jql_page(ids(100), token="CAEaAggD"))
    load = tracker.sprint_load(DEST, Sprint(id="31", name="Sprint 24"), label="hotfix", unit="issues")
    assert load == 5000.0
    assert len(api.calls) == 50


def test_sprint_load_count_without_story_points_field(api: responses.RequestsMock) -> None:
    """Without a story points field, weight is the issue count, read from /search/jql pages."""
    api.get(SEARCH, json=jql_page(ids(3)))
    tracker = JiraTracker(url=URL, user=USER, api_token=TOKEN)
    load = tracker.sprint_load(DEST, Sprint(id="31", name="Sprint 24"), label="bugfix", unit="weight")
    assert load == 3.0
    assert query(api.calls[0])["fields"] == ["id"]


def test_sprint_load_sums_story_points_across_token_pages(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """Weight sums the story-points field over every /search/jql page; an issue without points counts 1."""
    api.get(SEARCH, json=jql_page([("SUP-1", {POINTS: 3.0}), ("SUP-2", {POINTS: None})], token="CAEaAggD"))
    api.get(SEARCH, json=jql_page([("SUP-3", {POINTS: 5})]))
    load = tracker.sprint_load(DEST, Sprint(id="31", name="Sprint 24"), label="bugfix", unit="weight")
    assert load == 9.0
    assert all(path(c) == "/rest/api/2/search/jql" for c in api.calls)
    first = {
        "jql": ['sprint = 31 AND labels = "bugfix" AND statusCategory != Done'],
        "fields": [POINTS],
        "maxResults": ["100"],
    }
    assert [query(c) for c in api.calls] == [first, {**first, "nextPageToken": ["CAEaAggD"]}]


def test_sprint_load_weight_on_classic_search_pages_by_start_at(
    tracker: JiraTracker, api: responses.RequestsMock
) -> None:
    """After a 404 on /search/jql, weight pages through the classic /search by startAt until total."""
    api.get(SEARCH, status=404, json=DC_NOT_FOUND)
    api.get(
        LEGACY_SEARCH,
        json=search_result([("SUP-1", {POINTS: 3.0}), ("SUP-2", {POINTS: None})], total=3),
    )
    api.get(LEGACY_SEARCH, json=search_result([("SUP-3", {POINTS: 5})], total=3, start=2))
    load = tracker.sprint_load(DEST, Sprint(id="31", name="Sprint 24"), label="bugfix", unit="weight")
    assert load == 9.0
    assert [path(c) for c in api.calls] == [
        "/rest/api/2/search/jql",
        "/rest/api/2/search",
        "/rest/api/2/search",
    ]
    assert [query(c).get("startAt") for c in api.calls] == [None, ["0"], ["2"]]
    assert query(api.calls[1])["fields"] == [POINTS]
    assert query(api.calls[1])["jql"] == ['sprint = 31 AND labels = "bugfix" AND statusCategory != Done']


def test_sprint_load_bad_jql_is_permanent_without_fallback(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """A 400 from /search/jql (e.g. no Jira Software sprint field) is permanent and does not try /search."""
    api.get(
        SEARCH,
        status=400,
        json={"errorMessages": ["Field 'sprint' does not exist or you do not have permission to view it."]},
    )
    with pytest.raises(PermanentError, match=r"sprint load of sprint 31: HTTP 400: Field 'sprint'"):
        tracker.sprint_load(DEST, Sprint(id="31", name="Sprint 24"), label="hotfix", unit="issues")
    assert [path(c) for c in api.calls] == ["/rest/api/2/search/jql"]


# -- reopen -----------------------------------------------------------------------------------


def test_reopen_is_noop_when_issue_is_open(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """An issue outside the done category is left alone: one GET, no transition."""
    api.get(f"{API}/issue/SUP-24", json=issue_status("indeterminate"))
    tracker.reopen(DEST, IssueRef(key="SUP-24"))
    assert len(api.calls) == 1
    assert query(api.calls[0])["fields"] == ["status"]


def test_reopen_picks_preferred_transition(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """The first configured name (case-insensitive) among transitions leaving 'done' is POSTed."""
    api.get(f"{API}/issue/SUP-24", json=issue_status("done"))
    api.get(
        f"{API}/issue/SUP-24/transitions",
        json={
            "expand": "transitions",
            "transitions": [
                transition("2", "Reopen", "done"),  # name matches but stays in done: skipped
                transition("3", "Start Progress", "indeterminate"),
                transition("4", "To Do", "new"),
                transition("5", "REOPEN ISSUE", "new"),
            ],
        },
    )
    api.post(f"{API}/issue/SUP-24/transitions", status=204)
    tracker.reopen(DEST, IssueRef(key="SUP-24"))
    assert body(api.calls[2]) == {"transition": {"id": "5"}}


def test_reopen_falls_back_to_any_transition_out_of_done(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """Without a preferred name, the first transition leading out of done is used."""
    api.get(f"{API}/issue/SUP-24", json=issue_status("done"))
    api.get(
        f"{API}/issue/SUP-24/transitions",
        json={
            "transitions": [
                transition("7", "Close", "done"),
                transition("8", "Back to work", "indeterminate"),
            ]
        },
    )
    api.post(f"{API}/issue/SUP-24/transitions", status=204)
    tracker.reopen(DEST, IssueRef(key="SUP-24"))
    assert body(api.calls[2]) == {"transition": {"id": "8"}}


def test_reopen_without_suitable_transition_is_permanent(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """When every transition stays in done, reopen fails permanently and names the available ones."""
    api.get(f"{API}/issue/SUP-24", json=issue_status("done"))
    api.get(
        f"{API}/issue/SUP-24/transitions",
        json={"transitions": [transition("7", "Close", "done"), transition("9", "Archive", "done")]},
    )
    with pytest.raises(PermanentError, match="'Close', 'Archive'"):
        tracker.reopen(DEST, IssueRef(key="SUP-24"))
    assert len(api.calls) == 2


def test_reopen_unexpected_payload_is_permanent(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """A response missing the documented fields becomes PermanentError, not KeyError."""
    api.get(f"{API}/issue/SUP-24", json={"id": "10000", "key": "SUP-24", "fields": {}})
    with pytest.raises(PermanentError, match="unexpected response"):
        tracker.reopen(DEST, IssueRef(key="SUP-24"))


# -- check ------------------------------------------------------------------------------------


def _project(issue_types: tuple[str, ...] = ("Bug", "Task")) -> dict[str, Any]:
    return {
        "id": "10000",
        "key": "SUP",
        "name": "Support",
        "issueTypes": [{"id": str(i), "name": n, "subtask": False} for i, n in enumerate(issue_types)],
    }


def _board() -> dict[str, Any]:
    return {"id": 7, "name": "SUP board", "type": "scrum", "location": {"projectKey": "SUP"}}


def _myself() -> dict[str, Any]:
    return {"accountId": "712020:1f4c", "displayName": "Bridge Bot", "active": True}


def test_check_all_fine(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """With valid credentials, project, board and an active sprint, check reports nothing."""
    api.get(f"{API}/myself", json=_myself())
    api.get(f"{API}/project/SUP", json=_project())
    api.get(f"{AGILE}/board/7", json=_board())
    api.get(
        f"{AGILE}/board/7/sprint",
        json=sprint_page([sprint(31, "Sprint 24", "active")], start=0, last=True, total=1),
    )
    assert tracker.check(DEST, SprintQuery(), today=TODAY) == []


def test_check_bad_credentials_stops_early(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """Rejected credentials are the one problem reported; nothing else is probed."""
    api.get(f"{API}/myself", status=401, body="")
    problems = tracker.check(DEST, SprintQuery(), today=TODAY)
    assert len(problems) == 1
    assert "HTTP 401" in problems[0]
    assert TOKEN not in problems[0]
    assert len(api.calls) == 1


def test_check_reports_missing_project_and_board(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """A missing project and an invisible board each become a problem string."""
    api.get(f"{API}/myself", json=_myself())
    api.get(
        f"{API}/project/SUP",
        status=404,
        json={"errorMessages": ["No project could be found with key 'SUP'."]},
    )
    api.get(
        f"{AGILE}/board/7",
        status=404,
        json={"errorMessages": ["Board does not exist or you do not have permission to see it."]},
    )
    problems = tracker.check(DEST, SprintQuery(), today=TODAY)
    assert len(problems) == 2
    assert "No project could be found with key 'SUP'" in problems[0]
    assert "board 7" in problems[1]
    assert "HTTP 404" in problems[1]


def test_check_reports_no_active_sprint_and_unknown_issue_type(
    tracker: JiraTracker, api: responses.RequestsMock
) -> None:
    """A board without a matching active sprint and an issue type the project lacks are problems."""
    api.get(f"{API}/myself", json=_myself())
    api.get(f"{API}/project/SUP", json=_project(("Task", "Story")))
    api.get(f"{AGILE}/board/7", json=_board())
    api.get(
        f"{AGILE}/board/7/sprint",
        json=sprint_page(
            [sprint(31, "Team B 24", "active"), sprint(32, "Team A 25", "future")],
            start=0,
            last=True,
            total=2,
        ),
    )
    problems = tracker.check(DEST, SprintQuery(title_pattern="^Team A"), today=TODAY)
    assert problems == [
        "jira project SUP: issue type 'Bug' not available (has: Task, Story)",
        "jira board 7: no active sprint matching '^Team A'",
    ]


def test_check_turns_outage_into_problem(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """Connection failures become problem strings, never exceptions."""
    api.get(f"{API}/myself", body=requests.exceptions.ConnectionError("Name or service not known"))
    problems = tracker.check(DEST, SprintQuery(), today=TODAY)
    assert len(problems) == 1
    assert "ConnectionError" in problems[0]


# -- description ------------------------------------------------------------------------------

HOSTILE = "{noformat}\n[~accountid:557058:e361] *fed* {color:red}rød{color} [klik|https://evil.example]"


def test_description_contains_every_section() -> None:
    """The description has report text, details, environment, attachments, classification, sprint, tid."""
    text = render_description(new_issue())
    for expected in (
        "Login fejler med 500 siden i morges.",
        "Hele kundeservice står stille",
        "||Declared priority|{noformat}Kritisk{noformat}|",
        "||Product|{noformat}Portal{noformat}|",
        "||Organisation|{noformat}Ærø Kommune{noformat}|",
        "||Reporter|{noformat}Søren Ærø{noformat}|",
        "||Key||Value||",
        "|{noformat}browser{noformat}|{noformat}Firefox 126{noformat}|",
        "|{noformat}fejl.png{noformat}|{noformat}image/png{noformat}|[open|https://files.example/a/1]|",
        "* Severity: high",
        "* Kind: hotfix",
        "* Product-owner review: yes",
        "* Rules: login\\_down, many\\_users",
        "Sprint 24 (2024-06-10 to 2024-06-23)",
        "Source channel: email",
    ):
        assert expected in text
    assert "Reporter email" not in text
    assert text.splitlines()[-1] == "Tracking ID: BR-1"


def test_description_without_sprint_says_needs_planning() -> None:
    """Without a sprint the description says the issue needs planning, and PO review 'no' is shown."""
    cls = Classification(severity=Severity.LOW, kind=Kind.BUGFIX, po_review=False, rules=())
    text = render_description(new_issue(sprint=None, classification=cls))
    assert "Needs planning" in text
    assert "* Product-owner review: no" in text
    assert "* Rules: none" in text


def test_description_neutralises_reporter_markup() -> None:
    """Reporter text cannot close the {noformat} block or inject mentions, macros or links anywhere."""
    report = Report(
        title="t",
        description=HOSTILE + "\n{no{noformat}format}\n{NOFORMAT:title=x}",
        impact=HOSTILE,
        declared_priority=HOSTILE,
        product=HOSTILE,
        organization=HOSTILE,
        environment={HOSTILE: HOSTILE, "nested": {"a": HOSTILE}},
        attachments=(Attachment(filename=HOSTILE, content_type=HOSTILE, url="https://x.example/a|b]c d"),),
    )
    text = render_description(new_issue(report=report, reporter_name=HOSTILE, reporter_email=HOSTILE))
    rendered = outside_noformat(text)
    for marker in ("~accountid", "{color", "evil.example", "*fed*", "rød", "NOFORMAT"):
        assert marker not in rendered
    assert text.count("{noformat}") % 2 == 0
    assert re.search(r"\{noformat:", text, re.IGNORECASE) is None
    assert "[open|https://x.example/a%7Cb%5Dc%20d]" in text


def test_description_table_cells_stay_on_one_row() -> None:
    """Multi-line or pipe-containing environment values cannot break the table row."""
    report = Report(title="t", description="d", environment={"ua": "Mozilla/5.0\n|| injected ||"})
    text = render_description(new_issue(report=report))
    row = next(line for line in text.splitlines() if line.startswith("|{noformat}ua"))
    assert row == "|{noformat}ua{noformat}|{noformat}Mozilla/5.0 ¦¦ injected ¦¦{noformat}|"


def test_description_drops_non_http_attachment_links() -> None:
    """Attachment URLs other than http(s) are not linked."""
    report = Report(
        title="t",
        description="d",
        attachments=(Attachment(filename="x.html", url="javascript:alert(1)"), Attachment(filename="y.txt")),
    )
    text = render_description(new_issue(report=report))
    assert "javascript" not in text
    assert text.count("(no link)") == 2


# -- issue_state --------------------------------------------------------------------------------

SPRINT_FIELD = "customfield_10020"
SNAPSHOT_FIELDS = f"summary,status,resolution,priority,labels,components,updated,{SPRINT_FIELD}"


def cloud_sprint(id: int, name: str, state: str) -> dict[str, Any]:
    """A Sprint custom field entry as Jira Cloud returns it in issue fields."""
    return {"id": id, "name": name, "state": state, "boardId": 7, "goal": "", "startDate": "2024-06-10T08:00:00.000Z"}


def legacy_sprint(id: int, name: str, state: str) -> str:
    """A Sprint custom field entry as older Jira Server / Data Center returns it (Java toString)."""
    return (
        f"com.atlassian.greenhopper.service.sprint.Sprint@1a2b{id}[id={id},rapidViewId=7,state={state},"
        f"name={name},startDate=2024-06-10T08:00:00.000+02:00,endDate=2024-06-23T17:00:00.000+02:00,"
        f"completeDate=<null>,sequence={id},goal=]"
    )


def issue_fields(**overrides: Any) -> dict[str, Any]:
    """``GET /issue/<key>`` as Jira answers for the snapshot's fields (documented shapes)."""
    fields: dict[str, Any] = {
        "summary": "[BR-1] Kan ikke logge ind",
        "status": {
            "self": f"{API}/status/10001",
            "id": "10001",
            "name": "Done",
            "statusCategory": {"id": 3, "key": "done", "colorName": "green", "name": "Done"},
        },
        "resolution": {"id": "10000", "name": "Won't Do", "self": f"{API}/resolution/10000"},
        "priority": {"id": "2", "name": "High", "self": f"{API}/priority/2"},
        "labels": ["support", "chat-intake"],
        "components": [{"self": f"{API}/component/10000", "id": "10000", "name": "widget", "description": "Chat"}],
        "updated": "2017-11-16T18:28:14.672+0800",
        SPRINT_FIELD: [cloud_sprint(30, "Sprint 23", "closed"), cloud_sprint(31, "Sprint 24", "active")],
    }
    fields.update(overrides)
    return {"expand": "", "id": "10000", "self": f"{API}/issue/10000", "key": "SUP-24", "fields": fields}


def test_issue_state_reads_status_resolution_priority_labels_and_sprint(
    tracker: JiraTracker, api: responses.RequestsMock
) -> None:
    """issue_state GETs the snapshot's fields; maps status, resolution, priority, sprint, components, updated."""
    api.get(f"{API}/issue/SUP-24", json=issue_fields())
    snapshot = tracker.issue_state(DEST, IssueRef(key="SUP-24"))
    assert snapshot == IssueSnapshot(
        key="SUP-24",
        title="[BR-1] Kan ikke logge ind",
        open=False,
        labels=("support", "chat-intake"),
        status_id="10001",
        status_name="Done",
        status_category="done",
        resolution="Won't Do",
        priority="High",
        sprint_id="31",
        updated_at=datetime(2017, 11, 16, 10, 28, 14, 672000, tzinfo=UTC),
        components=("widget",),
    )
    assert len(api.calls) == 1
    assert path(api.calls[0]) == "/rest/api/2/issue/SUP-24"
    assert query(api.calls[0]) == {"fields": [SNAPSHOT_FIELDS]}


def test_issue_state_open_issue_with_null_fields(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """An unresolved issue outside 'done' is open; null resolution, priority and sprint field map to None."""
    status = {"id": "3", "name": "I gang", "statusCategory": {"id": 4, "key": "indeterminate"}}
    api.get(
        f"{API}/issue/SUP-24",
        json=issue_fields(status=status, resolution=None, priority=None, labels=[], **{SPRINT_FIELD: None}),
    )
    snapshot = tracker.issue_state(DEST, IssueRef(key="SUP-24"))
    assert snapshot.open is True
    assert (snapshot.status_id, snapshot.status_name, snapshot.status_category) == ("3", "I gang", "indeterminate")
    assert (snapshot.resolution, snapshot.priority, snapshot.sprint_id, snapshot.labels) == (None, None, None, ())


@pytest.mark.parametrize(
    ("sprints", "expected"),
    [
        ([cloud_sprint(30, "Sprint 23", "closed"), cloud_sprint(31, "Sprint 24", "active")], "31"),
        ([cloud_sprint(31, "Sprint 24", "active"), cloud_sprint(30, "Sprint 23", "closed")], "31"),
        ([cloud_sprint(30, "Sprint 23", "closed"), cloud_sprint(32, "Sprint 25", "future")], "32"),
        ([cloud_sprint(32, "Sprint 25", "future"), cloud_sprint(31, "Sprint 24", "active")], "31"),
        ([cloud_sprint(29, "Sprint 22", "closed"), cloud_sprint(30, "Sprint 23", "closed")], None),
        ([], None),
    ],
    ids=["closed-then-active", "active-then-closed", "future", "active-beats-future", "only-closed", "empty"],
)
def test_issue_state_sprint_objects_pick_the_open_sprint(
    tracker: JiraTracker, api: responses.RequestsMock, sprints: list[dict[str, Any]], expected: str | None
) -> None:
    """From the Sprint field's object list, the active sprint wins, then a future one; closed ones never."""
    api.get(f"{API}/issue/SUP-24", json=issue_fields(**{SPRINT_FIELD: sprints}))
    assert tracker.issue_state(DEST, IssueRef(key="SUP-24")).sprint_id == expected


@pytest.mark.parametrize(
    ("sprints", "expected"),
    [
        ([legacy_sprint(5, "Sprint 5, cold", "CLOSED"), legacy_sprint(6, "Sprint 6", "ACTIVE")], "6"),
        ([legacy_sprint(5, "Sprint 5", "CLOSED"), legacy_sprint(7, "Sprint 7 [id=9,state=ACTIVE]", "FUTURE")], "7"),
        ([legacy_sprint(5, "Sprint 5", "CLOSED")], None),
    ],
    ids=["closed-then-active", "future-with-odd-name", "only-closed"],
)
def test_issue_state_legacy_sprint_strings(
    tracker: JiraTracker, api: responses.RequestsMock, sprints: list[str], expected: str | None
) -> None:
    """Older servers' 'Sprint@..[id=..,rapidViewId=..,state=..]' strings are parsed (rapidViewId is not the id)."""
    api.get(f"{API}/issue/SUP-24", json=issue_fields(**{SPRINT_FIELD: sprints}))
    assert tracker.issue_state(DEST, IssueRef(key="SUP-24")).sprint_id == expected


def test_issue_state_uses_configured_sprint_field(api: responses.RequestsMock) -> None:
    """sprint_field names the custom field requested and read (Data Center ids differ from Cloud's)."""
    api.get(
        f"{API}/issue/SUP-24",
        json=issue_fields(customfield_10104=[cloud_sprint(44, "Sprint 44", "active")], **{SPRINT_FIELD: None}),
    )
    tracker = JiraTracker(url=URL, user=USER, api_token=TOKEN, sprint_field="customfield_10104")
    assert tracker.issue_state(DEST, IssueRef(key="SUP-24")).sprint_id == "44"
    assert query(api.calls[0])["fields"] == [
        "summary,status,resolution,priority,labels,components,updated,customfield_10104"
    ]


def test_issue_state_reports_the_key_jira_answers_with(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """After a move, the old key still resolves: the snapshot carries the issue's new key."""
    moved = {**issue_fields(), "key": "OPS-3"}
    api.get(f"{API}/issue/SUP-24", json=moved)
    assert tracker.issue_state(DEST, IssueRef(key="SUP-24")).key == "OPS-3"


def test_issue_state_missing_issue_is_permanent(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """A 404 (deleted, or no permission) raises NotFoundError (a PermanentError) with Jira's message."""
    api.get(
        f"{API}/issue/SUP-99",
        status=404,
        json={"errorMessages": ["Issue does not exist or you do not have permission to see it."], "errors": {}},
    )
    with pytest.raises(NotFoundError, match="HTTP 404: Issue does not exist"):
        tracker.issue_state(DEST, IssueRef(key="SUP-99"))


def test_issue_state_429_is_retryable_once(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """A 429 raises RetryableError with Retry-After, after exactly one request."""
    api.get(f"{API}/issue/SUP-24", status=429, headers={"Retry-After": "8"}, json={"errorMessages": ["Rate limited"]})
    with pytest.raises(RetryableError) as info:
        tracker.issue_state(DEST, IssueRef(key="SUP-24"))
    assert info.value.retry_after == 8.0
    assert len(api.calls) == 1


def test_issue_state_unexpected_payload_is_permanent(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """A 200 without the status field becomes PermanentError, not KeyError."""
    api.get(f"{API}/issue/SUP-24", json={"id": "10000", "key": "SUP-24", "fields": {"summary": "x"}})
    with pytest.raises(PermanentError, match="unexpected response"):
        tracker.issue_state(DEST, IssueRef(key="SUP-24"))


# -- update_labels ------------------------------------------------------------------------------


def test_update_labels_puts_add_and_remove_operations(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """One PUT /issue/<key> with update.labels add/remove operations, labels cleaned as on create."""
    api.put(f"{API}/issue/SUP-24", status=204)
    tracker.update_labels(
        DEST, IssueRef(key="SUP-24"), add=["in qa", "kunde venter", "in-qa"], remove=["in progress", "x", "x"]
    )
    assert len(api.calls) == 1
    assert api.calls[0].request.method == "PUT"
    assert path(api.calls[0]) == "/rest/api/2/issue/SUP-24"
    assert body(api.calls[0]) == {
        "update": {"labels": [{"add": "in-qa"}, {"add": "kunde-venter"}, {"remove": "in-progress"}, {"remove": "x"}]}
    }


def test_update_labels_label_in_both_lists_is_removed(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """A label asked both added and removed is only removed (as GitLab does)."""
    api.put(f"{API}/issue/SUP-24", status=204)
    tracker.update_labels(DEST, IssueRef(key="SUP-24"), add=["a", "b"], remove=["b"])
    assert body(api.calls[0]) == {"update": {"labels": [{"add": "a"}, {"remove": "b"}]}}


def test_update_labels_noop_makes_no_request(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """Nothing to add or remove (blank labels included) makes no request."""
    tracker.update_labels(DEST, IssueRef(key="SUP-24"), add=[], remove=[])
    tracker.update_labels(DEST, IssueRef(key="SUP-24"), add=["  "], remove=[""])
    assert len(api.calls) == 0


def test_update_labels_missing_issue_is_permanent(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """A 404 on the PUT raises PermanentError."""
    api.put(f"{API}/issue/SUP-99", status=404, json={"errorMessages": ["Issue does not exist"], "errors": {}})
    with pytest.raises(PermanentError, match="HTTP 404"):
        tracker.update_labels(DEST, IssueRef(key="SUP-99"), add=["a"], remove=[])


def test_update_labels_429_is_retryable_once(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """A 429 on the PUT raises RetryableError with Retry-After; the library does not re-send it."""
    api.put(f"{API}/issue/SUP-24", status=429, headers={"Retry-After": "4"}, json={"errorMessages": ["Slow down"]})
    with pytest.raises(RetryableError) as info:
        tracker.update_labels(DEST, IssueRef(key="SUP-24"), add=["a"], remove=["b"])
    assert info.value.retry_after == 4.0
    assert len(api.calls) == 1


# -- account ------------------------------------------------------------------------------------

CLOUD_MYSELF = {
    "self": f"{API}/user?accountId=712020:1f4c",
    "accountId": "712020:1f4c",
    "accountType": "atlassian",
    "emailAddress": USER,
    "displayName": "Bridge Bot",
    "active": True,
    "timeZone": "UTC",
    "locale": "en_US",
}


def test_account_reads_myself_once(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """account() GETs /myself once (Cloud: accountId, email as username); the second call makes no request."""
    api.get(f"{API}/myself", json=CLOUD_MYSELF)
    assert tracker.account() == Account(id="712020:1f4c", username=USER)
    assert tracker.account() == Account(id="712020:1f4c", username=USER)
    assert [path(c) for c in api.calls] == ["/rest/api/2/myself"]


def test_account_data_center_uses_user_key(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """Data Center's /myself has no accountId: the user key is the id and the name the username."""
    api.get(
        f"{API}/myself",
        json={
            "self": f"{API}/user?username=bridge",
            "key": "JIRAUSER10100",
            "name": "bridge",
            "emailAddress": "bridge@acme.dk",
            "displayName": "Bridge",
            "active": True,
            "timeZone": "Europe/Copenhagen",
        },
    )
    assert tracker.account() == Account(id="JIRAUSER10100", username="bridge")


def test_account_429_is_retryable_once_and_not_cached(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """A 429 on /myself is RetryableError after one request; the next call asks again."""
    api.get(f"{API}/myself", status=429, headers={"Retry-After": "6"}, json={"errorMessages": ["Rate limited"]})
    api.get(f"{API}/myself", json=CLOUD_MYSELF)
    with pytest.raises(RetryableError) as info:
        tracker.account()
    assert info.value.retry_after == 6.0
    assert len(api.calls) == 1
    assert tracker.account().id == "712020:1f4c"
    assert len(api.calls) == 2


def test_account_bad_credentials_are_permanent(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """A 401 on /myself raises PermanentError without the token."""
    api.get(f"{API}/myself", status=401, body="")
    with pytest.raises(PermanentError, match="HTTP 401") as info:
        tracker.account()
    assert TOKEN not in str(info.value)


# -- changed_since ------------------------------------------------------------------------------

SINCE = datetime(2024, 6, 12, 8, 0, 30, 500000, tzinfo=UTC)


def changed_jql(stamp: str) -> str:
    return f'project = "SUP" AND updated >= "{stamp}" ORDER BY updated ASC'


def test_changed_since_sends_minute_jql_and_follows_pages(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """JQL 'updated >= <since - 1 min, yyyy-MM-dd HH:mm>' on /search/jql, summary and updated, every token page."""
    api.get(f"{API}/myself", json=CLOUD_MYSELF)
    api.get(SEARCH, json=jql_page([("SUP-3", {"summary": "[BR-3] a"}), ("SUP-1", {"summary": "[BR-1] b"})], token="T2"))
    api.get(SEARCH, json=jql_page([("SUP-2", {"summary": "[BR-2] c"})]))
    changed = tracker.changed_since(DEST, SINCE)
    assert changed == [
        (IssueRef(key="SUP-3", url=f"{URL}/browse/SUP-3"), "[BR-3] a"),
        (IssueRef(key="SUP-1", url=f"{URL}/browse/SUP-1"), "[BR-1] b"),
        (IssueRef(key="SUP-2", url=f"{URL}/browse/SUP-2"), "[BR-2] c"),
    ]
    assert changed.cut_at is None  # complete
    first = {"jql": [changed_jql("2024-06-12 07:59")], "fields": ["summary,updated"], "maxResults": ["100"]}
    assert [path(c) for c in api.calls] == ["/rest/api/2/myself", "/rest/api/2/search/jql", "/rest/api/2/search/jql"]
    assert [query(c) for c in api.calls[1:]] == [first, {**first, "nextPageToken": ["T2"]}]


@pytest.mark.parametrize(
    ("time_zone", "stamp"),
    [
        ("Europe/Copenhagen", "2024-06-12 09:59"),  # UTC+2 in summer
        ("America/New_York", "2024-06-12 03:59"),  # UTC-4: plain UTC would skip four hours
        (None, "2024-06-12 07:59"),  # no timeZone: UTC
        ("Mars/Olympus_Mons", "2024-06-12 07:59"),  # unknown zone: UTC
    ],
)
def test_changed_since_writes_the_date_in_the_users_time_zone(
    tracker: JiraTracker, api: responses.RequestsMock, time_zone: str | None, stamp: str
) -> None:
    """JQL dates are read in the Jira user's time zone, so since is converted to /myself's timeZone."""
    myself = {**CLOUD_MYSELF, "timeZone": time_zone} if time_zone else {"accountId": "712020:1f4c"}
    api.get(f"{API}/myself", json=myself)
    api.get(SEARCH, json=jql_page([]))
    since = SINCE.astimezone(timezone(timedelta(hours=5)))  # the caller's offset does not matter
    assert tracker.changed_since(DEST, since) == []
    assert query(api.calls[1])["jql"] == [changed_jql(stamp)]


def test_changed_since_reuses_the_cached_account(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """After account(), changed_since asks /myself no more; a naive since is taken as UTC."""
    api.get(f"{API}/myself", json=CLOUD_MYSELF)
    api.get(SEARCH, json=jql_page([]))
    tracker.account()
    tracker.changed_since(DEST, datetime(2024, 6, 12, 8, 0))
    assert [path(c) for c in api.calls] == ["/rest/api/2/myself", "/rest/api/2/search/jql"]
    assert query(api.calls[1])["jql"] == [changed_jql("2024-06-12 07:59")]


def test_changed_since_is_bounded_to_20_pages(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """A search that never reaches isLast stops after 20 pages of 100, returning what was read and the
    last ``updated`` read (``cut_at``), where the caller reads on."""
    api.get(f"{API}/myself", json=CLOUD_MYSELF)
    fields = {"summary": "s", "updated": "2024-06-12T10:15:30.000+0200"}
    api.get(SEARCH, json=jql_page([(key, fields) for key, _ in ids(100)], token="CAEaAggD"))
    changed = tracker.changed_since(DEST, SINCE)
    assert len(changed) == 2000
    assert changed.cut_at == datetime(2024, 6, 12, 8, 15, 30, tzinfo=UTC)
    assert [path(c) for c in api.calls].count("/rest/api/2/search/jql") == 20


def test_changed_since_falls_back_to_classic_search(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """On Data Center (404 on /search/jql) the same JQL pages through the classic /search by startAt."""
    api.get(f"{API}/myself", json=CLOUD_MYSELF)
    api.get(SEARCH, status=404, json=DC_NOT_FOUND)
    api.get(LEGACY_SEARCH, json=search_result([("SUP-1", {"summary": "a"}), ("SUP-2", {"summary": "b"})], total=3))
    api.get(LEGACY_SEARCH, json=search_result([("SUP-3", {"summary": "c"})], total=3, start=2))
    changed = tracker.changed_since(DEST, SINCE)
    assert [ref.key for ref, _ in changed] == ["SUP-1", "SUP-2", "SUP-3"]
    assert [query(c).get("startAt") for c in api.calls[2:]] == [["0"], ["2"]]
    assert all(query(c)["jql"] == [changed_jql("2024-06-12 07:59")] for c in api.calls[1:])


def test_changed_since_429_is_retryable_once(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """A 429 on the search raises RetryableError with Retry-After: one search request, no fallback."""
    api.get(f"{API}/myself", json=CLOUD_MYSELF)
    api.get(SEARCH, status=429, headers={"Retry-After": "9"}, json={"errorMessages": ["Rate limited"]})
    with pytest.raises(RetryableError) as info:
        tracker.changed_since(DEST, SINCE)
    assert info.value.retry_after == 9.0
    assert [path(c) for c in api.calls] == ["/rest/api/2/myself", "/rest/api/2/search/jql"]


def test_changed_since_unknown_project_is_permanent(tracker: JiraTracker, api: responses.RequestsMock) -> None:
    """A 400 for an unknown project in the JQL raises PermanentError."""
    api.get(f"{API}/myself", json=CLOUD_MYSELF)
    api.get(
        SEARCH,
        status=400,
        json={"errorMessages": ["The value 'SUP' does not exist for the field 'project'."], "errors": {}},
    )
    with pytest.raises(PermanentError, match="HTTP 400: The value 'SUP' does not exist"):
        tracker.changed_since(DEST, SINCE)


# -- attachments ------------------------------------------------------------------------------


def test_upload_attachment_posts_multipart_file_with_xsrf_header(
    tracker: JiraTracker, api: responses.RequestsMock
) -> None:
    """POST /issue/<key>/attachments: multipart field ``file`` and ``X-Atlassian-Token: no-check``."""
    import email.parser
    import email.policy

    api.post(f"{API}/issue/SUP-24/attachments", status=200, json=[{"id": "10001", "filename": "log æøå.txt"}])
    tracker.upload_attachment(
        DEST, IssueRef(key="SUP-24"), filename="log æøå.txt", content_type="text/plain", content=b"line 1\n"
    )
    request = api.calls[0].request
    assert request.headers["X-Atlassian-Token"] == "no-check"
    assert request.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    head = f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.body)
    (part,) = list(message.iter_parts())
    assert part.get_param("name", header="content-disposition") == "file"
    assert (part.get_filename(), part.get_content_type(), part.get_payload(decode=True)) == (
        "log æøå.txt",
        "text/plain",
        b"line 1\n",
    )


def test_upload_attachment_errors_are_typed_without_the_token(
    tracker: JiraTracker, api: responses.RequestsMock
) -> None:
    """A 413 (over Jira's attachment limit) is permanent, a 503 retryable; neither shows the token."""
    url = f"{API}/issue/SUP-24/attachments"
    api.post(url, status=413, json={"errorMessages": ["The file is too large"]})
    api.post(url, status=503, json={"errorMessages": ["busy"]})
    with pytest.raises(PermanentError, match="too large") as permanent:
        tracker.upload_attachment(DEST, IssueRef(key="SUP-24"), filename="a.bin", content_type="", content=b"x")
    with pytest.raises(RetryableError) as retryable:
        tracker.upload_attachment(DEST, IssueRef(key="SUP-24"), filename="a.bin", content_type="", content=b"x")
    assert len(api.calls) == 2  # the library retried nothing
    assert TOKEN not in str(permanent.value) + str(retryable.value)
