"""Abuse limits: per-reporter rate limits, body size limits per endpoint, timeouts on every outbound call."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from bridge import create_app
from bridge.adapters.store.models import Delivery, Job, Ticket
from bridge.bootstrap import Deps
from bridge.config import ImapSettings
from bridge.errors import RetryableError
from bridge.limits import seconds_until_free
from tests.conftest import Clock, post_event, report_event

LIMITED = {"reports_per_reporter_hour": 3, "followups_per_reporter_hour": 2}


@pytest.fixture
def deps(make_deps: Callable[..., Deps]) -> Deps:
    return make_deps(limits=LIMITED)


def count(deps: Deps, model: type) -> int:
    with deps.store.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def deliveries(deps: Deps) -> int:
    """Chatbot deliveries recorded (each also records its event id, under ``chatbot:event``)."""
    with deps.store.session() as session:
        return int(session.scalar(select(func.count()).where(Delivery.source == "chatbot")) or 0)


def report_from(email: str, n: int) -> dict[str, Any]:
    return report_event(event_id=f"evt_{email}_{n}", reporter={"email": email, "name": "Anna Jensen", "locale": "da"})


def followup(tracking_id: str, n: int, email: str = "anna@kunde.dk") -> dict[str, Any]:
    return {
        "event_id": f"evt_followup_{n}",
        "type": "report.followup",
        "tracking_id": tracking_id,
        "reporter": {"email": email},
        "message": f"Stadig i stykker ({n})",
    }


# --- rate limits per reporter ------------------------------------------------------------------


def test_an_outage_burst_from_one_connection_is_accepted_whole(make_deps: Callable[..., Deps], clock: Clock) -> None:
    """Hundreds of customers through the chatbot's one connection: every report is accepted."""
    deps = make_deps(limits={"reports_per_reporter_hour": 1})
    client = create_app(deps=deps).test_client()
    answers = [post_event(client, report_from(f"kunde{n}@firma{n % 7}.dk", n)).status_code for n in range(120)]
    assert answers == [202] * 120
    assert count(deps, Ticket) == 120


def test_a_flooding_reporter_gets_429_with_retry_after_and_nothing_is_stored(
    client: FlaskClient, deps: Deps, clock: Clock
) -> None:
    """The fourth report in an hour from one address: 429 problem+json with Retry-After; not stored."""
    for n in range(3):
        assert post_event(client, report_from("anna@kunde.dk", n)).status_code == 202
        clock.advance(600)
    refused = post_event(client, report_from("Anna@Kunde.DK", 3))  # the address, whatever its case
    assert refused.status_code == 429
    assert refused.mimetype == "application/problem+json"
    body = refused.get_json()
    assert body["type"].endswith("/rate-limited")
    assert body["status"] == 429
    assert "more than 3 reports" in body["detail"]
    # The first report (30 minutes ago) leaves the window in 30 minutes: then one more fits.
    assert refused.headers["Retry-After"] == "1800"
    assert body["retry_after"] == 1800
    assert "anna" not in refused.get_data(as_text=True).lower()
    assert count(deps, Ticket) == 3
    assert deliveries(deps) == 3  # the refused event is not recorded: its retry is a new attempt

    # Another reporter is not affected.
    assert post_event(client, report_from("bo@kunde.dk", 1)).status_code == 202


def test_the_chatbot_retry_after_retry_after_is_accepted(client: FlaskClient, deps: Deps, clock: Clock) -> None:
    """A refused report sent again once the window moved on is accepted (the 429 lost nothing)."""
    for n in range(3):
        post_event(client, report_from("anna@kunde.dk", n))
    refused = post_event(client, report_from("anna@kunde.dk", 3))
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "3600"
    clock.advance(int(refused.headers["Retry-After"]))
    again = post_event(client, report_from("anna@kunde.dk", 3))
    assert again.status_code == 202
    assert count(deps, Ticket) == 4


def test_a_redelivered_event_never_counts_twice(client: FlaskClient, deps: Deps) -> None:
    """Repeats of an accepted event answer 200 (even once the limit is reached) and use no quota."""
    first = post_event(client, report_from("anna@kunde.dk", 0))
    for _ in range(3):
        assert post_event(client, report_from("anna@kunde.dk", 0)).status_code == 200
    assert post_event(client, report_from("anna@kunde.dk", 1)).status_code == 202
    assert post_event(client, report_from("anna@kunde.dk", 2)).status_code == 202
    assert post_event(client, report_from("anna@kunde.dk", 3)).status_code == 429
    repeat = post_event(client, report_from("anna@kunde.dk", 0))
    assert repeat.status_code == 200
    assert repeat.get_json() == first.get_json()
    assert count(deps, Ticket) == 3


def test_follow_ups_are_limited_separately(client: FlaskClient, deps: Deps) -> None:
    """Two follow-ups an hour (here): the third is 429; reports have their own quota."""
    tracking_id = post_event(client, report_from("anna@kunde.dk", 0)).get_json()["tracking_id"]
    assert post_event(client, followup(tracking_id, 1)).status_code == 202
    assert post_event(client, followup(tracking_id, 1)).status_code == 200  # a repeat: no quota used
    assert post_event(client, followup(tracking_id, 2)).status_code == 202
    refused = post_event(client, followup(tracking_id, 3))
    assert refused.status_code == 429
    assert "follow-ups" in refused.get_json()["detail"]
    assert int(refused.headers["Retry-After"]) > 3500
    assert post_event(client, report_from("anna@kunde.dk", 1)).status_code == 202
    # An unknown ticket is still 404, not 429: the limit only counts what could be stored.
    assert post_event(client, followup("ST-AAAAAAAA", 4)).status_code == 404


def test_email_tickets_do_not_use_the_chatbot_quota(client: FlaskClient, deps: Deps) -> None:
    """The chatbot limit counts chatbot reports; email has its own (held for review, per sender)."""
    with deps.store.session() as session:
        for n in range(5):
            session.add(
                Ticket(
                    tracking_id=f"ST-EMAIL00{n}",
                    status="received",
                    channel="email",
                    locale="da",
                    reporter_email="anna@kunde.dk",
                    title="t",
                    description="d",
                    environment={},
                    attachments=[],
                    created_at=deps.clock(),
                    updated_at=deps.clock(),
                )
            )
    assert post_event(client, report_from("anna@kunde.dk", 0)).status_code == 202


def test_refusals_are_counted_in_the_metrics(client: FlaskClient, deps: Deps) -> None:
    from bridge.metrics import REPORTS

    before = REPORTS.labels(channel="chatbot", outcome="rejected_rate_limited")._value.get()
    for n in range(4):
        post_event(client, report_from("anna@kunde.dk", n))
    assert REPORTS.labels(channel="chatbot", outcome="rejected_rate_limited")._value.get() == before + 1


def test_seconds_until_free_is_at_least_one(clock: Clock) -> None:
    now: datetime = clock()
    assert seconds_until_free(None, now) == 1
    assert seconds_until_free(now.replace(year=2000), now) == 1


# --- body size limits per endpoint -------------------------------------------------------------


class Unreadable:
    """A request body of ``length`` bytes that must not be read: the size check uses Content-Length."""

    def __init__(self, length: int) -> None:
        self.length = length
        self.position = 0

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = 0) -> int:
        self.position = self.length + offset if whence == 2 else offset
        return self.position

    def read(self, *args: Any) -> bytes:
        raise AssertionError("the body was read")

    readline = readlines = read


def post_unread(client: FlaskClient, path: str, length: int, headers: dict[str, str]) -> Any:
    return client.post(path, input_stream=Unreadable(length), headers=headers)


def assert_413(response: Any) -> None:
    assert response.status_code == 413
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["status"] == 413


def test_chatbot_body_over_1_mib_is_413_before_reading(client: FlaskClient, deps: Deps) -> None:
    response = post_unread(
        client, "/webhooks/chatbot", 1_048_577, {"Content-Type": "application/json", "X-Smarttalk-Signature": "t=1"}
    )
    assert_413(response)
    assert count(deps, Delivery) == 0


def test_chatbot_limit_is_configurable(make_deps: Callable[..., Deps]) -> None:
    client = create_app(deps=make_deps(server={"max_body_bytes": 2048})).test_client()
    body = json.dumps(report_event(report={"title": "t", "description": "x" * 3000})).encode()
    assert_413(client.post("/webhooks/chatbot", data=body, headers={"Content-Type": "application/json"}))


GITLAB = {"url": "https://gitlab.example", "token": "glpat-x", "project": "acme/support", "webhook_secret": "gl-secret"}
JIRA = {"url": "https://jira.example", "user": "bot@example.com", "api_token": "x", "webhook_secret": "jira-secret"}


@pytest.fixture
def hook_deps(make_deps: Callable[..., Deps]) -> Deps:
    return make_deps(trackers={"gitlab": GITLAB, "jira": JIRA})


def test_tracker_webhooks_take_5_mib_by_default(hook_deps: Deps) -> None:
    """Bigger than the 1 MiB API limit is fine for a tracker webhook (long Jira changelogs); over 5 MiB: 413."""
    client = create_app(deps=hook_deps).test_client()
    big = json.dumps({"object_kind": "push", "padding": "x" * 2_000_000}).encode()
    ok = client.post(
        "/webhooks/gitlab",
        data=big,
        headers={"Content-Type": "application/json", "X-Gitlab-Token": "gl-secret", "X-Gitlab-Event": "Push Hook"},
    )
    assert ok.status_code == 200  # acknowledged and ignored, not 413
    gitlab = post_unread(
        client, "/webhooks/gitlab", 5_242_881, {"Content-Type": "application/json", "X-Gitlab-Token": "gl-secret"}
    )
    assert_413(gitlab)
    jira = post_unread(client, "/webhooks/jira", 5_242_881, {"Content-Type": "application/json"})
    assert_413(jira)


def test_tracker_webhook_limit_is_configurable(make_deps: Callable[..., Deps]) -> None:
    deps = make_deps(trackers={"gitlab": GITLAB, "jira": JIRA}, limits={"tracker_webhook_max_bytes": 4096})
    client = create_app(deps=deps).test_client()
    body = json.dumps({"webhookEvent": "jira:issue_updated", "padding": "x" * 5000}).encode()
    signature = "sha256=" + hmac.new(b"jira-secret", body, hashlib.sha256).hexdigest()
    response = client.post(
        "/webhooks/jira", data=body, headers={"Content-Type": "application/json", "X-Hub-Signature": signature}
    )
    assert_413(response)


def test_email_body_over_its_limit_is_413_before_reading(make_deps: Callable[..., Deps]) -> None:
    deps = make_deps(intake={"email_inbound_token": "inbound-token-123", "max_email_bytes": 4096})
    client = create_app(deps=deps).test_client()
    headers = {"Content-Type": "message/rfc822", "Authorization": "Bearer inbound-token-123"}
    assert_413(post_unread(client, "/webhooks/email/raw", 4097, headers))


# --- timeouts on every outbound call -----------------------------------------------------------


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback server that accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(timeout=2)
    for conn in held:
        conn.close()
    listener.close()


def times_out(
    call: Callable[[], object], expected: type[BaseException], *, after: float, match: str, within: float = 5
) -> BaseException:
    """``call`` against the silent server fails with ``expected`` (its message matching ``match``) once its
    configured timeout of ``after`` seconds has run out: not sooner (it did wait), not much later."""
    started = time.monotonic()
    with pytest.raises(expected, match=match) as info:
        call()
    elapsed = time.monotonic() - started
    assert after * 0.9 <= elapsed < within, f"gave up after {elapsed:.2f} s; the timeout is {after} s"
    return info.value


def test_gitlab_calls_time_out_as_retryable(silent_port: int) -> None:
    from bridge.adapters.trackers.gitlab import GitLabTracker

    tracker = GitLabTracker(url=f"http://127.0.0.1:{silent_port}", token="glpat-x", timeout=0.5)
    times_out(tracker.account, RetryableError, after=0.5, match="ReadTimeout")


def test_jira_calls_time_out_as_retryable(silent_port: int) -> None:
    from bridge.adapters.trackers.jira import JiraTracker

    tracker = JiraTracker(url=f"http://127.0.0.1:{silent_port}", user="bot@example.com", api_token="x", timeout=0.5)
    times_out(tracker.account, RetryableError, after=0.5, match="ReadTimeout")


def test_chatbot_callback_times_out_as_retryable(
    make_deps: Callable[..., Deps], silent_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bridge.pipeline.notifying import callback

    deps = make_deps(chatbot={"callback_url": f"http://127.0.0.1:{silent_port}/bridge-events"})
    monkeypatch.setattr(callback, "TIMEOUT_SECONDS", 0.5)
    monkeypatch.setattr(callback.ChatbotCallback, "payload", lambda self, job: {"event": "ticket.status_changed"})
    handler = callback.ChatbotCallback(
        store=deps.store, settings=deps.settings, mappings=deps.mappings, clock=deps.clock
    )
    job = Job(id=1, kind="chatbot_callback", ticket_id=None, subject_id=1)
    times_out(lambda: handler(job), RetryableError, after=0.5, match="ReadTimeout")


def test_smtp_has_a_finite_timeout(tmp_path: Any) -> None:
    """(The silent-server case itself is tests/integration/test_smtp.py::test_silent_server_times_out_as_retryable.)"""
    from bridge.adapters.mail.smtp import SmtpMailer
    from bridge.pipeline.notifying.email import build_mailer
    from tests.conftest import make_settings

    mailer = build_mailer(make_settings(tmp_path, mail={"smtp_host": "mail.example", "mail_from": "s@example.com"}))
    assert isinstance(mailer, SmtpMailer)
    assert 0 < mailer._timeout <= 60


def test_imap_poll_times_out(silent_port: int) -> None:
    """A mailbox server that never greets: the poll gives up with a socket timeout once timeout_seconds
    have passed (the worker logs it and the next poll tries again)."""
    from bridge.adapters.mail.imap import ImapPoller

    settings = ImapSettings(
        enabled=True,
        host="127.0.0.1",
        port=silent_port,
        tls=False,
        starttls=False,
        user="support",
        password="secret",
        timeout_seconds=0.5,
    )
    times_out(ImapPoller(settings, store=lambda raw: True).poll, TimeoutError, after=0.5, match="timed out")


def test_redis_queue_times_out(silent_port: int, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """/readyz asks the queue for its depth: a silent Redis answers with an error in seconds, not never."""
    import redis

    from bridge.adapters import queue

    monkeypatch.setattr(queue, "REDIS_READ_TIMEOUT", 0.5)
    huey = queue.make_huey(redis_url=f"redis://127.0.0.1:{silent_port}/0", sqlite_path=tmp_path / "q.db")
    times_out(huey.pending_count, redis.exceptions.TimeoutError, after=0.5, match="Timeout reading")
    default = queue.make_huey(redis_url="redis://127.0.0.1:1/0", sqlite_path=tmp_path / "q.db")
    kwargs = default.storage.pool.connection_kwargs
    assert kwargs["socket_connect_timeout"] == queue.REDIS_CONNECT_TIMEOUT
    assert kwargs["socket_timeout"] == queue.REDIS_READ_TIMEOUT


def test_postgres_connect_times_out(silent_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """/readyz and every request open database connections: a silent server fails them in seconds."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from bridge.adapters.store import db

    monkeypatch.setattr(db, "PG_CONNECT_TIMEOUT", 2)  # libpq's smallest
    engine = db.make_engine(f"postgresql://bridge@127.0.0.1:{silent_port}/bridge")

    def connect() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    try:
        times_out(connect, OperationalError, after=2, within=8, match="connection timeout expired")
    finally:
        engine.dispose()
