"""The ``chatbot_callback`` job against a ``responses``-mocked chatbot: body, signature, error classes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import responses
from flask.testing import FlaskClient

from bridge import create_app
from bridge.adapters.store.models import Job
from bridge.bootstrap import Deps
from bridge.domain import Status
from bridge.errors import PermanentError, RetryableError
from bridge.pipeline.notifying.callback import ChatbotCallback
from bridge.web.signatures import verify_chatbot_signature
from tests.conftest import SIGNING_SECRET, Clock, post_event, report_event

CALLBACK_URL = "https://chatbot.example/hooks/bridge"


@pytest.fixture
def deps(make_deps: Callable[..., Deps]) -> Deps:
    """Deps with the callback switched on (overrides the conftest fixture, so ``client`` uses it too)."""
    return make_deps(chatbot={"callback_url": CALLBACK_URL, "signing_secrets": [SIGNING_SECRET, "older-secret"]})


@pytest.fixture
def chatbot() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def handler(deps: Deps, clock: Clock, **chatbot_settings: Any) -> ChatbotCallback:
    settings = deps.settings
    if chatbot_settings:
        settings = settings.model_copy(update={"chatbot": settings.chatbot.model_copy(update=chatbot_settings)})
    return ChatbotCallback(store=deps.store, settings=settings, mappings=deps.mappings, clock=clock)


def submit(client: FlaskClient, **overrides: Any) -> str:
    response = post_event(client, report_event(**overrides))
    assert response.status_code == 202
    return str(response.get_json()["tracking_id"])


def callback_jobs(deps: Deps) -> list[Job]:
    """Callback jobs, oldest first."""
    return sorted((j for j in deps.store.jobs() if j.kind == "chatbot_callback"), key=lambda j: j.id)


def triaged(client: FlaskClient, deps: Deps, clock: Clock) -> str:
    """A filed report (received at 10:15:00, triaged at 10:15:02)."""
    tracking_id = submit(client)
    clock.advance(2)
    (filing,) = [j for j in deps.store.jobs() if j.kind == "file_ticket"]
    deps.runner.run(filing.id)
    return tracking_id


def test_status_change_is_posted_signed_with_the_reporter_view(
    client: FlaskClient, deps: Deps, clock: Clock, chatbot: responses.RequestsMock
) -> None:
    """Each status event is POSTed as ticket.status_changed, signed with the first secret, verifiable by the chatbot."""
    tracking_id = triaged(client, deps, clock)
    chatbot.post(CALLBACK_URL, status=204)
    received, triaged_job = callback_jobs(deps)
    clock.advance(5)
    deps.runner.run(received.id)
    deps.runner.run(triaged_job.id)

    assert [deps.store.job(j.id).state for j in (received, triaged_job)] == ["done", "done"]  # type: ignore[union-attr]
    assert len(chatbot.calls) == 2
    request = chatbot.calls[1].request
    assert request.headers["Content-Type"] == "application/json"
    body = request.body if isinstance(request.body, bytes) else str(request.body).encode()
    assert json.loads(body) == {
        "event": "ticket.status_changed",
        "tracking_id": tracking_id,
        "status": "triaged",
        "status_text": "Planlagt som hotfix i den aktuelle sprint",
        "locale": "da",
        "at": "2026-11-25T10:15:02Z",
        "planned_for": {"name": "Sprint 48", "start_date": "2026-11-23", "due_date": "2026-12-06"},
    }
    header = request.headers["X-Smarttalk-Signature"]
    assert header.startswith(f"t={int(clock.now.timestamp())},v1=")
    now = clock.now.timestamp()
    verify_chatbot_signature(header, body, secrets=[SIGNING_SECRET], now=now, tolerance=300)  # the first secret
    with pytest.raises(Exception, match="does not match"):
        verify_chatbot_signature(header, body, secrets=["older-secret"], now=now, tolerance=300)
    with pytest.raises(Exception, match="does not match"):
        verify_chatbot_signature(header, body + b" ", secrets=[SIGNING_SECRET], now=now, tolerance=300)
    assert request.headers["Idempotency-Key"] == f"ticket.status_changed:{triaged_job.subject_id}"


def test_each_event_reports_its_own_status(
    client: FlaskClient, deps: Deps, clock: Clock, chatbot: responses.RequestsMock
) -> None:
    """A callback sent late still describes its own event (received), not the ticket's newer status."""
    tracking_id = triaged(client, deps, clock)
    chatbot.post(CALLBACK_URL, status=200)
    received = callback_jobs(deps)[0]
    handler(deps, clock)(received)
    body = json.loads(chatbot.calls[0].request.body)  # type: ignore[arg-type]
    assert (body["tracking_id"], body["status"], body["at"]) == (tracking_id, "received", "2026-11-25T10:15:00Z")
    assert body["status_text"] == "Vi har modtaget din fejlrapport"


def test_declined_english_reporter_gets_english_reason(
    client: FlaskClient, deps: Deps, clock: Clock, chatbot: responses.RequestsMock
) -> None:
    """The text is in the reporter's language and carries the decline reason."""
    tracking_id = submit(client, reporter={"email": "tom@customer.example", "locale": "en"})
    ticket = deps.store.ticket_by_tracking_id(tracking_id)
    assert ticket is not None
    deps.store.set_status(ticket.id, Status.DECLINED, reason="duplicate")
    chatbot.post(CALLBACK_URL, status=202)
    handler(deps, clock)(callback_jobs(deps)[-1])
    body = json.loads(chatbot.calls[0].request.body)  # type: ignore[arg-type]
    assert (body["status"], body["locale"], body["planned_for"]) == ("declined", "en", None)
    assert body["status_text"] == "Closed without a fix: it duplicates another ticket"


def test_nothing_internal_is_sent(
    client: FlaskClient, deps: Deps, clock: Clock, chatbot: responses.RequestsMock
) -> None:
    """The callback body has no issue key/URL, email, name or report text."""
    tracking_id = triaged(client, deps, clock)
    chatbot.post(CALLBACK_URL, status=200)
    handler(deps, clock)(callback_jobs(deps)[-1])
    text = str(chatbot.calls[0].request.body)
    ticket = deps.store.ticket_by_tracking_id(tracking_id)
    assert ticket is not None
    assert ticket.issue_url
    for secret in (ticket.issue_url, "tracker.example", "anna@kunde.dk", "Anna Jensen", "Kunde A/S", "spinner"):
        assert secret not in text, secret


def test_503_with_retry_after_is_retryable_with_that_delay(
    client: FlaskClient, deps: Deps, clock: Clock, chatbot: responses.RequestsMock
) -> None:
    """A 503 with Retry-After: RetryableError carrying the delay; the runner reschedules after it."""
    submit(client)
    (job,) = callback_jobs(deps)
    chatbot.post(CALLBACK_URL, status=503, headers={"Retry-After": "120"}, body="maintenance")
    with pytest.raises(RetryableError) as caught:
        handler(deps, clock)(job)
    assert caught.value.retry_after == 120
    assert "HTTP 503" in str(caught.value)

    deps.runner.run(job.id)
    stored = deps.store.job(job.id)
    assert stored is not None
    assert stored.state == "pending"
    assert 120 <= (stored.next_attempt_at - clock.now).total_seconds() <= 121
    assert "503" in (stored.last_error or "")


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 504])
def test_transient_statuses_are_retryable(
    client: FlaskClient, deps: Deps, clock: Clock, chatbot: responses.RequestsMock, status: int
) -> None:
    """Timeouts, too-early, rate limits and server errors are retried."""
    submit(client)
    chatbot.post(CALLBACK_URL, status=status)
    with pytest.raises(RetryableError, match=f"HTTP {status}"):
        handler(deps, clock)(callback_jobs(deps)[0])


def test_connection_error_is_retryable(
    client: FlaskClient, deps: Deps, clock: Clock, chatbot: responses.RequestsMock
) -> None:
    """The chatbot unreachable: retry later."""
    submit(client)
    chatbot.post(CALLBACK_URL, body=requests.ConnectionError("connection refused"))
    with pytest.raises(RetryableError, match="connection refused"):
        handler(deps, clock)(callback_jobs(deps)[0])


@pytest.mark.parametrize("status", [400, 401, 404, 410, 302])
def test_client_errors_are_permanent(
    client: FlaskClient, deps: Deps, clock: Clock, chatbot: responses.RequestsMock, status: int
) -> None:
    """A 400 (or other non-retryable 4xx, or a redirect) is not retried: PermanentError naming the status."""
    submit(client)
    chatbot.post(CALLBACK_URL, status=status, body="bad payload", headers={"Location": "https://elsewhere.example/"})
    with pytest.raises(PermanentError, match=f"HTTP {status}"):
        handler(deps, clock)(callback_jobs(deps)[0])
    assert len(chatbot.calls) == 1  # a redirect is not followed


def test_400_ends_the_job_dead_with_the_status(
    client: FlaskClient, deps: Deps, clock: Clock, chatbot: responses.RequestsMock
) -> None:
    """Through the runner a 400 is a dead letter with the reason, not a retry."""
    submit(client)
    (job,) = callback_jobs(deps)
    chatbot.post(CALLBACK_URL, status=400, body="unknown tracking_id")
    deps.runner.run(job.id)
    stored = deps.store.job(job.id)
    assert stored is not None
    assert stored.state == "dead"
    assert "HTTP 400" in (stored.last_error or "")


def test_unset_url_sends_nothing(
    client: FlaskClient, deps: Deps, clock: Clock, chatbot: responses.RequestsMock
) -> None:
    """With the callback URL removed after the job was queued, the job does nothing and succeeds."""
    submit(client)
    handler(deps, clock, callback_url=None)(callback_jobs(deps)[0])
    assert len(chatbot.calls) == 0


def test_no_callback_jobs_without_url(make_deps: Callable[..., Deps], clock: Clock) -> None:
    """Without a callback URL no callback job is even created."""
    plain = make_deps()
    assert plain.settings.chatbot.callback_url is None
    submit(create_app(deps=plain).test_client())
    assert callback_jobs(plain) == []
