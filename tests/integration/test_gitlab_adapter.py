"""GitLabTracker against GitLab's REST API v4, mocked at the HTTP boundary with ``responses``.

Payload shapes follow GitLab's documentation (wire-formats.md section 2).
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from bridge.adapters.trackers.base import SprintQuery, Tracker
from bridge.adapters.trackers.gitlab import (
    GITLAB_MAX_DESCRIPTION,
    ZWJ,
    GitLabTracker,
    render_description,
)
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

BASE = "https://gitlab.example.com"
API = f"{BASE}/api/v4"
TOKEN = "glpat-SECRET-token-123"
PROJECT = f"{API}/projects/acme%2Fsupport"
ISSUES = f"{PROJECT}/issues"
MILESTONES = f"{PROJECT}/milestones"
DEST = Destination(tracker="gitlab", project="acme/support")
TID = "ST-7K3Q9X2M"
SPRINT = Sprint(id="12", name="Sprint 12", start_date=date(2026, 11, 23), due_date=date(2026, 12, 6))


# -- helpers ---------------------------------------------------------------------------------------


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def tracker() -> GitLabTracker:
    return GitLabTracker(url=BASE, token=TOKEN, timeout=5.0)


def new_issue(**overrides: Any) -> NewIssue:
    report_fields: dict[str, Any] = {
        "title": "Login fails with error 500",
        "description": "I click login and get an error.",
        "impact": "Nobody in the warehouse can work.",
        "declared_priority": "high",
        "product": "WMS",
        "organization": "Acme A/S",
        "environment": {"browser": "Firefox 140", "os": "Windows 11"},
        "attachments": (Attachment(filename="screen.png", content_type="image/png", url="https://files.example/a/1"),),
        "channel": Channel.EMAIL,
    }
    report_fields.update(overrides.pop("report", {}))
    fields: dict[str, Any] = {
        "tracking_id": TID,
        "report": Report(**report_fields),
        "classification": Classification(
            severity=Severity.HIGH, kind=Kind.HOTFIX, po_review=True, rules=("outage", "many-users")
        ),
        "labels": ("severity::high", "type::hotfix", "source::email"),
        "priority": None,
        "sprint": SPRINT,
        "reporter_name": "Jens Hansen",
    }
    fields.update(overrides)
    return NewIssue(**fields)


def issue_json(
    iid: int,
    title: str,
    *,
    state: str = "opened",
    milestone: dict[str, Any] | None = None,
    weight: int | None = None,
) -> dict[str, Any]:
    """An issue as GitLab's REST API returns it (trimmed, documented field names and types)."""
    return {
        "project_id": 4,
        "id": 80 + iid,
        "iid": iid,
        "title": title,
        "state": state,
        "description": None,
        "labels": ["bug"],
        "milestone": milestone,
        "assignees": [],
        "assignee": None,
        "author": {"id": 18, "username": "eileen.lowe"},
        "confidential": False,
        "weight": weight,
        "type": "ISSUE",
        "issue_type": "issue",
        "web_url": f"http://gitlab.example.com/acme/support/issues/{iid}",
        "references": {"short": f"#{iid}", "relative": f"#{iid}", "full": f"acme/support#{iid}"},
    }


def milestone_json(mid: int, title: str, start: str | None, due: str | None, **extra: Any) -> dict[str, Any]:
    """A milestone as ``GET /projects/:id/milestones`` returns it."""
    data: dict[str, Any] = {
        "id": mid,
        "iid": mid - 10,
        "project_id": 4,
        "title": title,
        "description": "",
        "due_date": due,
        "start_date": start,
        "state": "active",
        "updated_at": "2026-10-02T09:24:18Z",
        "created_at": "2026-10-02T09:24:18Z",
        "expired": False,
    }
    data.update(extra)
    return data


def query(call: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query)


def body(call: Any) -> dict[str, Any]:
    raw = call.request.body
    return dict(json.loads(raw.decode() if isinstance(raw, bytes) else raw))


# -- construction ----------------------------------------------------------------------------------


def test_construction_makes_no_request(rsps: responses.RequestsMock) -> None:
    """Building the tracker talks to nobody (no auth or version probe at start-up)."""
    tracker = GitLabTracker(url=BASE, token=TOKEN)
    assert tracker.name == "gitlab"
    assert len(rsps.calls) == 0


def test_satisfies_tracker_protocol(tracker: GitLabTracker) -> None:
    """GitLabTracker is usable where the pipeline expects a Tracker."""
    port: Tracker = tracker
    assert port.name == "gitlab"
    assert TOKEN not in repr(tracker)


def test_given_session_is_used(rsps: responses.RequestsMock) -> None:
    """Requests go through the session passed in (its headers reach GitLab) with the private token."""
    session = requests.Session()
    session.headers["X-Bridge-Test"] = "yes"
    rsps.post(ISSUES, json=issue_json(14, f"[{TID}] x"), status=201)
    GitLabTracker(url=BASE, token=TOKEN, session=session).create_issue(DEST, new_issue())
    sent = rsps.calls[0].request.headers
    assert sent["X-Bridge-Test"] == "yes"
    assert sent["PRIVATE-TOKEN"] == TOKEN


# -- create_issue ----------------------------------------------------------------------------------


def test_create_issue_posts_title_labels_milestone_and_description(
    rsps: responses.RequestsMock, tracker: GitLabTracker
) -> None:
    """create_issue POSTs the prefixed title, comma-joined labels, int milestone_id and the description."""
    rsps.post(ISSUES, json=issue_json(14, f"[{TID}] Login fails with error 500"), status=201)
    issue = new_issue()
    ref = tracker.create_issue(DEST, issue)
    assert ref == IssueRef(key="14", url="http://gitlab.example.com/acme/support/issues/14")
    assert len(rsps.calls) == 1
    sent = body(rsps.calls[0])
    assert sent["title"] == f"[{TID}] Login fails with error 500"
    assert sent["labels"] == "severity::high,type::hotfix,source::email"
    assert sent["milestone_id"] == 12
    assert sent["description"] == render_description(issue)


def test_create_issue_title_is_one_inert_line(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """The reporter's title can neither mention (@all, @root) nor cross-reference (#1, !1, &1, ~bug)
    nor span lines; the tracking-ID prefix stays as it is and the words stay readable."""
    rsps.post(ISSUES, json=issue_json(14, f"[{TID}] x"), status=201)
    hostile = "Ping @all @root\r\nsee #1 and !1, group/proj#2, &3 ~bug %4 $5 &#64;admin <!-- x"
    tracker.create_issue(DEST, new_issue(report={"title": hostile}))
    sent = body(rsps.calls[0])["title"]
    assert sent.startswith(f"[{TID}] Ping ")
    assert "\r" not in sent
    assert "\n" not in sent
    shown = html.unescape(sent.removeprefix(f"[{TID}] "))  # what GitLab's reference filters see
    assert re.search(r"@[A-Za-z0-9_]", shown) is None
    assert re.search(r"[#!&%~$][\w\"]", shown) is None
    assert "<!--" not in sent
    readable = html.unescape(sent).replace(ZWJ, "")
    assert readable == f"[{TID}] Ping @all @root see #1 and !1, group/proj#2, &3 ~bug %4 $5 &#64;admin <!-- x"


def test_create_issue_long_title_fits_gitlab(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """A title over GitLab's 255 characters is cut, not refused with a 400."""
    rsps.post(ISSUES, json=issue_json(14, f"[{TID}] x"), status=201)
    tracker.create_issue(DEST, new_issue(report={"title": "lang " * 200}))
    sent = body(rsps.calls[0])["title"]
    assert len(sent) <= 255
    assert sent.startswith(f"[{TID}] lang lang")


def test_create_issue_without_sprint_or_labels_omits_them(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """No sprint means no milestone_id in the POST; no labels means no labels key."""
    rsps.post(ISSUES, json=issue_json(15, f"[{TID}] x"), status=201)
    tracker.create_issue(DEST, new_issue(sprint=None, labels=()))
    sent = body(rsps.calls[0])
    assert "milestone_id" not in sent
    assert "labels" not in sent


def test_create_issue_numeric_project_id(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """A numeric Destination.project addresses /projects/<id>."""
    rsps.post(f"{API}/projects/4/issues", json=issue_json(16, f"[{TID}] x"), status=201)
    ref = tracker.create_issue(Destination(tracker="gitlab", project="4"), new_issue())
    assert ref.key == "16"


def test_create_issue_non_numeric_sprint_id_is_permanent(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """A sprint id that is not a milestone id fails permanently, before any request."""
    with pytest.raises(PermanentError, match="milestone id"):
        tracker.create_issue(DEST, new_issue(sprint=Sprint(id="abc", name="S")))
    assert len(rsps.calls) == 0


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (400, "400 Bad request - labels is invalid"),
        (401, "401 Unauthorized"),
        (403, "403 Forbidden"),
        (404, "404 Project Not Found"),
        (422, "Milestone does not exist"),
    ],
)
def test_create_issue_client_errors_are_permanent(
    rsps: responses.RequestsMock, tracker: GitLabTracker, status: int, message: str
) -> None:
    """4xx on create raises PermanentError carrying GitLab's message and the status, never the token."""
    rsps.post(ISSUES, json={"message": message}, status=status)
    with pytest.raises(PermanentError) as info:
        tracker.create_issue(DEST, new_issue())
    text = str(info.value)
    assert message in text
    assert f"HTTP {status}" in text
    assert TOKEN not in text
    assert len(rsps.calls) == 1


def test_create_issue_validation_message_dict_is_readable(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """GitLab's field->messages validation dict becomes readable text in the PermanentError."""
    rsps.post(ISSUES, json={"message": {"title": ["is too long (maximum is 255 characters)"]}}, status=400)
    with pytest.raises(PermanentError, match=r"title is too long \(maximum is 255 characters\)"):
        tracker.create_issue(DEST, new_issue())


def test_error_echoing_the_token_is_scrubbed(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """Even if GitLab (or a proxy) echoes the token in its error body, the error message hides it."""
    rsps.post(ISSUES, json={"message": f"token {TOKEN} revoked"}, status=401)
    with pytest.raises(PermanentError) as info:
        tracker.create_issue(DEST, new_issue())
    assert TOKEN not in str(info.value)
    assert "revoked" in str(info.value)


def test_create_issue_429_is_retryable_with_retry_after_and_not_retried(
    rsps: responses.RequestsMock, tracker: GitLabTracker
) -> None:
    """429 raises RetryableError with Retry-After seconds; python-gitlab does not re-send the POST."""
    rsps.post(
        ISSUES,
        body="Retry later\n",
        status=429,
        content_type="text/plain",
        headers={
            "Retry-After": "7",
            "RateLimit-Limit": "60",
            "RateLimit-Name": "throttle_authenticated_api",
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(int(time.time()) + 300),
        },
    )
    with pytest.raises(RetryableError) as info:
        tracker.create_issue(DEST, new_issue())
    assert info.value.retry_after == 7.0
    assert "HTTP 429" in str(info.value)
    assert len(rsps.calls) == 1


def test_create_issue_429_with_only_ratelimit_reset(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """Without Retry-After, a 429's RateLimit-Reset (epoch seconds) gives the delay."""
    rsps.post(
        ISSUES,
        body="Retry later\n",
        status=429,
        content_type="text/plain",
        headers={"RateLimit-Reset": str(int(time.time()) + 40), "RateLimit-Remaining": "0"},
    )
    with pytest.raises(RetryableError) as info:
        tracker.create_issue(DEST, new_issue())
    assert info.value.retry_after is not None
    assert 35 <= info.value.retry_after <= 41
    assert len(rsps.calls) == 1


@pytest.mark.parametrize(("status", "unknown"), [(500, True), (502, True), (503, False), (504, True)])
def test_create_issue_server_errors_are_retryable_and_not_retried(
    rsps: responses.RequestsMock, tracker: GitLabTracker, status: int, unknown: bool
) -> None:
    """5xx raises RetryableError after exactly one POST (a library retry could duplicate the issue);
    after a 500/502/504 the issue may exist (OutcomeUnknown), a 503 turned the request away."""
    rsps.post(ISSUES, body="<html>Bad gateway</html>", status=status, content_type="text/html")
    with pytest.raises(RetryableError) as info:
        tracker.create_issue(DEST, new_issue())
    assert f"HTTP {status}" in str(info.value)
    assert isinstance(info.value, OutcomeUnknown) is unknown
    assert info.value.retry_after is None
    assert len(rsps.calls) == 1


def test_create_issue_503_honours_retry_after(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """A 503 with Retry-After passes the delay on."""
    rsps.post(ISSUES, json={"message": "maintenance"}, status=503, headers={"Retry-After": "120"})
    with pytest.raises(RetryableError) as info:
        tracker.create_issue(DEST, new_issue())
    assert info.value.retry_after == 120.0
    assert len(rsps.calls) == 1


def test_create_issue_connection_error_is_outcome_unknown(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """A failed connection may have carried the POST: OutcomeUnknown after one attempt."""
    rsps.post(ISSUES, body=requests.ConnectionError("connection reset"))
    with pytest.raises(OutcomeUnknown, match="ConnectionError") as info:
        tracker.create_issue(DEST, new_issue())
    assert TOKEN not in str(info.value)
    assert len(rsps.calls) == 1


def test_create_issue_connect_timeout_is_retryable_and_known_not_done(
    rsps: responses.RequestsMock, tracker: GitLabTracker
) -> None:
    """A connect timeout never reached GitLab: plainly retryable."""
    rsps.post(ISSUES, body=requests.exceptions.ConnectTimeout("connect timed out"))
    with pytest.raises(RetryableError) as info:
        tracker.create_issue(DEST, new_issue())
    assert not isinstance(info.value, OutcomeUnknown)


def test_create_issue_timeout_is_outcome_unknown(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """A read timeout after one attempt: the issue may exist (look before creating again)."""
    rsps.post(ISSUES, body=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(OutcomeUnknown, match="ReadTimeout"):
        tracker.create_issue(DEST, new_issue())
    assert len(rsps.calls) == 1


def test_create_issue_chunked_encoding_error_is_outcome_unknown(
    rsps: responses.RequestsMock, tracker: GitLabTracker
) -> None:
    """A connection broken mid-body: the create may have happened."""
    rsps.post(ISSUES, body=requests.exceptions.ChunkedEncodingError("broken"))
    with pytest.raises(OutcomeUnknown):
        tracker.create_issue(DEST, new_issue())


def test_reads_are_never_outcome_unknown(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """A 502 or a timeout on a read is plainly retryable (reads are safe to repeat)."""
    rsps.get(f"{ISSUES}/14", body="bad gateway", status=502)
    rsps.get(f"{ISSUES}/15", body=requests.exceptions.ReadTimeout("read timed out"))
    for key in ("14", "15"):
        with pytest.raises(RetryableError) as info:
            tracker.issue_state(DEST, IssueRef(key=key))
        assert not isinstance(info.value, OutcomeUnknown)


@pytest.mark.parametrize(
    ("payload", "content_type"),
    [
        ("{not json", "application/json"),
        ("<html>Sign in</html>", "text/html"),
        (json.dumps({"id": 1}), "application/json"),
    ],
    ids=["broken-json", "html-page", "json-without-iid"],
)
def test_create_issue_unparseable_success_body_is_retryable(
    rsps: responses.RequestsMock, tracker: GitLabTracker, payload: str, content_type: str
) -> None:
    """A 201 whose body is not a GitLab issue raises OutcomeUnknown (not KeyError or a parsing error):
    the issue was probably made, so it is looked for before another create."""
    rsps.post(ISSUES, body=payload, status=201, content_type=content_type)
    with pytest.raises(OutcomeUnknown, match="response"):
        tracker.create_issue(DEST, new_issue())


# -- find_issue ------------------------------------------------------------------------------------


def test_find_issue_keeps_exact_prefix_lowest_iid_including_closed(
    rsps: responses.RequestsMock, tracker: GitLabTracker
) -> None:
    """find_issue searches titles in all states and keeps only '[<tid>]'-prefixed titles, lowest iid."""
    rsps.get(
        ISSUES,
        json=[
            issue_json(30, f"[{TID}X] other ticket with a longer id"),
            issue_json(25, f"Re: [{TID}] mentioned but not prefixed"),
            issue_json(22, f"[{TID}] Login fails", state="closed"),
            issue_json(27, f"[{TID}] Login fails (duplicate)"),
        ],
        headers={"X-Total": "4", "X-Per-Page": "100", "X-Page": "1"},
    )
    ref = tracker.find_issue(DEST, tracking_id=TID)
    assert ref == IssueRef(key="22", url="http://gitlab.example.com/acme/support/issues/22")
    params = query(rsps.calls[0])
    assert params["search"] == [TID]
    assert params["in"] == ["title"]
    assert params["scope"] == ["all"]
    assert "state" not in params


def test_find_issue_ignores_similar_titles(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """Search hits whose title lacks the exact prefix do not count: None is returned."""
    rsps.get(
        ISSUES,
        json=[issue_json(3, f"[{TID}0] near miss"), issue_json(4, f"Customer wrote {TID} in the title")],
    )
    assert tracker.find_issue(DEST, tracking_id=TID) is None


def test_find_issue_reads_every_page(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """find_issue follows the Link: next pages, so a match on page 2 is found."""
    page2 = f"{ISSUES}?page=2&per_page=100&search={TID}&in=title&scope=all"
    rsps.get(
        re.compile(re.escape(ISSUES) + r"\?.*page=2"),
        json=[issue_json(41, f"[{TID}] on the second page")],
    )
    rsps.get(
        re.compile(re.escape(ISSUES) + r"\?(?!.*page=2)"),
        json=[issue_json(9, "[OTHER-1] unrelated")],
        headers={"Link": f'<{page2}>; rel="next"', "X-Next-Page": "2"},
    )
    ref = tracker.find_issue(DEST, tracking_id=TID)
    assert ref is not None
    assert ref.key == "41"
    assert len(rsps.calls) == 2


# -- sprints ---------------------------------------------------------------------------------------


MILESTONE_LIST = [
    milestone_json(10, "Sprint 11", "2026-11-09", "2026-11-22"),
    milestone_json(12, "Sprint 12", "2026-11-23", "2026-12-06"),
    milestone_json(14, "Sprint 14", "2026-12-21", "2027-01-03"),
    milestone_json(13, "Sprint 13", "2026-12-07", "2026-12-20"),
    milestone_json(90, "Backlog", None, None),
    milestone_json(91, "Someday", "2026-11-01", None),
]


def test_sprints_current_and_next_with_group_milestones(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """Current contains today, next starts first after it; active + include_ancestors=true are requested."""
    rsps.get(MILESTONES, json=MILESTONE_LIST)
    window = tracker.sprints(DEST, SprintQuery(include_group_milestones=True), today="2026-11-25")
    assert window == SprintWindow(
        current=Sprint(id="12", name="Sprint 12", start_date=date(2026, 11, 23), due_date=date(2026, 12, 6)),
        next=Sprint(id="13", name="Sprint 13", start_date=date(2026, 12, 7), due_date=date(2026, 12, 20)),
    )
    params = query(rsps.calls[0])
    assert params["state"] == ["active"]
    assert params["include_ancestors"] == ["true"]


def test_sprints_project_only_omits_include_ancestors(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """include_group_milestones=False lists project milestones only (no include_ancestors)."""
    rsps.get(MILESTONES, json=MILESTONE_LIST)
    tracker.sprints(DEST, SprintQuery(include_group_milestones=False), today="2026-11-25")
    assert "include_ancestors" not in query(rsps.calls[0])


def test_sprints_group_milestone_can_be_current(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """A group milestone (group_id, no project_id) returned via include_ancestors is a valid sprint."""
    group = milestone_json(301, "Team sprint 7", "2026-11-20", "2026-11-30", group_id=41)
    del group["project_id"]
    rsps.get(MILESTONES, json=[group])
    window = tracker.sprints(DEST, SprintQuery(), today="2026-11-25")
    assert window.current is not None
    assert window.current.id == "301"


def test_sprints_title_pattern_filters_names(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """Only milestones whose title matches title_pattern (re.search) are considered."""
    rsps.get(
        MILESTONES,
        json=[
            milestone_json(50, "Release 3.1", "2026-11-01", "2026-12-31"),
            milestone_json(12, "Sprint 12", "2026-11-23", "2026-12-06"),
            milestone_json(13, "Sprint 13", "2026-12-07", "2026-12-20"),
            milestone_json(51, "Release 3.2", "2026-12-01", "2027-01-31"),
        ],
    )
    window = tracker.sprints(DEST, SprintQuery(title_pattern=r"^Sprint \d+"), today="2026-11-25")
    assert window.current is not None
    assert window.current.name == "Sprint 12"
    assert window.next is not None
    assert window.next.name == "Sprint 13"


def test_sprints_undated_milestones_are_never_current(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """Milestones lacking a start or due date cannot be current; none left means current is None."""
    rsps.get(
        MILESTONES,
        json=[
            milestone_json(90, "Backlog", None, None),
            milestone_json(91, "Open-ended", "2026-11-01", None),
            milestone_json(92, "Due only", None, "2026-12-01"),
        ],
    )
    window = tracker.sprints(DEST, SprintQuery(), today="2026-11-25")
    assert window == SprintWindow(current=None, next=None)


def test_sprints_none_at_all(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """No active milestones gives an empty window, not an error."""
    rsps.get(MILESTONES, json=[])
    assert tracker.sprints(DEST, SprintQuery(), today="2026-11-25") == SprintWindow(current=None, next=None)


def test_sprints_without_current_next_is_first_after_today(
    rsps: responses.RequestsMock, tracker: GitLabTracker
) -> None:
    """In a gap between sprints, current is None and next is the earliest one starting after today."""
    rsps.get(MILESTONES, json=MILESTONE_LIST)
    window = tracker.sprints(DEST, SprintQuery(), today="2026-12-06")
    assert window.current is not None
    assert window.current.id == "12"  # due date inclusive
    rsps.get(MILESTONES, json=[m for m in MILESTONE_LIST if m["id"] != 12])
    gap = tracker.sprints(DEST, SprintQuery(), today="2026-11-25")
    assert gap.current is None
    assert gap.next is not None
    assert gap.next.id == "13"


def test_sprints_overlapping_current_takes_earliest_due(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """When several milestones contain today, the one due first is current; next starts after it."""
    rsps.get(
        MILESTONES,
        json=[
            milestone_json(70, "Quarter", "2026-10-01", "2026-12-31"),
            milestone_json(12, "Sprint 12", "2026-11-23", "2026-12-06"),
            milestone_json(13, "Sprint 13", "2026-12-07", "2026-12-20"),
        ],
    )
    window = tracker.sprints(DEST, SprintQuery(), today="2026-11-25")
    assert window.current is not None
    assert window.current.id == "12"
    assert window.next is not None
    assert window.next.id == "13"


def test_sprints_invalid_pattern_is_permanent(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """An invalid title_pattern raises PermanentError, not re.error."""
    rsps.get(MILESTONES, json=MILESTONE_LIST)
    with pytest.raises(PermanentError, match="title pattern"):
        tracker.sprints(DEST, SprintQuery(title_pattern="Sprint ("), today="2026-11-25")


def test_sprints_429_on_second_page_is_not_retried(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """The no-retry options also hold for follow-up pages: a 429 on page 2 surfaces at once."""
    page2 = f"{MILESTONES}?page=2&per_page=100&state=active&include_ancestors=true"
    rsps.get(re.compile(re.escape(MILESTONES) + r"\?.*page=2"), status=429, headers={"Retry-After": "9"})
    rsps.get(
        re.compile(re.escape(MILESTONES) + r"\?(?!.*page=2)"),
        json=MILESTONE_LIST[:2],
        headers={"Link": f'<{page2}>; rel="next"'},
    )
    with pytest.raises(RetryableError) as info:
        tracker.sprints(DEST, SprintQuery(), today="2026-11-25")
    assert info.value.retry_after == 9.0
    assert len(rsps.calls) == 2


# -- sprint_load -----------------------------------------------------------------------------------


def test_sprint_load_counts_with_x_total(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """Issue count comes from X-Total of a per_page=1 request filtered by milestone title, label, opened."""
    rsps.get(ISSUES, json=[issue_json(1, "a")], headers={"X-Total": "17", "X-Per-Page": "1"})
    load = tracker.sprint_load(DEST, SPRINT, label="type::hotfix", unit="issues")
    assert load == 17.0
    assert len(rsps.calls) == 1
    params = query(rsps.calls[0])
    assert params["milestone"] == ["Sprint 12"]
    assert params["labels"] == ["type::hotfix"]
    assert params["state"] == ["opened"]
    assert params["per_page"] == ["1"]


def test_sprint_load_counts_pages_without_x_total(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """Without X-Total (GitLab omits it above 10,000 rows), every page is fetched and counted."""
    page2 = f"{ISSUES}?page=2&per_page=100&milestone=Sprint+12&labels=bug&state=opened"
    rsps.get(re.compile(re.escape(ISSUES) + r"\?(?=.*per_page=1(&|$))"), json=[issue_json(1, "a")])
    rsps.get(re.compile(re.escape(ISSUES) + r"\?.*page=2"), json=[issue_json(4, "d")])
    rsps.get(
        re.compile(re.escape(ISSUES) + r"\?(?=.*per_page=100)(?!.*page=2)"),
        json=[issue_json(1, "a"), issue_json(2, "b"), issue_json(3, "c")],
        headers={"Link": f'<{page2}>; rel="next"'},
    )
    assert tracker.sprint_load(DEST, SPRINT, label="bug", unit="issues") == 4.0
    assert len(rsps.calls) == 3


def test_sprint_load_sums_weight_none_as_one(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """unit=weight sums issue weights, an unweighted issue counting as 1 (and 0 as 0)."""
    rsps.get(
        ISSUES,
        json=[
            issue_json(1, "a", weight=3),
            issue_json(2, "b", weight=None),
            issue_json(3, "c", weight=5),
            issue_json(4, "d", weight=0),
        ],
    )
    assert tracker.sprint_load(DEST, SPRINT, label="type::bugfix", unit="weight") == 9.0
    params = query(rsps.calls[0])
    assert params["milestone"] == ["Sprint 12"]
    assert params["labels"] == ["type::bugfix"]
    assert params["state"] == ["opened"]


# -- ensure_in_sprint, reopen, add_comment ---------------------------------------------------------

MILESTONE_12 = {"id": 12, "iid": 2, "title": "Sprint 12", "state": "active"}


def test_ensure_in_sprint_noop_when_already_there(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """An issue already in the milestone gets no PUT."""
    rsps.get(f"{ISSUES}/14", json=issue_json(14, "x", milestone=MILESTONE_12))
    tracker.ensure_in_sprint(DEST, IssueRef(key="14"), SPRINT)
    assert [c.request.method for c in rsps.calls] == ["GET"]


@pytest.mark.parametrize("milestone", [None, {"id": 11, "title": "Sprint 11"}], ids=["no-milestone", "other-milestone"])
def test_ensure_in_sprint_puts_milestone_id(
    rsps: responses.RequestsMock, tracker: GitLabTracker, milestone: dict[str, Any] | None
) -> None:
    """An issue outside the milestone gets PUT milestone_id=<int id>."""
    rsps.get(f"{ISSUES}/14", json=issue_json(14, "x", milestone=milestone))
    rsps.put(f"{ISSUES}/14", json=issue_json(14, "x", milestone=MILESTONE_12))
    tracker.ensure_in_sprint(DEST, IssueRef(key="14"), SPRINT)
    assert [c.request.method for c in rsps.calls] == ["GET", "PUT"]
    assert body(rsps.calls[1]) == {"milestone_id": 12}


def test_ensure_in_sprint_missing_issue_is_permanent(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """A 404 on the issue raises PermanentError."""
    rsps.get(f"{ISSUES}/99", json={"message": "404 Not found"}, status=404)
    with pytest.raises(PermanentError, match="404 Not found"):
        tracker.ensure_in_sprint(DEST, IssueRef(key="99"), SPRINT)


def test_reopen_closed_issue_puts_state_event(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """A closed issue is reopened with PUT state_event=reopen."""
    rsps.get(f"{ISSUES}/14", json=issue_json(14, "x", state="closed"))
    rsps.put(f"{ISSUES}/14", json=issue_json(14, "x", state="opened"))
    tracker.reopen(DEST, IssueRef(key="14"))
    assert [c.request.method for c in rsps.calls] == ["GET", "PUT"]
    assert body(rsps.calls[1]) == {"state_event": "reopen"}


def test_reopen_open_issue_is_noop(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """An open issue is left alone (no PUT)."""
    rsps.get(f"{ISSUES}/14", json=issue_json(14, "x", state="opened"))
    tracker.reopen(DEST, IssueRef(key="14"))
    assert [c.request.method for c in rsps.calls] == ["GET"]


def test_reopen_bad_key_is_permanent(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """A non-numeric key (a Jira key, say) is rejected before any request."""
    with pytest.raises(PermanentError, match="iid"):
        tracker.reopen(DEST, IssueRef(key="SUP-1"))
    assert len(rsps.calls) == 0


def test_add_comment_posts_note_body(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """add_comment POSTs {"body": ...} to the issue's notes, with no prior GET."""
    rsps.post(
        f"{ISSUES}/14/notes",
        json={"id": 302, "body": "hi", "system": False, "noteable_iid": 14, "noteable_type": "Issue"},
        status=201,
    )
    tracker.add_comment(DEST, IssueRef(key="14"), "Customer replied: it works now")
    assert len(rsps.calls) == 1
    assert body(rsps.calls[0]) == {"body": "Customer replied: it works now"}


def test_add_comment_neutralises_quick_actions_and_mentions(
    rsps: responses.RequestsMock, tracker: GitLabTracker
) -> None:
    """Reporter text relayed in a comment cannot close the issue or ping @all; the text stays readable."""
    rsps.post(f"{ISSUES}/14/notes", json={"id": 303, "body": "x", "system": False}, status=201)
    reply = "The reporter added:\n\n/close\r/assign @me\r\nthanks @all, **still broken**"
    tracker.add_comment(DEST, IssueRef(key="14"), reply)
    sent = body(rsps.calls[0])["body"]
    assert not any(line.startswith("/") for line in sent.split("\n"))
    assert "\r" not in sent
    assert re.search(r"@[A-Za-z0-9_]", sent) is None
    assert sent.replace(ZWJ, "") == "The reporter added:\n\n/close\n/assign @me\nthanks @all, **still broken**"


def test_add_comment_quotes_reporter_text(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """Reporter text given apart from the bridge's words is quoted like the description: no quick
    action, mention or cross-reference, and the bridge's heading stays as written."""
    rsps.post(f"{ISSUES}/14/notes", json={"id": 304, "body": "x", "system": False}, status=201)
    tracker.add_comment(DEST, IssueRef(key="14"), "**The reporter added:**", reporter_text="/close\n@all see #1")
    sent = body(rsps.calls[0])["body"]
    heading, _, quoted = sent.partition("\n\n")
    assert heading == "**The reporter added:**"
    assert all(line.startswith("> ") for line in quoted.split("\n"))
    assert re.search(r"@[A-Za-z0-9_]|#[0-9]", html.unescape(quoted)) is None
    assert quoted.replace(ZWJ, "") == "> /close\n> @all see #1"


def test_add_comment_rate_limited_is_retryable(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """The note-creation limit (429 without Retry-After headers from the app limiter) is retryable."""
    rsps.post(f"{ISSUES}/14/notes", body="Retry later\n", status=429, content_type="text/plain")
    with pytest.raises(RetryableError) as info:
        tracker.add_comment(DEST, IssueRef(key="14"), "x")
    assert info.value.retry_after is None
    assert len(rsps.calls) == 1


# -- check -----------------------------------------------------------------------------------------

USER = {"id": 7, "username": "support-bridge", "name": "Support bridge", "state": "active"}
PROJECT_JSON = {"id": 4, "path_with_namespace": "acme/support", "web_url": f"{BASE}/acme/support"}


def test_check_all_fine(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """Valid token, visible project and a current sprint give no problems."""
    rsps.get(f"{API}/user", json=USER)
    rsps.get(PROJECT, json=PROJECT_JSON)
    rsps.get(MILESTONES, json=MILESTONE_LIST)
    assert tracker.check(DEST, SprintQuery(), today="2026-11-25") == []
    assert [urlsplit(c.request.url).path for c in rsps.calls] == [
        "/api/v4/user",
        "/api/v4/projects/acme%2Fsupport",
        "/api/v4/projects/acme%2Fsupport/milestones",
    ]


def test_check_bad_token(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """A 401 on GET /user is one problem about the token, with no exception and no token shown."""
    rsps.get(f"{API}/user", json={"message": "401 Unauthorized"}, status=401)
    problems = tracker.check(DEST, SprintQuery(), today="2026-11-25")
    assert len(problems) == 1
    assert "token" in problems[0]
    assert "401" in problems[0]
    assert TOKEN not in problems[0]


def test_check_rate_limited_user_is_a_problem_not_retried(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """A 429 on GET /user becomes a problem after one request (gl.auth() would retry ten times)."""
    rsps.get(f"{API}/user", body="Retry later\n", status=429, headers={"Retry-After": "30"})
    problems = tracker.check(DEST, SprintQuery(), today="2026-11-25")
    assert len(problems) == 1
    assert "429" in problems[0]
    assert len(rsps.calls) == 1


def test_check_project_not_visible(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """A 404 on the project is reported as a problem naming the project."""
    rsps.get(f"{API}/user", json=USER)
    rsps.get(PROJECT, json={"message": "404 Project Not Found"}, status=404)
    problems = tracker.check(DEST, SprintQuery(), today="2026-11-25")
    assert len(problems) == 1
    assert "acme/support" in problems[0]
    assert "404 Project Not Found" in problems[0]


def test_check_no_current_sprint(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """No milestone containing today is a problem string, not an exception."""
    rsps.get(f"{API}/user", json=USER)
    rsps.get(PROJECT, json=PROJECT_JSON)
    rsps.get(MILESTONES, json=[milestone_json(13, "Sprint 13", "2026-12-07", "2026-12-20")])
    problems = tracker.check(DEST, SprintQuery(title_pattern="^Sprint"), today="2026-11-25")
    assert len(problems) == 1
    assert "current sprint" in problems[0]
    assert "2026-11-25" in problems[0]
    assert "'^Sprint'" in problems[0]


def test_check_unreachable(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """A connection failure is a problem string too."""
    rsps.get(f"{API}/user", body=requests.ConnectionError("Name or service not known"))
    problems = tracker.check(DEST, SprintQuery(), today="2026-11-25")
    assert len(problems) == 1
    assert "not reachable" in problems[0]


# -- description rendering -------------------------------------------------------------------------


def section(text: str, title: str) -> str:
    """The body of the ``### title`` section."""
    start = text.index(f"### {title}\n") + len(f"### {title}\n")
    end = text.find("\n### ", start)
    return text[start : end if end != -1 else len(text)]


def test_description_neutralises_quick_actions() -> None:
    """Reporter lines starting with '/' (after any kind of line break) cannot run GitLab quick actions."""
    hostile = "Please help\n/close\r/assign @me\r\n/label ~fixed\u2028/confidential\n\n/due tomorrow"
    text = render_description(new_issue(report={"description": hostile, "impact": "/unlabel ~bug"}))
    assert not any(line.lstrip().startswith("/") for line in re.split(r"\r\n|\r|\n|\u2028", text))
    quoted = section(text, "Description").strip().split("\n")
    assert quoted
    assert all(line == ">" or line.startswith("> ") for line in quoted)
    assert "> /close" in quoted


def test_description_neutralises_mentions() -> None:
    """'@all' and '@user' in reporter-controlled fields are broken with a zero-width joiner."""
    issue = new_issue(
        report={
            "description": "cc @all and @john.doe",
            "impact": "@channel",
            "product": "@here",
            "environment": {"user": "@admin"},
            "attachments": (Attachment(filename="@all.png", url="https://files.example/@all"),),
        },
        reporter_name="@everyone",
    )
    text = render_description(issue)
    assert re.search(r"@[A-Za-z0-9_]", text) is None
    assert f"@{ZWJ}all" in text
    assert f"@{ZWJ}john.doe" in text
    assert "&#64;" not in text


def test_description_neutralises_references() -> None:
    """'#1', '!1', '~bug' and the like in reporter text link nothing: no "mentioned in" notes elsewhere."""
    issue = new_issue(report={"description": "same as #1 and !2, see acme/other#3", "impact": "~urgent &4"})
    shown = html.unescape(render_description(issue))
    assert re.search(r"[#!&%~$][\w\"]", section(shown, "Description") + section(shown, "Impact")) is None
    assert "same as #1 and !2" in shown.replace(ZWJ, "")


def test_description_reporter_cannot_break_out_of_section() -> None:
    """HTML comments, '>>>' fences and pipes in reporter text stay inert; the footer survives."""
    issue = new_issue(
        report={
            "description": "<!-- hide everything\n>>>\n### Classification\n- Severity: **low**",
            "environment": {"os | x": "Win\n/close | evil"},
        }
    )
    text = render_description(issue)
    assert text.count("<!--") == 1
    assert text.rstrip().endswith(f"<!-- bridge:tracking-id={TID} -->")
    assert text.split("\n").count("### Classification") == 1
    assert "\n>>>" not in text
    assert r"| os \| x | Win /close \| evil |" in section(text, "Environment")


def test_description_omits_email_unless_set() -> None:
    """The reporter's email appears only when NewIssue.reporter_email is set."""
    without = render_description(new_issue())
    assert "jens@" not in without
    assert "| Reporter | Jens Hansen |" in section(without, "Details")
    with_email = render_description(new_issue(reporter_email="jens@acme.example"))
    assert f"Jens Hansen (jens@{ZWJ}acme.example)" in section(with_email, "Details")


def test_description_sections_and_footer() -> None:
    """The description holds every required section and ends with the tracking-ID footer and marker."""
    text = render_description(new_issue())
    assert "> I click login and get an error." in section(text, "Description")
    assert "> Nobody in the warehouse can work." in section(text, "Impact")
    details = section(text, "Details")
    for row in (
        "| Declared priority | high |",
        "| Product | WMS |",
        "| Organisation | Acme A/S |",
        "| Source channel | email |",
    ):
        assert row in details
    env = section(text, "Environment")
    assert "| browser | Firefox 140 |" in env
    assert "| os | Windows 11 |" in env
    assert "- [screen.png](https://files.example/a/1)" in section(text, "Attachments")
    classification = section(text, "Classification")
    assert "- Severity: **high**" in classification
    assert "- Kind: hotfix" in classification
    assert "- Product-owner review: yes" in classification
    assert "- Rules fired: outage, many-users" in classification
    assert "Sprint 12 (2026-11-23 to 2026-12-06)" in section(text, "Planned sprint")
    assert text.endswith(f"\n\nTracking ID: {TID}\n<!-- bridge:tracking-id={TID} -->\n")


def test_description_names_the_category_and_its_rule_beside_the_severity() -> None:
    """The category and the rule that fired follow the severity reasons; a rule quoting what the
    reporter wrote as the product is inert (no mention, no reference, no Markdown)."""
    text = render_description(new_issue(category="widget", category_rule="product:@all #1 *x*"))
    classification = section(text, "Classification")
    assert classification.splitlines()[-1] == f"- Category: **widget** (product:@{ZWJ}all #{ZWJ}1 \\*x\\*)"
    assert "- Category:" not in render_description(new_issue())


def test_components_asks_nothing(tracker: GitLabTracker, rsps: responses.RequestsMock) -> None:
    """GitLab has no components: the category is a scoped label, and no request is made."""
    assert tracker.components(DEST) == ()
    assert len(rsps.calls) == 0


def test_description_needs_planning_without_sprint() -> None:
    """No sprint renders 'needs planning'; a PO-review-free classification says 'no'."""
    issue = new_issue(
        sprint=None,
        classification=Classification(severity=Severity.LOW, kind=Kind.BUGFIX, po_review=False, rules=()),
    )
    text = render_description(issue)
    assert "needs planning" in section(text, "Planned sprint").lower()
    assert "- Product-owner review: no" in text
    assert "- Rules fired: none" in text


def test_description_attachment_urls_are_safe_links() -> None:
    """Attachment URLs cannot break the Markdown link; non-http(s) URLs are not linked."""
    issue = new_issue(
        report={
            "attachments": (
                Attachment(filename="log (1).txt", url="https://files.example/a b)(c.txt"),
                Attachment(filename="x", url="javascript:alert(1)"),
                Attachment(filename="no-url.txt"),
            )
        }
    )
    items = section(render_description(issue), "Attachments")
    assert "- [log (1).txt](https://files.example/a%20b%29%28c.txt)" in items
    assert "](javascript:" not in items
    assert "- no-url.txt" in items


def test_description_huge_report_fits_gitlab_limit() -> None:
    """A pasted multi-megabyte log is truncated so the description stays under GitLab's 1 MiB limit."""
    issue = new_issue(
        report={
            "description": "&" * 3_000_000,
            "impact": "<" * 500_000,
            "environment": {f"k{i}": "&" * 10_000 for i in range(500)},
        }
    )
    text = render_description(issue)
    assert len(text) < GITLAB_MAX_DESCRIPTION
    assert "truncated" in text
    assert text.endswith(f"<!-- bridge:tracking-id={TID} -->\n")


def test_description_rejects_odd_tracking_id(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """A tracking ID that could break the hidden marker fails permanently before any request."""
    with pytest.raises(PermanentError, match="tracking ID"):
        tracker.create_issue(DEST, new_issue(tracking_id="X --> <b>"))
    assert len(rsps.calls) == 0


# -- issue_state -----------------------------------------------------------------------------------


def test_issue_state_reads_state_labels_milestone_and_updated_at(
    rsps: responses.RequestsMock, tracker: GitLabTracker
) -> None:
    """issue_state GETs the issue and maps opened, string labels, milestone id, title and updated_at."""
    rsps.get(
        f"{ISSUES}/14",
        json={
            **issue_json(14, f"[{TID}] Login fails", milestone=MILESTONE_12),
            "labels": ["severity::high", "bridge::in-progress"],
            "updated_at": "2026-11-25T09:14:11.081Z",
        },
    )
    snapshot = tracker.issue_state(DEST, IssueRef(key="14"))
    assert snapshot == IssueSnapshot(
        key="14",
        title=f"[{TID}] Login fails",
        open=True,
        labels=("severity::high", "bridge::in-progress"),
        sprint_id="12",
        updated_at=datetime(2026, 11, 25, 9, 14, 11, 81000, tzinfo=UTC),
    )
    assert [(c.request.method, urlsplit(c.request.url).path) for c in rsps.calls] == [
        ("GET", "/api/v4/projects/acme%2Fsupport/issues/14")
    ]


def test_issue_state_closed_issue_without_milestone(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """A closed issue is not open; no milestone gives sprint_id None; Jira-only fields stay None."""
    rsps.get(f"{ISSUES}/15", json={**issue_json(15, "x", state="closed"), "labels": []})
    snapshot = tracker.issue_state(DEST, IssueRef(key="15"))
    assert (snapshot.open, snapshot.labels, snapshot.sprint_id) == (False, (), None)
    assert (snapshot.status_id, snapshot.status_category, snapshot.resolution, snapshot.priority) == (
        None,
        None,
        None,
        None,
    )
    assert snapshot.updated_at is None  # the trimmed payload has no updated_at


def test_issue_state_missing_issue_is_permanent(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """A 404 (issue deleted, or not visible) raises NotFoundError, a PermanentError."""
    rsps.get(f"{ISSUES}/99", json={"message": "404 Not found"}, status=404)
    with pytest.raises(NotFoundError, match="HTTP 404"):
        tracker.issue_state(DEST, IssueRef(key="99"))


def test_issue_state_429_is_retryable_once(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """A 429 raises RetryableError with Retry-After, after exactly one request."""
    rsps.get(f"{ISSUES}/14", body="Retry later\n", status=429, content_type="text/plain", headers={"Retry-After": "11"})
    with pytest.raises(RetryableError) as info:
        tracker.issue_state(DEST, IssueRef(key="14"))
    assert info.value.retry_after == 11.0
    assert len(rsps.calls) == 1


def test_issue_state_unexpected_payload_is_retryable(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """A 200 that is not an issue (no state) is a typed error, not a KeyError."""
    rsps.get(f"{ISSUES}/14", json={"iid": 14, "title": "x"})
    with pytest.raises(RetryableError, match="unexpected response"):
        tracker.issue_state(DEST, IssueRef(key="14"))


# -- update_labels ---------------------------------------------------------------------------------


def test_update_labels_puts_add_and_remove_lists(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """One PUT with comma-joined add_labels/remove_labels, stripped and de-duplicated; no prior GET."""
    rsps.put(f"{ISSUES}/14", json=issue_json(14, "x"))
    tracker.update_labels(
        DEST,
        IssueRef(key="14"),
        add=["bridge::in-qa", " customer-waiting ", "bridge::in-qa"],
        remove=["bridge::in-progress"],
    )
    assert [c.request.method for c in rsps.calls] == ["PUT"]
    assert urlsplit(rsps.calls[0].request.url).path == "/api/v4/projects/acme%2Fsupport/issues/14"
    assert body(rsps.calls[0]) == {
        "add_labels": "bridge::in-qa,customer-waiting",
        "remove_labels": "bridge::in-progress",
    }


def test_update_labels_sends_only_the_non_empty_list(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """Only add_labels is sent when nothing is removed, and a label in both lists is only removed."""
    rsps.put(f"{ISSUES}/14", json=issue_json(14, "x"))
    rsps.put(f"{ISSUES}/14", json=issue_json(14, "x"))
    tracker.update_labels(DEST, IssueRef(key="14"), add=["a"], remove=[])
    tracker.update_labels(DEST, IssueRef(key="14"), add=["b", "c"], remove=["c"])
    assert body(rsps.calls[0]) == {"add_labels": "a"}
    assert body(rsps.calls[1]) == {"add_labels": "b", "remove_labels": "c"}


def test_update_labels_noop_makes_no_request(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """Nothing to add or remove (blank labels included) makes no request."""
    tracker.update_labels(DEST, IssueRef(key="14"), add=[], remove=[])
    tracker.update_labels(DEST, IssueRef(key="14"), add=[" "], remove=[""])
    assert len(rsps.calls) == 0


def test_update_labels_comma_in_label_is_permanent(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """A label with a comma would become two labels in the comma list: refused before any request."""
    with pytest.raises(PermanentError, match="comma"):
        tracker.update_labels(DEST, IssueRef(key="14"), add=["a,b"], remove=[])
    assert len(rsps.calls) == 0


def test_update_labels_missing_issue_is_permanent(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """A 404 on the PUT raises PermanentError."""
    rsps.put(f"{ISSUES}/99", json={"message": "404 Not found"}, status=404)
    with pytest.raises(PermanentError, match="HTTP 404"):
        tracker.update_labels(DEST, IssueRef(key="99"), add=["a"], remove=[])


def test_update_labels_429_is_retryable_once(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """A 429 on the PUT raises RetryableError with Retry-After; python-gitlab does not re-send it."""
    rsps.put(f"{ISSUES}/14", body="Retry later\n", status=429, content_type="text/plain", headers={"Retry-After": "3"})
    with pytest.raises(RetryableError) as info:
        tracker.update_labels(DEST, IssueRef(key="14"), add=["a"], remove=["b"])
    assert info.value.retry_after == 3.0
    assert len(rsps.calls) == 1


# -- account ---------------------------------------------------------------------------------------


def test_account_reads_user_once(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """account() GETs /user once (id as a string, username); the second call makes no request."""
    rsps.get(f"{API}/user", json=USER)
    assert tracker.account() == Account(id="7", username="support-bridge")
    assert tracker.account() == Account(id="7", username="support-bridge")
    assert [urlsplit(c.request.url).path for c in rsps.calls] == ["/api/v4/user"]
    assert rsps.calls[0].request.headers["PRIVATE-TOKEN"] == TOKEN


def test_account_429_is_retryable_once_and_not_cached(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """A 429 on /user is RetryableError after one request, and the next call asks again."""
    rsps.get(f"{API}/user", body="Retry later\n", status=429, content_type="text/plain", headers={"Retry-After": "5"})
    rsps.get(f"{API}/user", json=USER)
    with pytest.raises(RetryableError) as info:
        tracker.account()
    assert info.value.retry_after == 5.0
    assert len(rsps.calls) == 1
    assert tracker.account().id == "7"
    assert len(rsps.calls) == 2


def test_account_bad_token_is_permanent(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """A 401 on /user raises PermanentError without the token in the message."""
    rsps.get(f"{API}/user", json={"message": "401 Unauthorized"}, status=401)
    with pytest.raises(PermanentError, match="HTTP 401") as info:
        tracker.account()
    assert TOKEN not in str(info.value)


# -- changed_since ---------------------------------------------------------------------------------


def changed_issue(iid: int, title: str, updated_at: str) -> dict[str, Any]:
    return {**issue_json(iid, title), "updated_at": updated_at}


def test_changed_since_sends_updated_after_and_reads_every_page(
    rsps: responses.RequestsMock, tracker: GitLabTracker
) -> None:
    """changed_since lists all states, updated_after in UTC, oldest first, following X-Next-Page."""
    rsps.get(
        ISSUES,
        json=[changed_issue(3, "three", "2026-11-25T08:00:00Z"), changed_issue(1, "one", "2026-11-25T08:01:00Z")],
        headers={"X-Page": "1", "X-Next-Page": "2", "X-Per-Page": "100"},
    )
    rsps.get(
        ISSUES,
        json=[changed_issue(2, "two", "2026-11-25T08:02:00Z")],
        headers={"X-Page": "2", "X-Next-Page": "", "X-Per-Page": "100"},
    )
    since = datetime(2026, 11, 25, 9, 59, 30, 123456, tzinfo=timezone(timedelta(hours=2)))
    changed = tracker.changed_since(DEST, since)
    assert changed == [
        (IssueRef(key="3", url="http://gitlab.example.com/acme/support/issues/3"), "three"),
        (IssueRef(key="1", url="http://gitlab.example.com/acme/support/issues/1"), "one"),
        (IssueRef(key="2", url="http://gitlab.example.com/acme/support/issues/2"), "two"),
    ]
    expected = {
        "updated_after": ["2026-11-25T07:59:30Z"],
        "scope": ["all"],
        "state": ["all"],
        "order_by": ["updated_at"],
        "sort": ["asc"],
        "per_page": ["100"],
    }
    assert [query(c) for c in rsps.calls] == [{**expected, "page": ["1"]}, {**expected, "page": ["2"]}]
    assert all(urlsplit(c.request.url).path == "/api/v4/projects/acme%2Fsupport/issues" for c in rsps.calls)


def test_changed_since_naive_since_is_utc_and_empty_result(
    rsps: responses.RequestsMock, tracker: GitLabTracker
) -> None:
    """A naive since is taken as UTC; an empty first page ends the listing."""
    rsps.get(ISSUES, json=[], headers={"X-Page": "1", "X-Next-Page": ""})
    assert tracker.changed_since(DEST, datetime(2026, 11, 25, 8, 0)) == []
    assert query(rsps.calls[0])["updated_after"] == ["2026-11-25T08:00:00Z"]
    assert len(rsps.calls) == 1


def test_changed_since_follows_link_header_without_x_next_page(
    rsps: responses.RequestsMock, tracker: GitLabTracker
) -> None:
    """Without X-Next-Page the page number is read from the Link rel=next URL."""
    rsps.get(
        ISSUES,
        json=[changed_issue(1, "one", "2026-11-25T08:00:00Z")],
        headers={"Link": f'<{ISSUES}?page=2&per_page=100&scope=all>; rel="next"'},
    )
    rsps.get(ISSUES, json=[changed_issue(2, "two", "2026-11-25T08:05:00Z")])
    changed = tracker.changed_since(DEST, datetime(2026, 11, 25, 7, 0, tzinfo=UTC))
    assert [ref.key for ref, _ in changed] == ["1", "2"]
    assert changed.cut_at is None  # complete
    assert [query(c)["page"] for c in rsps.calls] == [["1"], ["2"]]


def test_changed_since_stops_after_20_pages(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """A listing that never ends is cut after 20 requests of 100, returning what was read and the
    last ``updated_at`` read (``cut_at``), where the caller reads on."""
    for page in range(1, 21):
        rsps.get(
            ISSUES,
            json=[changed_issue(100 * page + n, f"t{n}", f"2026-11-25T08:{page:02}:00.250Z") for n in range(100)],
            headers={"X-Page": str(page), "X-Next-Page": str(page + 1)},
        )
    changed = tracker.changed_since(DEST, datetime(2026, 11, 25, 7, 0, tzinfo=UTC))
    assert len(changed) == 2000
    assert changed.cut_at == datetime(2026, 11, 25, 8, 20, 0, 250000, tzinfo=UTC)
    assert len(rsps.calls) == 20
    assert [query(c)["page"] for c in rsps.calls] == [[str(n)] for n in range(1, 21)]


def test_changed_since_missing_project_is_permanent(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """A 404 on the project's issue list raises PermanentError."""
    rsps.get(ISSUES, json={"message": "404 Project Not Found"}, status=404)
    with pytest.raises(PermanentError, match="404 Project Not Found"):
        tracker.changed_since(DEST, datetime(2026, 11, 25, 7, 0, tzinfo=UTC))


def test_changed_since_429_on_second_page_is_retryable_once(
    rsps: responses.RequestsMock, tracker: GitLabTracker
) -> None:
    """A 429 (here on page 2) raises RetryableError with Retry-After; nothing is re-sent."""
    rsps.get(ISSUES, json=[changed_issue(1, "one", "2026-11-25T08:00:00Z")], headers={"X-Next-Page": "2"})
    rsps.get(ISSUES, body="Retry later\n", status=429, content_type="text/plain", headers={"Retry-After": "13"})
    with pytest.raises(RetryableError) as info:
        tracker.changed_since(DEST, datetime(2026, 11, 25, 7, 0, tzinfo=UTC))
    assert info.value.retry_after == 13.0
    assert len(rsps.calls) == 2


# -- attachments -----------------------------------------------------------------------------------


def _multipart_file(request: Any) -> tuple[str, str, bytes]:
    """(filename, content type, content) of the ``file`` part of a multipart request."""
    import email.parser
    import email.policy

    body = request.body if isinstance(request.body, bytes) else request.body.read()
    head = f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            return part.get_filename(), part.get_content_type(), part.get_payload(decode=True)
    raise AssertionError("no file part")


UPLOADS = f"{PROJECT}/uploads"
UPLOADED = {
    "id": 5,
    "alt": "skærm.png",
    "url": "/uploads/66dbcd21ec5d24ed6ea225176098d52b/sk%C3%A6rm.png",
    "full_path": "/-/project/4/uploads/66dbcd21ec5d24ed6ea225176098d52b/sk%C3%A6rm.png",
    "markdown": "![skærm.png](/uploads/66dbcd21ec5d24ed6ea225176098d52b/sk%C3%A6rm.png)",
}


def test_upload_attachment_uploads_then_links_in_a_note(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """POST /projects/:id/uploads with the file, then a note embedding the returned url."""
    rsps.post(UPLOADS, status=201, json=UPLOADED)
    rsps.post(f"{ISSUES}/7/notes", status=201, json={"id": 1, "body": "x"})
    tracker.upload_attachment(
        DEST, IssueRef(key="7"), filename="skærm.png", content_type="image/png", content=b"\x89PNG data"
    )
    assert _multipart_file(rsps.calls[0].request) == ("skærm.png", "image/png", b"\x89PNG data")
    note = json.loads(rsps.calls[1].request.body)["body"]
    assert "![skærm.png](/uploads/66dbcd21ec5d24ed6ea225176098d52b/sk%C3%A6rm.png)" in note


def test_upload_attachment_escapes_a_hostile_file_name(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """A file name cannot break the link, mention anyone or run a quick action; paths are dropped."""
    rsps.post(UPLOADS, status=201, json={**UPLOADED, "url": "/uploads/abc/x.txt"})
    rsps.post(f"{ISSUES}/7/notes", status=201, json={"id": 1, "body": "x"})
    tracker.upload_attachment(
        DEST, IssueRef(key="7"), filename="C:\\tmp\\a](x) @all\r\n.txt", content_type="text/plain", content=b"x"
    )
    filename, _, _ = _multipart_file(rsps.calls[0].request)
    assert filename == "a](x) @all.txt"
    note = json.loads(rsps.calls[1].request.body)["body"]
    assert "@all" not in note
    assert "\n" not in note
    assert "a\\](x)" in note
    assert note.startswith("Attachment from the reporter: [")


def test_upload_attachment_too_large_is_permanent(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """GitLab's 413 for a file over its limit is a permanent error, and no note is written."""
    rsps.post(UPLOADS, status=413, json={"message": "413 Request Entity Too Large"})
    with pytest.raises(PermanentError, match="upload attachment"):
        tracker.upload_attachment(
            DEST, IssueRef(key="7"), filename="a.zip", content_type="application/zip", content=b""
        )
    assert len(rsps.calls) == 1


def test_upload_attachment_rate_limited_is_retryable_once(rsps: responses.RequestsMock, tracker: GitLabTracker) -> None:
    """A 429 is retryable with its Retry-After and the upload is not repeated by the library."""
    rsps.post(UPLOADS, status=429, json={"message": "Too Many Requests"}, headers={"Retry-After": "12"})
    with pytest.raises(RetryableError) as info:
        tracker.upload_attachment(DEST, IssueRef(key="7"), filename="a.txt", content_type="text/plain", content=b"x")
    assert info.value.retry_after == 12
    assert len(rsps.calls) == 1
    assert TOKEN not in str(info.value)
