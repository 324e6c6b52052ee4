"""POST /webhooks/chatbot against a real SQLite file: CONTRACT section 2, answer by answer."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlparse

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from bridge.adapters.store.models import Delivery, Followup, StatusEvent, Ticket
from bridge.bootstrap import Deps
from bridge.tracking import is_tracking_id, valid_status_signature
from tests.conftest import SIGNING_SECRET, post_event, report_event, signed_headers
from tests.fakes import FakeTracker


def count(deps: Deps, model: type) -> int:
    with deps.store.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def filing_jobs(deps: Deps) -> int:
    return sum(1 for job in deps.store.jobs() if job.kind == "file_ticket")


def test_report_is_accepted_with_tracking_id_and_signed_status_url(client: FlaskClient, deps: Deps) -> None:
    """A valid signed report answers 202 with a tracking ID and a status link that verifies."""
    response = post_event(client, report_event())
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "received"
    assert is_tracking_id(body["tracking_id"])
    url = urlparse(body["status_url"])
    assert url.netloc == "bridge.example"
    assert url.path == f"/t/{body['tracking_id']}"
    assert valid_status_signature("status-link-key", body["tracking_id"], parse_qs(url.query)["s"][0])


def test_report_is_stored_with_history_and_one_job(client: FlaskClient, deps: Deps) -> None:
    """The report, its 'received' status and exactly one filing job are in the database."""
    body = post_event(client, report_event()).get_json()
    ticket = deps.store.ticket_by_tracking_id(body["tracking_id"])
    assert ticket is not None
    assert ticket.reporter_email == "anna@kunde.dk"
    assert ticket.locale == "da"
    assert ticket.title == "Chat-widget indlæses ikke"
    assert ticket.environment["widget_version"] == "4.2.1"
    assert ticket.attachments[0]["filename"] == "skærmbillede.png"
    assert [e.status for e in deps.store.history(ticket.id)] == ["received"]
    assert sorted((j.kind, j.lane, j.state) for j in deps.store.jobs()) == [
        ("file_ticket", "tracker", "pending"),
        ("notify", "notify", "pending"),  # the acknowledgement email
    ]


def test_webhook_makes_no_tracker_call(client: FlaskClient, tracker: FakeTracker) -> None:
    """The request path only stores and queues; the tracker is not touched."""
    assert post_event(client, report_event()).status_code == 202
    assert tracker.calls == []


def test_repeated_event_id_answers_200_with_same_body_and_creates_nothing(client: FlaskClient, deps: Deps) -> None:
    """A redelivered event_id gets 200 and the first answer; no second ticket or job."""
    first = post_event(client, report_event())
    second = post_event(client, report_event())
    assert (first.status_code, second.status_code) == (202, 200)
    assert second.get_json() == first.get_json()
    assert count(deps, Ticket) == 1
    assert filing_jobs(deps) == 1


def test_a_repeated_idempotency_key_or_event_id_is_one_report(client: FlaskClient, deps: Deps) -> None:
    """With Idempotency-Key, two event_ids under one key are one report; and one event_id under two
    keys is one report too (the key is not signed: a new one must not make a new ticket)."""
    a = post_event(client, report_event(event_id="evt_a"), **{"Idempotency-Key": "key-1"})
    b = post_event(client, report_event(event_id="evt_b"), **{"Idempotency-Key": "key-1"})
    c = post_event(client, report_event(event_id="evt_a"), **{"Idempotency-Key": "key-2"})
    d = post_event(client, report_event(event_id="evt_c"), **{"Idempotency-Key": "key-3"})
    assert (a.status_code, b.status_code, c.status_code, d.status_code) == (202, 200, 200, 202)
    assert b.get_json() == c.get_json() == a.get_json()
    assert count(deps, Ticket) == 2


def test_a_captured_request_with_a_new_idempotency_key_creates_nothing(client: FlaskClient, deps: Deps) -> None:
    """Replaying a signed request inside the 300 s window with a fresh Idempotency-Key (the header is
    not signed) answers the first answer and creates no second ticket."""
    body = json.dumps(report_event()).encode()
    headers = signed_headers(body)
    first = client.post("/webhooks/chatbot", data=body, headers=headers)
    replayed = client.post("/webhooks/chatbot", data=body, headers={**headers, "Idempotency-Key": "fresh-1"})
    again = client.post("/webhooks/chatbot", data=body, headers={**headers, "Idempotency-Key": "fresh-2"})
    assert (first.status_code, replayed.status_code, again.status_code) == (202, 200, 200)
    assert replayed.get_json() == again.get_json() == first.get_json()
    assert count(deps, Ticket) == 1
    assert filing_jobs(deps) == 1


def test_another_reporters_event_id_or_key_gets_409_not_their_answer(client: FlaskClient, deps: Deps) -> None:
    """A stored answer belongs to one reporter: reusing their event_id or Idempotency-Key from another
    address is a 409 problem that names neither their tracking ID nor their status link; nothing is stored."""
    anna = post_event(client, report_event(), **{"Idempotency-Key": "anna-key"}).get_json()
    eve = {"email": "eve@evil.example", "name": "Eve"}
    by_event_id = post_event(client, report_event(reporter=eve))
    by_key = post_event(client, report_event(event_id="evt_eve", reporter=eve), **{"Idempotency-Key": "anna-key"})
    for response in (by_event_id, by_key):
        assert response.status_code == 409
        assert response.mimetype == "application/problem+json"
        text = response.get_data(as_text=True)
        assert anna["tracking_id"] not in text
        assert anna["status_url"] not in text
    assert count(deps, Ticket) == 1
    same_reporter = post_event(client, report_event(reporter={"email": "ANNA@kunde.dk"}))
    assert (same_reporter.status_code, same_reporter.get_json()) == (200, anna)


def test_an_event_id_reused_by_another_event_type_gets_409(client: FlaskClient, deps: Deps) -> None:
    """A follow-up that reuses the event_id of the reporter's own report is not that report: 409."""
    tracking_id = post_event(client, report_event()).get_json()["tracking_id"]
    response = post_event(client, followup_event(tracking_id, event_id=report_event()["event_id"]))
    assert response.status_code == 409
    assert count(deps, Followup) == 0


def test_missing_signature_is_401_problem(client: FlaskClient, deps: Deps) -> None:
    """No signature header: 401 as problem+json, nothing stored."""
    response = client.post(
        "/webhooks/chatbot", data=json.dumps(report_event()), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["status"] == 401
    assert count(deps, Ticket) == 0
    assert count(deps, Delivery) == 0


def test_wrong_secret_is_401(client: FlaskClient) -> None:
    """A signature made with another secret is refused."""
    body = json.dumps(report_event()).encode()
    response = client.post("/webhooks/chatbot", data=body, headers=signed_headers(body, secret="other"))
    assert response.status_code == 401
    assert "does not match" in response.get_json()["detail"]


def test_tampered_body_is_401(client: FlaskClient) -> None:
    """The signature covers the raw body: one changed byte invalidates it."""
    body = json.dumps(report_event()).encode()
    headers = signed_headers(body)
    response = client.post("/webhooks/chatbot", data=body.replace(b"Anna", b"Anne"), headers=headers)
    assert response.status_code == 401


def test_stale_and_future_timestamps_are_401(client: FlaskClient) -> None:
    """Timestamps more than 300 s away from the server clock are replay-protected."""
    body = json.dumps(report_event()).encode()
    for skew in (-301, 301):
        response = client.post("/webhooks/chatbot", data=body, headers=signed_headers(body, at=int(time.time()) + skew))
        assert response.status_code == 401, skew
        assert "300 s" in response.get_json()["detail"]
    ok = client.post("/webhooks/chatbot", data=body, headers=signed_headers(body, at=int(time.time()) - 250))
    assert ok.status_code == 202


def test_secret_rotation_accepts_any_configured_secret_and_any_v1(make_deps, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Two secrets configured and two v1 values sent: one valid pair is enough."""
    from bridge import create_app
    from bridge.web.signatures import sign

    deps = make_deps(chatbot={"signing_secrets": ["old-secret", "new-secret"]})
    client = create_app(deps=deps).test_client()
    body = json.dumps(report_event()).encode()
    t = int(time.time())
    header = f"t={t},v1={sign('retired', t, body)},v1={sign('new-secret', t, body)}"
    response = client.post(
        "/webhooks/chatbot", data=body, headers={"Content-Type": "application/json", "X-Smarttalk-Signature": header}
    )
    assert response.status_code == 202


def test_malformed_signature_header_is_401(client: FlaskClient) -> None:
    """A header without t= or v1= is refused with a reason."""
    body = json.dumps(report_event()).encode()
    response = client.post(
        "/webhooks/chatbot",
        data=body,
        headers={"Content-Type": "application/json", "X-Smarttalk-Signature": "sha256=abc"},
    )
    assert response.status_code == 401
    assert "malformed" in response.get_json()["detail"]


def test_malformed_json_is_400(client: FlaskClient) -> None:
    """A signed body that is not JSON: 400 problem."""
    body = b'{"event_id": "x", '
    response = client.post("/webhooks/chatbot", data=body, headers=signed_headers(body))
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["title"] == "Malformed JSON"


def test_schema_errors_list_every_field(client: FlaskClient, deps: Deps) -> None:
    """Missing and invalid fields are all reported at once, by dotted path."""
    event = report_event()
    del event["report"]["title"]
    event["report"]["description"] = "   "
    event["reporter"]["email"] = "not-an-email"
    response = post_event(client, event)
    assert response.status_code == 400
    fields = {e["field"] for e in response.get_json()["errors"]}
    assert fields == {"report.title", "report.description", "reporter.email"}
    assert count(deps, Ticket) == 0


def test_unknown_event_type_is_400(client: FlaskClient) -> None:
    """Only report.created and report.followup exist."""
    response = post_event(client, report_event(type="report.deleted"))
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == "type"


def test_wrong_content_type_is_415(client: FlaskClient) -> None:
    """Form-encoded or text bodies get 415 even when signed."""
    body = json.dumps(report_event()).encode()
    headers = {**signed_headers(body), "Content-Type": "text/plain"}
    response = client.post("/webhooks/chatbot", data=body, headers=headers)
    assert response.status_code == 415
    assert response.mimetype == "application/problem+json"


def test_json_with_charset_parameter_is_accepted(client: FlaskClient) -> None:
    """application/json; charset=utf-8 is still JSON."""
    body = json.dumps(report_event()).encode()
    headers = {**signed_headers(body), "Content-Type": "application/json; charset=utf-8"}
    assert client.post("/webhooks/chatbot", data=body, headers=headers).status_code == 202


def test_body_over_limit_is_413(client: FlaskClient, deps: Deps) -> None:
    """A body over 1 MiB is refused before it is read, as problem+json."""
    event = report_event()
    event["report"]["description"] = "x" * (1024 * 1024)
    response = post_event(client, event)
    assert response.status_code == 413
    assert response.mimetype == "application/problem+json"
    assert count(deps, Ticket) == 0


def test_unknown_fields_are_ignored(client: FlaskClient) -> None:
    """The chatbot may add fields; they do not break intake."""
    event = report_event(channel_meta={"x": 1})
    event["report"]["sentiment"] = "angry"
    assert post_event(client, event).status_code == 202


def test_locale_falls_back_to_english(client: FlaskClient, deps: Deps) -> None:
    """da-DK becomes da; de-DE becomes en (only da and en are supported)."""
    for locale, expected, event_id in (("da-DK", "da", "e1"), ("de-DE", "en", "e2"), ("EN_gb", "en", "e3")):
        event = report_event(event_id=event_id)
        event["reporter"]["locale"] = locale
        tracking_id = post_event(client, event).get_json()["tracking_id"]
        ticket = deps.store.ticket_by_tracking_id(tracking_id)
        assert ticket is not None
        assert ticket.locale == expected


def followup_event(tracking_id: str, **overrides: object) -> dict[str, object]:
    event: dict[str, object] = {
        "event_id": "evt_01JD9A7F3C",
        "type": "report.followup",
        "occurred_at": "2026-11-27T08:02:00Z",
        "tracking_id": tracking_id,
        "reporter": {"email": "anna@kunde.dk"},
        "message": "Det virker stadig ikke efter opdateringen.",
        "not_fixed": True,
    }
    event.update(overrides)
    return event


def test_followup_on_own_ticket_is_accepted_and_queued(client: FlaskClient, deps: Deps) -> None:
    """A follow-up names the tracking ID; it is stored with an apply_followup job."""
    tracking_id = post_event(client, report_event()).get_json()["tracking_id"]
    response = post_event(client, followup_event(tracking_id, reporter={"email": "ANNA@kunde.dk"}))
    assert response.status_code == 202
    assert response.get_json()["tracking_id"] == tracking_id
    assert sorted(j.kind for j in deps.store.jobs() if j.lane == "tracker") == ["apply_followup", "file_ticket"]
    assert post_event(client, followup_event(tracking_id)).status_code == 200


def test_followup_for_unknown_ticket_or_other_reporter_is_404(client: FlaskClient, deps: Deps) -> None:
    """Unknown tracking IDs and someone else's ticket look the same: 404."""
    tracking_id = post_event(client, report_event()).get_json()["tracking_id"]
    other = post_event(client, followup_event(tracking_id, event_id="e2", reporter={"email": "eve@evil.example"}))
    unknown = post_event(client, followup_event("ST-00000000", event_id="e3"))
    assert (other.status_code, unknown.status_code) == (404, 404)
    assert other.mimetype == "application/problem+json"
    assert filing_jobs(deps) == 1


def test_another_reporters_followup_event_id_does_not_return_their_answer(client: FlaskClient, deps: Deps) -> None:
    """A follow-up for a ticket that is not the sender's, reusing the event_id of its reporter's
    follow-up, gets 409, not the reporter's stored answer."""
    tracking_id = post_event(client, report_event()).get_json()["tracking_id"]
    assert post_event(client, followup_event(tracking_id)).status_code == 202
    stolen = post_event(client, followup_event("ST-00000000", reporter={"email": "eve@evil.example"}))
    assert stolen.status_code == 409
    assert tracking_id not in stolen.get_data(as_text=True)
    assert count(deps, Followup) == 1


@pytest.mark.parametrize("address", ["x@kunde.dk.", "anna@kunde", "a..b@kunde.dk", "anna@@kunde.dk", "an na@kunde.dk"])
def test_an_address_no_email_can_be_sent_to_is_a_400(client: FlaskClient, deps: Deps, address: str) -> None:
    """reporter.email is checked as an address (email-validator, no DNS): one that a To: header cannot
    hold is refused now, with the field named, instead of failing every email for 72 h later."""
    report = post_event(client, report_event(reporter={"email": address}))
    tracking_id = post_event(client, report_event(event_id="evt_ok")).get_json()["tracking_id"]
    followup = post_event(client, followup_event(tracking_id, reporter={"email": address}))
    for response in (report, followup):
        assert response.status_code == 400
        assert [e["field"] for e in response.get_json()["errors"]] == ["reporter.email"]
    assert count(deps, Ticket) == 1


def test_a_valid_address_is_stored_normalised(client: FlaskClient, deps: Deps) -> None:
    """The domain is stored in lower case (as email-validator normalises it); the local part as given."""
    body = post_event(client, report_event(reporter={"email": " Anna.Jensen@Kunde.DK "})).get_json()
    ticket = deps.store.ticket_by_tracking_id(body["tracking_id"])
    assert ticket is not None
    assert ticket.reporter_email == "Anna.Jensen@kunde.dk"


def test_get_on_webhook_is_405_problem(client: FlaskClient) -> None:
    """Wrong method: 405 as problem+json, never an HTML page."""
    response = client.get("/webhooks/chatbot")
    assert response.status_code == 405
    assert response.mimetype == "application/problem+json"


def test_signing_secret_is_never_echoed(client: FlaskClient) -> None:
    """Error answers do not contain the secret."""
    body = json.dumps(report_event()).encode()
    response = client.post("/webhooks/chatbot", data=body, headers=signed_headers(body, secret="other"))
    assert SIGNING_SECRET not in response.get_data(as_text=True)


def test_status_history_rows_match_ticket(client: FlaskClient, deps: Deps) -> None:
    """Exactly one history row per accepted report."""
    post_event(client, report_event(event_id="a"))
    post_event(client, report_event(event_id="b"))
    post_event(client, report_event(event_id="a"))
    assert count(deps, StatusEvent) == 2


def test_database_outage_is_503_with_retry_after(deps: Deps) -> None:
    """When the report cannot be stored the chatbot is told to retry, never that it was accepted."""
    from dataclasses import replace

    from bridge import create_app
    from bridge.adapters.store.db import make_engine
    from bridge.adapters.store.repository import Store

    down = Store(make_engine("postgresql://postgres@127.0.0.1:1/test?connect_timeout=2"), clock=deps.clock)
    client = create_app(deps=replace(deps, store=down)).test_client()
    response = post_event(client, report_event())
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.mimetype == "application/problem+json"
    assert "Traceback" not in response.get_data(as_text=True)


def test_very_long_idempotency_key_still_deduplicates(client: FlaskClient, deps: Deps) -> None:
    """A key longer than the column is stored by its hash: 202, then 200 for the repeat, never a 5xx."""
    key = "k" * 1000
    first = post_event(client, report_event(event_id="a1"), **{"Idempotency-Key": key})
    second = post_event(client, report_event(event_id="a2"), **{"Idempotency-Key": key})
    assert (first.status_code, second.status_code) == (202, 200)
    assert second.get_json() == first.get_json()
