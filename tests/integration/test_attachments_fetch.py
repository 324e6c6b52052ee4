"""Chatbot attachments fetched into the tracker issue, behind the SSRF guard, against real loopback servers.

The guard refuses loopback addresses unless ``attachments.allow_private_networks`` is set, so the
tests that must reach the loopback server set it (or, for the redirect test, let exactly 127.0.0.1
through); the name the URL uses is answered by a fake resolver, the one DNS lookup the fetcher makes.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from pydantic import ValidationError

from bridge import create_app
from bridge.adapters.store.models import Job, Ticket
from bridge.bootstrap import Deps
from bridge.config import AttachmentsSettings
from bridge.pipeline.intake import attachments as attachments_fetch
from bridge.pipeline.intake.attachments import (
    AttachmentFetcher,
    AttachmentFetchJob,
    FetchFailed,
    FetchRefused,
    address_refusal,
)
from tests.conftest import Clock, post_event, report_event
from tests.fakes import FakeTracker
from tests.tools import require_program

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
HOST = "files.cdn.example"


# --- a loopback file server -------------------------------------------------------------------


@dataclass
class FileServer:
    port: int
    hits: list[tuple[str, str | None]] = field(default_factory=list)
    """(path, Host header) of every request."""
    sni: list[str | None] = field(default_factory=list)

    def url(self, path: str, host: str = HOST, scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"


class Files(BaseHTTPRequestHandler):
    server: Any

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        state: FileServer = self.server.state
        state.hits.append((self.path, self.headers.get("Host")))
        path = self.path.split("?", 1)[0]
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self._route(path, state)

    def _route(self, path: str, state: FileServer) -> None:
        if path == "/a.png":
            self._send(200, PNG, {"Content-Type": "image/png"})
        elif path == "/notes.txt":
            self._send(200, b"hello", {"Content-Type": "text/plain; charset=utf-8"})
        elif path == "/big":
            self.send_response(200)
            self.send_header("Content-Length", "10000000")
            self.end_headers()  # and nothing more: the fetcher must refuse from the header alone
        elif path == "/big-unannounced":
            self.send_response(200)
            self.end_headers()
            for _ in range(4):
                self.wfile.write(b"x" * 4096)
        elif path == "/slow":
            self.send_response(200)
            self.end_headers()
            for _ in range(60):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.1)
        elif path == "/to-private":
            self._redirect(f"http://internal.cdn.example:{state.port}/a.png")
        elif path == "/to-a":
            self._redirect("/a.png")
        elif path == "/loop":
            self._redirect("/loop")
        elif path == "/missing":
            self._send(404, b"gone")
        elif path == "/unavailable":
            self._send(503, b"try later")
        elif path == "/gzip":
            self._send(200, b"\x1f\x8b...", {"Content-Encoding": "gzip"})
        else:
            self._send(404, b"")

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()


def _serve(context: ssl.SSLContext | None = None) -> Iterator[FileServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Files)
    server.daemon_threads = True
    state = FileServer(port=server.server_address[1])
    if context is not None:
        context.sni_callback = lambda sock, name, ctx: state.sni.append(name)  # type: ignore[assignment]
        server.socket = context.wrap_socket(server.socket, server_side=True)
    server.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def files() -> Iterator[FileServer]:
    yield from _serve()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for files.cdn.example (and nothing else)."""
    openssl = require_program("openssl", "openssl")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert),
            "-subj", f"/CN={HOST}", "-addext", f"subjectAltName=DNS:{HOST}",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_files(certificate: tuple[Path, Path]) -> Iterator[FileServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    yield from _serve(context)


# --- DNS, logs ---------------------------------------------------------------------------------


@dataclass
class FakeDns:
    table: dict[str, list[str]] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)

    def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.table[host]


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    fake = FakeDns({HOST: ["127.0.0.1"]})
    monkeypatch.setattr(attachments_fetch, "resolve", fake)
    return fake


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def named(self, message: str) -> list[logging.LogRecord]:
        return [r for r in self.records if r.getMessage() == message]


@pytest.fixture
def logs() -> Iterator[Records]:
    logger = logging.getLogger("bridge.pipeline.intake.attachments")
    handler, level = Records(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def fetcher(**overrides: Any) -> AttachmentFetcher:
    settings: dict[str, Any] = {
        "allowed_hosts": [HOST, "*.cdn.example", "127.0.0.1", "10.1.2.3", "169.254.169.254", "::1"],
        "allow_http": True,
        "read_timeout_seconds": 2,
        "total_timeout_seconds": 5,
    }
    return AttachmentFetcher(AttachmentsSettings.model_validate({**settings, **overrides}))


def refused(fetch: AttachmentFetcher, url: str) -> str:
    with pytest.raises(FetchRefused) as info:
        fetch.fetch(url)
    return info.value.reason


# --- the guard ---------------------------------------------------------------------------------


def test_an_allowed_host_is_fetched_from_the_address_resolved_once(files: FileServer, dns: FakeDns) -> None:
    """One lookup; the connection goes to that address with the URL's host name in Host."""
    fetched = fetcher(allow_private_networks=True).fetch(files.url("/a.png?sig=abc"))
    assert fetched.content == PNG
    assert fetched.content_type == "image/png"
    assert dns.lookups == [HOST]
    assert files.hits == [("/a.png?sig=abc", f"{HOST}:{files.port}")]


def test_a_host_off_the_list_is_refused_without_a_lookup(dns: FakeDns) -> None:
    assert refused(fetcher(), "https://evil.example/a.png") == "host_not_allowed"
    assert refused(fetcher(), "https://cdn.example.evil.example/a.png") == "host_not_allowed"
    assert dns.lookups == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/a.png", "loopback_address"),
        ("http://10.1.2.3/a.png", "private_address"),
        ("http://169.254.169.254/latest/meta-data/", "link_local_address"),
        ("http://[::1]/a.png", "loopback_address"),
    ],
)
def test_addresses_that_are_not_public_are_refused(url: str, reason: str, dns: FakeDns) -> None:
    assert refused(fetcher(), url) == reason
    assert dns.lookups == []


def test_a_name_resolving_to_a_private_address_is_refused(dns: FakeDns) -> None:
    dns.table["intranet.cdn.example"] = ["10.0.0.7"]
    assert refused(fetcher(), "https://intranet.cdn.example/a.png") == "private_address"
    # One private answer among public ones is enough to refuse: the connection could go to any.
    dns.table["mixed.cdn.example"] = ["93.184.215.14", "10.0.0.7"]
    assert refused(fetcher(), "https://mixed.cdn.example/a.png") == "private_address"
    dns.table["mapped.cdn.example"] = ["::ffff:127.0.0.1"]
    assert refused(fetcher(), "https://mapped.cdn.example/a.png") == "loopback_address"


def test_a_redirect_to_a_private_address_is_refused(
    files: FileServer, dns: FakeDns, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each hop is checked like the first URL: here only the test server's 127.0.0.1 is let through."""

    def only_the_test_server(address: Any, *, allow_private: bool) -> str | None:
        return None if str(address) == "127.0.0.1" else address_refusal(address, allow_private=allow_private)

    monkeypatch.setattr(attachments_fetch, "address_refusal", only_the_test_server)
    dns.table["internal.cdn.example"] = ["10.20.30.40"]
    assert refused(fetcher(), files.url("/to-private")) == "private_address"
    assert [path for path, _ in files.hits] == ["/to-private"]
    assert dns.lookups == [HOST, "internal.cdn.example"]


def test_redirects_are_followed_within_the_limit(files: FileServer, dns: FakeDns) -> None:
    fetch = fetcher(allow_private_networks=True, max_redirects=2)
    assert fetch.fetch(files.url("/to-a")).content == PNG
    assert refused(fetch, files.url("/loop")) == "too_many_redirects"
    assert refused(fetcher(allow_private_networks=True, max_redirects=0), files.url("/to-a")) == "too_many_redirects"


def test_an_oversized_body_is_refused_from_its_content_length(files: FileServer, dns: FakeDns) -> None:
    started = time.monotonic()
    assert refused(fetcher(allow_private_networks=True, max_bytes=1_000_000), files.url("/big")) == "too_large"
    assert time.monotonic() - started < 1.5  # not waiting for a body that never comes


def test_an_oversized_body_without_content_length_is_cut_off(files: FileServer, dns: FakeDns) -> None:
    assert refused(fetcher(allow_private_networks=True, max_bytes=5000), files.url("/big-unannounced")) == "too_large"


def test_a_slow_body_is_refused_at_the_total_time_cap(files: FileServer, dns: FakeDns) -> None:
    """A byte every 0.1 s never trips the read timeout; the total cap ends it."""
    started = time.monotonic()
    slow = fetcher(allow_private_networks=True, read_timeout_seconds=2, total_timeout_seconds=0.5)
    assert refused(slow, files.url("/slow")) == "too_slow"
    assert time.monotonic() - started < 2


def test_schemes_credentials_and_encodings(files: FileServer, dns: FakeDns) -> None:
    assert refused(fetcher(allow_http=False), files.url("/a.png")) == "scheme_not_allowed"
    assert refused(fetcher(), "ftp://files.cdn.example/a.png") == "scheme_not_allowed"
    assert refused(fetcher(), "https://user:pw@files.cdn.example/a.png") == "credentials_in_url"
    assert refused(fetcher(allow_private_networks=True), files.url("/gzip")) == "content_encoding"
    assert refused(fetcher(allowed_hosts=[]), files.url("/a.png")) == "fetching_off"


def test_http_errors_are_refused_or_may_pass(files: FileServer, dns: FakeDns) -> None:
    fetch = fetcher(allow_private_networks=True)
    assert refused(fetch, files.url("/missing")) == "http_404"
    with pytest.raises(FetchFailed) as info:
        fetch.fetch(files.url("/unavailable"))
    assert info.value.reason == "http_503"
    with pytest.raises(FetchFailed) as info:
        fetch.fetch("https://unknown.cdn.example/a.png")
    assert info.value.reason == "dns_failed"


def test_https_goes_to_the_pinned_address_with_sni_and_a_checked_certificate(
    tls_files: FileServer, dns: FakeDns, certificate: tuple[Path, Path]
) -> None:
    fetch = fetcher(allow_private_networks=True, ca_file=str(certificate[0]))
    assert fetch.fetch(tls_files.url("/a.png", scheme="https")).content == PNG
    assert tls_files.sni == [HOST]
    assert dns.lookups == [HOST]
    # The same server under a name its certificate does not carry: refused, never read.
    dns.table["other.cdn.example"] = ["127.0.0.1"]
    assert refused(fetch, tls_files.url("/a.png", host="other.cdn.example", scheme="https")) == "tls_error"
    # And a certificate nobody vouches for.
    assert refused(fetcher(allow_private_networks=True), tls_files.url("/a.png", scheme="https")) == "tls_error"


def test_allowed_hosts_must_be_host_patterns() -> None:
    assert AttachmentsSettings(allowed_hosts="*.CDN.example., files.example").allowed_hosts == [  # type: ignore[arg-type]
        "*.cdn.example",
        "files.example",
    ]
    with pytest.raises(ValidationError):
        AttachmentsSettings(allowed_hosts=["https://cdn.example/"])


# --- the job -----------------------------------------------------------------------------------


def drain(deps: Deps, clock: Clock | None = None) -> None:
    """Run every due job, as the worker would (moving the clock past retries when given one)."""
    for _ in range(30):
        if clock is not None:
            clock.advance(120)
        now = deps.clock()
        due = sorted(j.id for j in deps.store.jobs(state="pending", limit=1000) if j.next_attempt_at <= now)
        if not due:
            return
        for job_id in due:
            deps.runner.run(job_id)


def fetch_jobs(deps: Deps) -> list[Job]:
    return [j for j in deps.store.jobs(limit=1000) if j.kind == "fetch_attachments"]


@pytest.fixture
def fetching(make_deps: Callable[..., Deps]) -> Deps:
    return make_deps(attachments={"allowed_hosts": [HOST], "allow_http": True, "allow_private_networks": True})


def attach(*items: tuple[str, str | None, str]) -> dict[str, Any]:
    report = report_event()["report"]
    report["attachments"] = [
        {"filename": name, "url": url, **({"content_type": ctype} if ctype else {})} for name, ctype, url in items
    ]
    return report_event(report=report)


def test_an_allowed_attachment_is_uploaded_once_and_a_refused_one_stays_a_link(
    fetching: Deps, tracker: FakeTracker, files: FileServer, dns: FakeDns, logs: Records
) -> None:
    client = create_app(deps=fetching).test_client()
    secret_url = "https://evil.example/kunde-anna-jensen.png?token=hemmelig"
    event = attach(
        ("skærmbillede.png", "image/png", files.url("/a.png")),
        ("log.txt", None, secret_url),
        ("noter.txt", None, files.url("/notes.txt")),
    )
    tracking_id = post_event(client, event).get_json()["tracking_id"]
    assert [j.kind for j in sorted(fetching.store.jobs(limit=10), key=lambda j: j.id) if j.lane == "tracker"] == [
        "file_ticket",
        "fetch_attachments",
    ]
    drain(fetching)

    (issue,) = tracker.issues
    assert issue.attachments == [
        ("skærmbillede.png", "image/png", PNG),
        ("noter.txt", "text/plain", b"hello"),
    ]
    assert issue.new_issue is not None
    assert any(a.url == secret_url for a in issue.new_issue.report.attachments)  # still linked in the issue
    (job,) = fetch_jobs(fetching)
    assert job.state == "done"
    ticket = fetching.store.ticket_by_tracking_id(tracking_id)
    assert ticket is not None
    assert ticket.attachments_fetched == 3

    (refusal,) = logs.named("attachments.not_fetched")
    assert refusal.reason == "host_not_allowed"  # type: ignore[attr-defined]
    assert refusal.attachment == 2  # type: ignore[attr-defined]
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in logs.records)
    for secret in ("evil.example", "hemmelig", "anna"):
        assert secret not in logged.lower()

    # Running the job again (a retry, a replay) uploads nothing twice.
    AttachmentFetchJob(
        store=fetching.store, trackers=fetching.trackers, settings=fetching.settings, clock=fetching.clock
    )(job)
    assert len(issue.attachments) == 2
    assert [path for path, _ in files.hits] == ["/a.png", "/notes.txt"]


def test_fetching_off_queues_no_job_and_keeps_links(client: FlaskClient, deps: Deps, tracker: FakeTracker) -> None:
    """The default (no allowed hosts): attachments are links only, as before."""
    post_event(client, report_event())
    assert fetch_jobs(deps) == []
    drain(deps)
    assert tracker.issues[0].attachments == []


def test_a_report_without_urls_queues_no_job(fetching: Deps) -> None:
    client = create_app(deps=fetching).test_client()
    post_event(client, attach())
    assert fetch_jobs(fetching) == []


def test_a_failure_that_may_pass_is_retried_then_given_up(
    fetching: Deps, tracker: FakeTracker, files: FileServer, dns: FakeDns, clock: Clock, logs: Records
) -> None:
    client = create_app(deps=fetching).test_client()
    post_event(client, attach(("a.png", None, files.url("/unavailable")), ("b.png", None, files.url("/a.png"))))
    drain(fetching, clock)
    (job,) = fetch_jobs(fetching)
    assert job.state == "done"
    assert job.attempts == attachments_fetch.FETCH_ATTEMPTS
    assert [path for path, _ in files.hits].count("/unavailable") == attachments_fetch.FETCH_ATTEMPTS
    assert tracker.issues[0].attachments == [("b.png", "image/png", PNG)]
    (gave_up,) = logs.named("attachments.not_fetched")
    assert (gave_up.reason, gave_up.outcome) == ("http_503", "gave_up")  # type: ignore[attr-defined]


def test_the_job_waits_for_the_issue(fetching: Deps, files: FileServer, dns: FakeDns) -> None:
    """Run before the filing job finished (another worker), it retries instead of failing."""
    client = create_app(deps=fetching).test_client()
    post_event(client, attach(("a.png", None, files.url("/a.png"))))
    (job,) = fetch_jobs(fetching)
    handler = AttachmentFetchJob(
        store=fetching.store, trackers=fetching.trackers, settings=fetching.settings, clock=fetching.clock
    )
    with pytest.raises(attachments_fetch.RetryableError, match="no tracker issue yet"):
        handler(job)
    assert files.hits == []


def test_a_long_list_continues_in_a_fresh_job_past_the_run_budget(
    fetching: Deps, tracker: FakeTracker, files: FileServer, dns: FakeDns
) -> None:
    client = create_app(deps=fetching).test_client()
    post_event(client, attach(("a.png", None, files.url("/a.png")), ("b.txt", None, files.url("/notes.txt"))))
    file_job = next(j for j in fetching.store.jobs(limit=10) if j.kind == "file_ticket")
    fetching.runner.run(file_job.id)
    ticks = iter(range(0, 10_000, 1000))  # each look at the clock: another 1000 s (past RUN_BUDGET_SECONDS)
    handler = AttachmentFetchJob(
        store=fetching.store,
        trackers=fetching.trackers,
        settings=fetching.settings,
        clock=fetching.clock,
        monotonic=lambda: float(next(ticks)),
    )
    (first,) = fetch_jobs(fetching)
    handler(first)
    assert tracker.issues[0].attachments == [("a.png", "image/png", PNG)]
    second = [j for j in fetch_jobs(fetching) if j.id != first.id]
    assert len(second) == 1
    with fetching.store.session() as session:
        ticket = session.get(Ticket, first.ticket_id)
        assert ticket is not None
        assert ticket.attachments_fetched == 1
    AttachmentFetchJob(
        store=fetching.store, trackers=fetching.trackers, settings=fetching.settings, clock=fetching.clock
    )(second[0])
    assert [a[0] for a in tracker.issues[0].attachments] == ["a.png", "b.txt"]
