"""The chatbot's status API (CONTRACT section 3) on a real SQLite store, with the filing job run for real."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from bridge import create_app
from bridge.bootstrap import Deps
from bridge.domain import SprintWindow, Status
from tests.conftest import CURRENT, Clock, post_event, report_event
from tests.fakes import FakeTracker

TOKEN = "chatbot-api-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CONTRACT_KEYS = [
    "tracking_id",
    "status",
    "status_text",
    "locale",
    "severity",
    "kind",
    "planned_for",
    "created_at",
    "updated_at",
    "history",
]
ADDED_KEYS = ["needs_support", "category"]
"""Fields added to the CONTRACT section 3 shape, after its own."""


def submit(client: FlaskClient, **overrides: Any) -> str:
    response = post_event(client, report_event(**overrides))
    assert response.status_code == 202
    return str(response.get_json()["tracking_id"])


def file_all(deps: Deps) -> None:
    """Run every pending filing job, as the worker would."""
    for job in deps.store.jobs(state="pending"):
        if job.kind == "file_ticket":
            deps.runner.run(job.id)


def ticket_id(deps: Deps, tracking_id: str) -> int:
    ticket = deps.store.ticket_by_tracking_id(tracking_id)
    assert ticket is not None
    return ticket.id


def get(client: FlaskClient, path: str, **kwargs: Any) -> Any:
    return client.get(path, headers=kwargs.pop("headers", AUTH), **kwargs)


def medium_report(event_id: str, email: str, title: str, locale: str = "da") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "report": {"title": title, "description": "Datoen er en dag forkert."},
        "reporter": {"email": email, "locale": locale},
    }


# --- authentication ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/tickets/ST-7K3Q9X2M", "/api/v1/tickets?email=anna@kunde.dk"])
def test_missing_token_is_401_problem_with_bearer_challenge(client: FlaskClient, path: str) -> None:
    """No Authorization header: 401 problem+json with WWW-Authenticate: Bearer, on both endpoints."""
    response = client.get(path)
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.get_json()["status"] == 401


@pytest.mark.parametrize(
    "header",
    ["Bearer wrong-token", f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN, "Bearer ", f"Bearer {TOKEN[:-1]}"],
)
def test_wrong_token_is_401(client: FlaskClient, deps: Deps, header: str) -> None:
    """A wrong token, a wrong scheme or an empty token is refused, even for an existing ticket."""
    tracking_id = submit(client)
    response = client.get(f"/api/v1/tickets/{tracking_id}", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert tracking_id not in response.get_data(as_text=True)


def test_scheme_is_case_insensitive(client: FlaskClient) -> None:
    """``bearer <token>`` is as good as ``Bearer <token>`` (RFC 9110 auth schemes are case-insensitive)."""
    tracking_id = submit(client)
    response = client.get(f"/api/v1/tickets/{tracking_id}", headers={"Authorization": f"bearer {TOKEN}"})
    assert response.status_code == 200


def test_unconfigured_token_refuses_everyone(make_deps: Callable[..., Deps]) -> None:
    """Without CHATBOT_API_TOKEN the API is closed (401 saying so), never open."""
    deps = make_deps(chatbot={"api_token": None})
    client = create_app(deps=deps).test_client()
    for header in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer None"}, AUTH):
        response = client.get("/api/v1/tickets?email=anna@kunde.dk", headers=header)
        assert response.status_code == 401
        assert "not configured" in response.get_json()["detail"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


# --- one ticket ----------------------------------------------------------------------------------


def test_contract_example_before_triage(client: FlaskClient) -> None:
    """Right after intake: received, Danish text, nothing decided yet, one history entry."""
    tracking_id = submit(client)
    response = get(client, f"/api/v1/tickets/{tracking_id}")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert list(body) == CONTRACT_KEYS + ADDED_KEYS
    assert body == {
        "tracking_id": tracking_id,
        "status": "received",
        "status_text": "Vi har modtaget din fejlrapport",
        "locale": "da",
        "severity": None,
        "kind": None,
        "planned_for": None,
        "created_at": "2026-11-25T10:15:00Z",
        "updated_at": "2026-11-25T10:15:00Z",
        "history": [{"status": "received", "at": "2026-11-25T10:15:00Z"}],
        "needs_support": False,
        "category": None,  # decided when the ticket is filed
    }


def test_contract_example_after_triage(client: FlaskClient, deps: Deps, clock: Clock) -> None:
    """The CONTRACT section 3 example, byte for byte apart from the random tracking ID."""
    tracking_id = submit(client)
    clock.advance(2)
    file_all(deps)
    response = get(client, f"/api/v1/tickets/{tracking_id}")
    assert response.status_code == 200
    body = response.get_json()
    assert list(body) == CONTRACT_KEYS + ADDED_KEYS
    assert list(body["planned_for"]) == ["name", "start_date", "due_date"]
    assert body == {
        "tracking_id": tracking_id,
        "status": "triaged",
        "status_text": "Planlagt som hotfix i den aktuelle sprint",
        "locale": "da",
        "severity": "critical",
        "kind": "hotfix",
        "planned_for": {"name": "Sprint 48", "start_date": "2026-11-23", "due_date": "2026-12-06"},
        "created_at": "2026-11-25T10:15:00Z",
        "updated_at": "2026-11-25T10:15:02Z",
        "history": [
            {"status": "received", "at": "2026-11-25T10:15:00Z"},
            {"status": "triaged", "at": "2026-11-25T10:15:02Z"},
        ],
        "needs_support": False,
        "category": {"name": "widget", "text": "Chat-widget"},
    }


def test_bugfix_in_next_sprint_has_its_dates_and_english_text(client: FlaskClient, deps: Deps) -> None:
    """A medium report of an English reporter: bugfix in the next sprint, with that sprint's dates."""
    tracking_id = submit(client, **medium_report("evt_en", "tom@customer.example", "Wrong date", locale="en-GB"))
    file_all(deps)
    body = get(client, f"/api/v1/tickets/{tracking_id}").get_json()
    assert (body["locale"], body["severity"], body["kind"]) == ("en", "medium", "bugfix")
    assert body["status_text"] == "Planned as a bugfix in the next sprint"
    assert body["planned_for"] == {"name": "Sprint 50", "start_date": "2026-12-07", "due_date": "2026-12-20"}


def test_unplanned_ticket_has_null_plan(client: FlaskClient, deps: Deps, tracker: FakeTracker) -> None:
    """Filed without a sprint: planned_for is null and the text says it waits to be planned."""
    tracker.window = SprintWindow(current=None, next=None)
    tracking_id = submit(client)
    file_all(deps)
    body = get(client, f"/api/v1/tickets/{tracking_id}").get_json()
    assert body["status"] == "triaged"
    assert body["planned_for"] is None
    assert body["status_text"] == "Registreret og venter på at blive planlagt"


def test_sprint_without_dates_gives_null_dates(client: FlaskClient, deps: Deps, tracker: FakeTracker) -> None:
    """A milestone without dates is still the plan; its unknown dates are null, not missing."""
    tracker.window = SprintWindow(current=type(CURRENT)(id="11", name="Sprint 48"), next=None)
    tracking_id = submit(client)
    file_all(deps)
    body = get(client, f"/api/v1/tickets/{tracking_id}").get_json()
    assert body["planned_for"] == {"name": "Sprint 48", "start_date": None, "due_date": None}


def test_history_is_oldest_first_with_each_change(client: FlaskClient, deps: Deps, clock: Clock) -> None:
    """Every reporter-facing change is in the history, in the order it happened, at its own time."""
    tracking_id = submit(client)
    clock.advance(2)
    file_all(deps)
    tid = ticket_id(deps, tracking_id)
    for status in (Status.IN_PROGRESS, Status.IN_QA, Status.RESOLVED, Status.REOPENED):
        clock.advance(3600)
        deps.store.set_status(tid, status)
    body = get(client, f"/api/v1/tickets/{tracking_id}").get_json()
    assert body["history"] == [
        {"status": "received", "at": "2026-11-25T10:15:00Z"},
        {"status": "triaged", "at": "2026-11-25T10:15:02Z"},
        {"status": "in_progress", "at": "2026-11-25T11:15:02Z"},
        {"status": "in_qa", "at": "2026-11-25T12:15:02Z"},
        {"status": "resolved", "at": "2026-11-25T13:15:02Z"},
        {"status": "reopened", "at": "2026-11-25T14:15:02Z"},
    ]
    assert (body["status"], body["status_text"]) == ("reopened", "Sagen er genåbnet")
    assert body["updated_at"] == "2026-11-25T14:15:02Z"


@pytest.mark.parametrize(
    ("reason", "text"),
    [
        ("duplicate", "Sagen er lukket uden rettelse: den er en dublet af en anden sag"),
        ("cannot_reproduce", "Sagen er lukket uden rettelse: vi kan ikke genskabe fejlen"),
        (None, "Sagen er lukket uden rettelse: den er afvist"),
    ],
)
def test_declined_text_carries_the_reason(client: FlaskClient, deps: Deps, reason: str | None, text: str) -> None:
    """A declined ticket says why, in the reporter's language (a generic reason when none is known)."""
    tracking_id = submit(client)
    file_all(deps)
    deps.store.set_status(ticket_id(deps, tracking_id), Status.DECLINED, reason=reason)
    body = get(client, f"/api/v1/tickets/{tracking_id}").get_json()
    assert (body["status"], body["status_text"]) == ("declined", text)


@pytest.mark.parametrize("tracking_id", ["ST-00000000", "ST-7K3Q9X2", "ST-7K3Q9X2MM", "ST-7K3Q9X2I", "nope", "%00"])
def test_unknown_or_malformed_id_is_404_problem(client: FlaskClient, tracking_id: str) -> None:
    """An ID that does not exist or cannot exist: 404 problem+json."""
    submit(client)
    response = get(client, f"/api/v1/tickets/{tracking_id}")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["status"] == 404


def test_lowercase_tracking_id_is_found(client: FlaskClient) -> None:
    """A tracking ID typed in lower case by the reporter still finds the ticket (answered in canonical form)."""
    tracking_id = submit(client)
    response = get(client, f"/api/v1/tickets/{tracking_id.lower()}")
    assert response.status_code == 200
    assert response.get_json()["tracking_id"] == tracking_id


def test_nothing_internal_is_returned(client: FlaskClient, deps: Deps) -> None:
    """No issue key or URL, project, reporter email, name, organisation or report text in any answer."""
    tracking_id = submit(client)
    file_all(deps)
    tid = ticket_id(deps, tracking_id)
    ticket = deps.store.ticket(tid)
    assert ticket.issue_url  # the bridge does know them
    assert ticket.issue_key
    texts = [
        get(client, f"/api/v1/tickets/{tracking_id}").get_data(as_text=True),
        get(client, "/api/v1/tickets", query_string={"email": "anna@kunde.dk"}).get_data(as_text=True),
    ]
    for text in texts:
        assert tracking_id in text
        for secret in (
            ticket.issue_url, "tracker.example", "gitlab", "acme/support", "issue", "anna@kunde.dk", "Anna Jensen",
            "Kunde A/S", "Siden viser kun en spinner", "Ingen af vores kunder", "conv_4711", "cdn.example",
            "Firefox", "needs-po-review", "declared-priority", ticket.reply_token,
        ):  # fmt: skip
            assert secret not in text, secret


# --- a reporter's tickets ------------------------------------------------------------------------


def test_email_lists_own_tickets_newest_first_without_history(client: FlaskClient, deps: Deps, clock: Clock) -> None:
    """?email= returns {"tickets": [...]}: that reporter's tickets only, newest first, case-insensitive."""
    first = submit(client)
    clock.advance(60)
    other = submit(client, **medium_report("evt_bo", "bo@firma.dk", "Bos egen sag"))
    clock.advance(60)
    second = submit(client, **medium_report("evt_anna2", "Anna@Kunde.dk", "Eksporten fejler"))
    file_all(deps)

    response = get(client, "/api/v1/tickets", query_string={"email": "ANNA@kunde.DK"})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert list(body) == ["tickets"]
    assert [t["tracking_id"] for t in body["tickets"]] == [second, first]
    for item in body["tickets"]:
        assert list(item) == CONTRACT_KEYS[:-1] + ADDED_KEYS  # same shape, without history
    assert body["tickets"][0]["status_text"].startswith("Planlagt som fejlrettelse i ")
    assert body["tickets"][1]["status_text"] == "Planlagt som hotfix i den aktuelle sprint"
    for item in body["tickets"]:  # the list and the single-ticket answer agree
        single = get(client, f"/api/v1/tickets/{item['tracking_id']}").get_json()
        assert item == {k: v for k, v in single.items() if k != "history"}
    assert other not in response.get_data(as_text=True)
    assert "Bos egen sag" not in response.get_data(as_text=True)

    bo = get(client, "/api/v1/tickets", query_string={"email": "bo@firma.dk"}).get_json()
    assert [t["tracking_id"] for t in bo["tickets"]] == [other]


def test_email_with_no_tickets_is_an_empty_list(client: FlaskClient) -> None:
    """An address without tickets is not an error: an empty list (and no hint about other reporters)."""
    submit(client)
    response = get(client, "/api/v1/tickets", query_string={"email": "nobody@kunde.dk"})
    assert response.status_code == 200
    assert response.get_json() == {"tickets": []}


def test_email_is_matched_exactly_not_by_substring(client: FlaskClient) -> None:
    """Part of an address, or an address with wildcards, matches nothing."""
    submit(client)
    for email in ("nna@kunde.dk", "anna@kunde.d", "%@kunde.dk", "anna@kunde.dk.evil"):
        assert get(client, "/api/v1/tickets", query_string={"email": email}).get_json() == {"tickets": []}


def test_unencoded_plus_in_email_still_matches(client: FlaskClient) -> None:
    """``?email=anna+support@...`` sent without percent-encoding (the + arrives as a space) still matches."""
    tracking_id = submit(client, event_id="evt_plus", reporter={"email": "anna+support@kunde.dk", "locale": "da"})
    raw = get(client, "/api/v1/tickets?email=anna+support@kunde.dk").get_json()
    encoded = get(client, "/api/v1/tickets?email=anna%2Bsupport%40kunde.dk").get_json()
    assert [t["tracking_id"] for t in raw["tickets"]] == [tracking_id]
    assert encoded == raw


@pytest.mark.parametrize("query", ["", "?email=", "?email=%20", "?email=anna", "?email=anna@", "?email=a@b@c.dk",
                                   "?mail=anna@kunde.dk", "?email=" + "a" * 320 + "@kunde.dk"])  # fmt: skip
def test_missing_or_invalid_email_is_400_problem(client: FlaskClient, query: str) -> None:
    """No usable address: 400 problem+json, never "all tickets"."""
    submit(client)
    response = get(client, f"/api/v1/tickets{query}")
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["status"] == 400
