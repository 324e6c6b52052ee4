"""The admin API (CONTRACT section 7) over HTTP: its own bearer token, dead letters, replays, GDPR.

Real SQLite and job runner, the in-memory tracker; a dead letter is made by a tracker that refuses.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from bridge import create_app
from bridge.bootstrap import Deps
from bridge.errors import PermanentError
from tests.conftest import post_event, report_event
from tests.fakes import FakeTracker

ADMIN_TOKEN = "admin-token-0123456789abcdef"
CHATBOT_TOKEN = "chatbot-api-token"  # what conftest configures for the status API
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ANNA = "anna@kunde.dk"


@pytest.fixture
def deps(make_deps: Callable[..., Deps]) -> Deps:
    return make_deps(admin={"token": ADMIN_TOKEN})


def file_report(client: FlaskClient, deps: Deps, **overrides: Any) -> str:
    response = post_event(client, report_event(**overrides))
    assert response.status_code == 202
    return str(response.get_json()["tracking_id"])


def dead_letter(client: FlaskClient, deps: Deps, tracker: FakeTracker, *, event_id: str = "evt_dead") -> int:
    """A report whose filing the tracker refuses for good: its job dies with the tracker's words."""
    tracking_id = file_report(client, deps, event_id=event_id)
    tracker.fail_next.setdefault("find_issue", []).append(
        PermanentError(f"gitlab find issue: 403 Forbidden for project (reporter {ANNA})")
    )
    (job,) = [
        j
        for j in deps.store.jobs(state="pending")
        if j.kind == "file_ticket" and deps.store.ticket(j.ticket_id or 0).tracking_id == tracking_id
    ]
    deps.runner.run(job.id)
    dead = deps.store.job(job.id)
    assert dead is not None
    assert dead.state == "dead"
    return job.id


# --- authentication --------------------------------------------------------------------------------


def test_without_a_configured_token_the_admin_api_does_not_exist(make_deps: Callable[..., Deps]) -> None:
    """BRIDGE_ADMIN_TOKEN unset: every admin URL, any method, with any token, is a 404 problem."""
    client = create_app(deps=make_deps()).test_client()
    calls = [
        client.get("/api/v1/admin/dead-letters"),
        client.get("/api/v1/admin/dead-letters", headers={"Authorization": f"Bearer {CHATBOT_TOKEN}"}),
        client.post("/api/v1/admin/dead-letters/1/replay", headers=ADMIN),
        client.delete("/api/v1/admin/erasures"),
        client.post("/api/v1/admin/reporters/erase", json={"email": ANNA}),
        client.get("/api/v1/admin/no-such-thing"),
        client.get("/api/v1/admin"),
    ]
    assert [r.status_code for r in calls] == [404] * len(calls)
    assert {r.mimetype for r in calls} == {"application/problem+json"}


def test_missing_or_wrong_token_is_401(client: FlaskClient) -> None:
    """No header, another scheme or a wrong token: 401 problem+json with a Bearer challenge."""
    for headers in ({}, {"Authorization": f"Basic {ADMIN_TOKEN}"}, {"Authorization": "Bearer wrong"}):
        response = client.get("/api/v1/admin/dead-letters", headers=headers)
        assert response.status_code == 401
        assert response.mimetype == "application/problem+json"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_chatbot_token_does_not_open_the_admin_api(client: FlaskClient) -> None:
    """The status API's token is refused here, and the admin token is refused there."""
    assert (
        client.get("/api/v1/admin/dead-letters", headers={"Authorization": f"Bearer {CHATBOT_TOKEN}"}).status_code
        == 401
    )
    assert client.get(f"/api/v1/tickets?email={ANNA}", headers=ADMIN).status_code == 401
    assert (
        client.get(f"/api/v1/tickets?email={ANNA}", headers={"Authorization": f"Bearer {CHATBOT_TOKEN}"}).status_code
        == 200
    )


def test_the_admin_token_opens_it(client: FlaskClient) -> None:
    """The admin token: 200 JSON, never cached; unknown admin URLs behind it are 404 problems."""
    response = client.get("/api/v1/admin/dead-letters", headers=ADMIN)
    assert response.status_code == 200
    assert response.get_json() == {"dead_letters": []}
    assert response.headers["Cache-Control"] == "no-store"
    unknown = client.get("/api/v1/admin/no-such-thing", headers=ADMIN)
    assert (unknown.status_code, unknown.mimetype) == (404, "application/problem+json")
    assert client.get("/api/v1/admin/no-such-thing").status_code == 401  # the URL list is behind the token


# --- dead letters ----------------------------------------------------------------------------------


def test_dead_letters_are_listed_without_personal_data(client: FlaskClient, deps: Deps, tracker: FakeTracker) -> None:
    """Kind, tracking ID, attempts, last error (addresses masked) and times; no reporter address."""
    job_id = dead_letter(client, deps, tracker)
    response = client.get("/api/v1/admin/dead-letters", headers=ADMIN)
    assert response.status_code == 200
    (item,) = response.get_json()["dead_letters"]
    ticket = deps.store.ticket(deps.store.job(job_id).ticket_id or 0)  # type: ignore[union-attr]
    assert (item["id"], item["kind"], item["tracking_id"], item["attempts"]) == (
        job_id,
        "file_ticket",
        ticket.tracking_id,
        1,
    )
    assert "403 Forbidden" in item["last_error"]
    assert item["finished_at"]
    assert item["created_at"]
    assert ANNA not in response.get_data(as_text=True)
    assert "Anna Jensen" not in response.get_data(as_text=True)


def test_a_dead_letter_is_replayed_over_http(client: FlaskClient, deps: Deps, tracker: FakeTracker) -> None:
    """POST .../replay queues it with a fresh horizon; it then files the issue; a second replay is 409."""
    job_id = dead_letter(client, deps, tracker)
    response = client.post(f"/api/v1/admin/dead-letters/{job_id}/replay", headers=ADMIN)
    assert response.status_code == 200
    assert response.get_json() == {"replayed": [job_id]}
    job = deps.store.job(job_id)
    assert job is not None
    assert (job.state, job.attempts) == ("pending", 0)

    deps.runner.run(job_id)
    done = deps.store.job(job_id)
    assert done is not None
    assert done.state == "done"
    assert len(tracker.issues) == 1

    again = client.post(f"/api/v1/admin/dead-letters/{job_id}/replay", headers=ADMIN)
    assert (again.status_code, again.mimetype) == (409, "application/problem+json")
    missing = client.post("/api/v1/admin/dead-letters/999999/replay", headers=ADMIN)
    assert (missing.status_code, missing.mimetype) == (404, "application/problem+json")
    assert client.get("/api/v1/admin/dead-letters", headers=ADMIN).get_json() == {"dead_letters": []}


def test_replay_all_requeues_every_dead_letter(client: FlaskClient, deps: Deps, tracker: FakeTracker) -> None:
    """POST .../replay-all replays each dead job once and names them."""
    first = dead_letter(client, deps, tracker, event_id="evt_a")
    second = dead_letter(client, deps, tracker, event_id="evt_b")
    response = client.post("/api/v1/admin/dead-letters/replay-all", headers=ADMIN)
    assert response.status_code == 200
    assert sorted(response.get_json()["replayed"]) == sorted([first, second])
    assert {deps.store.job(i).state for i in (first, second)} == {"pending"}  # type: ignore[union-attr]
    assert client.post("/api/v1/admin/dead-letters/replay-all", headers=ADMIN).get_json() == {"replayed": []}


def test_replay_needs_post(client: FlaskClient) -> None:
    """A GET on a replay URL is 405 (with the token), not a replay."""
    assert client.get("/api/v1/admin/dead-letters/1/replay", headers=ADMIN).status_code == 405


# --- personal data ---------------------------------------------------------------------------------


def test_export_over_http_is_a_json_attachment(client: FlaskClient, deps: Deps) -> None:
    """GET .../reporters/export?email= returns the document as an attachment, audited as admin-api."""
    tracking_id = file_report(client, deps)
    response = client.get("/api/v1/admin/reporters/export?email=Anna%40Kunde.dk", headers=ADMIN)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    doc = response.get_json()
    assert [t["tracking_id"] for t in doc["tickets"]] == [tracking_id]
    assert doc["reference"] in response.headers["Content-Disposition"]
    log = client.get("/api/v1/admin/erasures", headers=ADMIN).get_json()["erasures"]
    assert [(e["kind"], e["actor"], e["tickets"]) for e in log] == [("export", "admin-api", 1)]


def test_export_needs_an_address(client: FlaskClient) -> None:
    """No or a malformed email parameter is a 400 problem."""
    for query in ("", "?email=", "?email=not-an-address"):
        response = client.get(f"/api/v1/admin/reporters/export{query}", headers=ADMIN)
        assert (response.status_code, response.mimetype) == (400, "application/problem+json")


def test_erase_over_http_and_the_audit_log(client: FlaskClient, deps: Deps, tracker: FakeTracker) -> None:
    """POST .../reporters/erase erases and answers the audit record; /erasures lists it without the address."""
    tracking_id = file_report(client, deps)
    deps.runner.run(next(j.id for j in deps.store.jobs(state="pending") if j.kind == "file_ticket"))
    response = client.post("/api/v1/admin/reporters/erase", headers=ADMIN, json={"email": ANNA, "redact_tracker": True})
    assert response.status_code == 200
    body = response.get_json()
    assert (body["kind"], body["actor"], body["tickets"], body["redact_tracker"]) == ("erase", "admin-api", 1, True)
    assert body["tracker_redactions"] == 1
    ticket = deps.store.ticket_by_tracking_id(tracking_id)
    assert ticket is not None
    assert ticket.erased_at is not None
    assert ticket.reporter_email != ANNA

    log = client.get("/api/v1/admin/erasures", headers=ADMIN)
    assert [e["reference"] for e in log.get_json()["erasures"]] == [body["reference"]]
    assert ANNA not in log.get_data(as_text=True)
    assert "anna" not in json.dumps(body).lower()


@pytest.mark.parametrize(
    ("payload", "content_type", "status"),
    [
        (b'{"email": "anna@kunde.dk"}', "text/plain", 415),
        (b"[1, 2]", "application/json", 400),
        (b"{not json", "application/json", 400),
        (b"{}", "application/json", 400),
        (b'{"email": "anna@kunde.dk", "redact_tracker": "yes"}', "application/json", 400),
        (b'{"email": "anna@kunde.dk", "force": true}', "application/json", 400),
        (b'{"email": "no address"}', "application/json", 400),
    ],
    ids=["not-json-type", "array", "malformed", "no-email", "redact-not-bool", "unknown-field", "bad-email"],
)
def test_erase_refuses_bad_requests(
    client: FlaskClient, deps: Deps, payload: bytes, content_type: str, status: int
) -> None:
    """Wrong content type is 415; anything but {"email": str, "redact_tracker": bool} is 400; nothing is erased."""
    file_report(client, deps)
    response = client.post(
        "/api/v1/admin/reporters/erase", data=payload, headers={**ADMIN, "Content-Type": content_type}
    )
    assert (response.status_code, response.mimetype) == (status, "application/problem+json")
    assert deps.store.tickets_by_email(ANNA)
    assert client.get("/api/v1/admin/erasures", headers=ADMIN).get_json() == {"erasures": []}


def test_erasures_limit_is_checked(client: FlaskClient) -> None:
    """?limit= must be 1..1000."""
    for limit in ("0", "1001", "x"):
        assert client.get(f"/api/v1/admin/erasures?limit={limit}", headers=ADMIN).status_code == 400
    assert client.get("/api/v1/admin/erasures?limit=5", headers=ADMIN).status_code == 200
