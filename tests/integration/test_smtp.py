"""The mailers against a real SMTP server (aiosmtpd) on loopback: delivery, AUTH, TLS, refusals."""

from __future__ import annotations

import logging
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from bridge.adapters.mail.log import LogMailer
from bridge.adapters.mail.smtp import SmtpMailer
from bridge.adapters.store.models import Ticket
from bridge.config import MailSettings, Settings
from bridge.errors import PermanentError, RetryableError
from bridge.mappings import Mappings
from bridge.pipeline.notifying.email import Notifier, Outgoing, build_mailer
from tests.conftest import make_settings

REPORTER = "soren@kunde.dk"
PASSWORD = "hemmeligt-kodeord-42"


# --- fixtures -------------------------------------------------------------------------------


class Recorder:
    """An aiosmtpd handler that keeps what it receives, or answers RCPT/DATA with a set reply."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []
        self.rcpt_reply: str | None = None
        self.data_reply: str | None = None

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply:
            return self.data_reply
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def received(self) -> EmailMessage:
        assert len(self.envelopes) == 1
        parsed = message_from_bytes(self.envelopes[0].content, policy=default)
        assert isinstance(parsed, EmailMessage)
        return parsed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == b"bridge"
        and auth_data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throw-away self-signed certificate for 127.0.0.1, made by the openssl CLI."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-subj", "/CN=localhost", "-days", "1", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certificate[0]), str(certificate[1]))
    return context


@pytest.fixture
def serve() -> Iterator[Any]:
    """Start an aiosmtpd server on a free loopback port; stopped after the test."""
    controllers: list[Controller] = []

    def start(handler: Recorder, **kwargs: Any) -> int:
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
        controller.start()
        controllers.append(controller)
        return port

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture
def message(tmp_path: Path, mappings: Mappings) -> EmailMessage:
    """A real notification (reopened, Danish) as the Notifier composes it, with æøå in subject and body."""
    settings = make_settings(tmp_path, mail={"mail_from": "Kundeservice Ærø <support@example.com>"})
    notifier = Notifier(store=None, mailer=LogMailer(), mappings=mappings, settings=settings,  # type: ignore[arg-type]
                        secret_key="k", clock=lambda: datetime(2026, 11, 27, 9, 0, tzinfo=UTC))  # fmt: skip
    now = datetime(2026, 11, 25, 10, 15, tzinfo=UTC)
    ticket = Ticket(
        id=7, tracking_id="ST-7K3Q9X2M", status="reopened", channel="chatbot", locale="da",
        reporter_email=REPORTER, reporter_name="Søren Ærø", title="Blåbærgrød æøå", description="d",
        environment={}, attachments=[], reply_token="a" * 32, kind="bugfix", sprint_slot="next",
        sprint_name="Sprint 50", sprint_start=date(2026, 12, 7), sprint_due=date(2026, 12, 20),
        created_at=now, updated_at=now,
    )  # fmt: skip
    return notifier.compose(
        Outgoing(notification_id=3, kind="status", ticket=ticket, announced="reopened", comment=None, thread=[])
    )


# --- delivery -------------------------------------------------------------------------------


def test_plain_delivery_keeps_headers_both_parts_and_danish_letters(serve: Any, message: EmailMessage) -> None:
    """Over plain SMTP the server receives every header, text and HTML, and æøå intact."""
    handler = Recorder()
    port = serve(handler)
    SmtpMailer(host="127.0.0.1", port=port, starttls=False).send(message)

    envelope = handler.envelopes[0]
    assert envelope.mail_from == "support@example.com"
    assert envelope.rcpt_tos == [REPORTER]
    raw_headers = envelope.content.split(b"\r\n\r\n", 1)[0]
    assert raw_headers.isascii()  # RFC 2047 encoded-words, not raw UTF-8
    received = handler.received()
    assert received["Subject"] == "[ST-7K3Q9X2M] Sagen er genåbnet"
    assert received["From"].addresses[0].display_name == "Kundeservice Ærø"
    assert received["To"].addresses[0].display_name == "Søren Ærø"
    assert received["Message-ID"] == "<st-7k3q9x2m.n3@example.com>"
    assert received["Auto-Submitted"] == "auto-generated"
    assert received["Content-Language"] == "da"
    assert received["Reply-To"] == "support+" + "a" * 32 + "@example.com"
    assert received.get_content_type() == "multipart/alternative"
    text = received.get_body(preferencelist=("plain",))
    html = received.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    assert "Hej Søren" in text.get_content()
    assert "genåbnet sagen" in text.get_content()
    assert "genåbnet sagen" in html.get_content()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_login_with_username_and_password(serve: Any, message: EmailMessage) -> None:
    """With a username the mailer authenticates (AUTH on a plain connection where allowed)."""
    handler = Recorder()
    port = serve(handler, authenticator=authenticator, auth_required=True, auth_require_tls=False)
    SmtpMailer(host="127.0.0.1", port=port, starttls=False, username="bridge", password=PASSWORD, timeout=5).send(
        message
    )
    assert handler.received()["Subject"] == "[ST-7K3Q9X2M] Sagen er genåbnet"


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_rejected_login_is_permanent_and_never_shows_the_password(serve: Any, message: EmailMessage) -> None:
    """535 on AUTH: a PermanentError whose text has neither the password nor the reporter."""
    port = serve(Recorder(), authenticator=authenticator, auth_required=True, auth_require_tls=False)
    mailer = SmtpMailer(
        host="127.0.0.1", port=port, starttls=False, username="bridge", password="wrong-" + PASSWORD, timeout=5
    )
    with pytest.raises(PermanentError) as caught:
        mailer.send(message)
    assert "535" in str(caught.value)
    assert PASSWORD not in str(caught.value)
    assert PASSWORD not in repr(mailer)


def test_starttls_with_a_trusted_self_signed_certificate(
    serve: Any, message: EmailMessage, certificate: tuple[Path, Path]
) -> None:
    """STARTTLS upgrades the connection when the CA file trusts the server; AUTH happens inside TLS."""
    handler = Recorder()
    port = serve(
        handler, tls_context=server_context(certificate), require_starttls=True, authenticator=authenticator,
        auth_required=True,
    )  # fmt: skip
    mailer = SmtpMailer(
        host="127.0.0.1", port=port, starttls=True, ca_file=str(certificate[0]), username="bridge", password=PASSWORD
    )
    mailer.send(message)
    assert handler.received()["Subject"] == "[ST-7K3Q9X2M] Sagen er genåbnet"


def test_starttls_refuses_an_untrusted_certificate(
    serve: Any, message: EmailMessage, certificate: tuple[Path, Path]
) -> None:
    """Without the CA file the self-signed certificate is not trusted: nothing is sent, retry later."""
    handler = Recorder()
    port = serve(handler, tls_context=server_context(certificate), require_starttls=True)
    with pytest.raises(RetryableError, match="certificate"):
        SmtpMailer(host="127.0.0.1", port=port, starttls=True).send(message)
    assert handler.envelopes == []


def test_implicit_tls(serve: Any, message: EmailMessage, certificate: tuple[Path, Path]) -> None:
    """smtp_tls: TLS from the first byte (SMTPS)."""
    handler = Recorder()
    port = serve(handler, ssl_context=server_context(certificate))
    SmtpMailer(host="127.0.0.1", port=port, tls=True, ca_file=str(certificate[0])).send(message)
    assert handler.received()["Subject"] == "[ST-7K3Q9X2M] Sagen er genåbnet"


# --- failures -------------------------------------------------------------------------------


def test_recipient_refused_with_550_is_permanent_without_the_address(serve: Any, message: EmailMessage) -> None:
    """550 for the only recipient: PermanentError; the address in the server's reply is masked."""
    handler = Recorder()
    handler.rcpt_reply = f"550 5.1.1 <{REPORTER}>: Recipient address rejected"
    port = serve(handler)
    with pytest.raises(PermanentError) as caught:
        SmtpMailer(host="127.0.0.1", port=port, starttls=False).send(message)
    assert "550" in str(caught.value)
    assert REPORTER not in str(caught.value)
    assert "s***@kunde.dk" in str(caught.value)


def test_a_message_smtplib_cannot_write_is_permanent_without_the_address(serve: Any, message: EmailMessage) -> None:
    """A message the library refuses to write as it stands (here two Resent- blocks) is a dead letter
    at once, not an unexpected crash retried for 72 h; the error names no address."""
    message["Resent-Date"] = "Wed, 25 Nov 2026 10:00:00 +0100"
    message["Resent-Date"] = "Wed, 25 Nov 2026 10:05:00 +0100"
    handler = Recorder()
    port = serve(handler)
    with pytest.raises(PermanentError) as caught:
        SmtpMailer(host="127.0.0.1", port=port, starttls=False).send(message)
    assert "cannot be written" in str(caught.value)
    assert REPORTER.split("@")[0] not in str(caught.value)
    assert handler.envelopes == []


def test_greylisting_451_at_rcpt_is_retryable(serve: Any, message: EmailMessage) -> None:
    """451 for the recipient (greylisting): RetryableError."""
    handler = Recorder()
    handler.rcpt_reply = "451 4.7.1 Greylisted, please try again later"
    port = serve(handler)
    with pytest.raises(RetryableError, match="451"):
        SmtpMailer(host="127.0.0.1", port=port, starttls=False).send(message)


def test_451_after_data_is_retryable(serve: Any, message: EmailMessage) -> None:
    """451 for the message itself (local error in processing): RetryableError."""
    handler = Recorder()
    handler.data_reply = "451 4.3.0 Local error in processing"
    port = serve(handler)
    with pytest.raises(RetryableError, match="451"):
        SmtpMailer(host="127.0.0.1", port=port, starttls=False).send(message)


def test_554_after_data_is_permanent(serve: Any, message: EmailMessage) -> None:
    """554 for the message (rejected as spam, say): PermanentError."""
    handler = Recorder()
    handler.data_reply = "554 5.7.1 Message rejected"
    port = serve(handler)
    with pytest.raises(PermanentError, match="554"):
        SmtpMailer(host="127.0.0.1", port=port, starttls=False).send(message)


def test_server_down_is_retryable(message: EmailMessage) -> None:
    """Connection refused (nothing listening): RetryableError."""
    with pytest.raises(RetryableError, match="connect"):
        SmtpMailer(host="127.0.0.1", port=free_port(), starttls=False).send(message)


def test_silent_server_times_out_as_retryable(message: EmailMessage) -> None:
    """A server that accepts but never greets: the timeout ends the attempt, to be retried."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True)
    thread.start()
    try:
        with pytest.raises(RetryableError):
            SmtpMailer(host="127.0.0.1", port=listener.getsockname()[1], starttls=False, timeout=0.5).send(message)
    finally:
        thread.join(timeout=2)
        for conn in accepted:
            conn.close()
        listener.close()


# --- choosing a mailer, and the log mailer --------------------------------------------------


def test_build_mailer_picks_smtp_when_a_host_is_set(tmp_path: Path) -> None:
    """SMTP_HOST set: SmtpMailer; unset: LogMailer."""
    with_host = make_settings(tmp_path, mail={"smtp_host": "mail.example", "mail_from": "support@example.com"})
    assert isinstance(build_mailer(with_host), SmtpMailer)
    assert isinstance(build_mailer(make_settings(tmp_path)), LogMailer)


def test_smtp_host_without_mail_from_is_a_clear_configuration_error() -> None:
    """A sender is required when mail is really sent."""
    with pytest.raises(ValueError, match="mail_from is required when smtp_host is set"):
        MailSettings(smtp_host="mail.example")
    with pytest.raises(ValueError, match=r"\{token\}"):
        Settings.model_validate({"mail": {"mail_from": "s@example.com", "reply_to": "support@example.com"}})


def test_log_mailer_masks_the_recipient_and_keeps_the_body_at_debug(message: EmailMessage) -> None:
    """mail.logged has subject, locale and a***@domain; the body only at DEBUG; never the address."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("bridge.adapters.mail.log")
    handler, level = Keep(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        LogMailer().send(message)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    logged = [r for r in records if r.getMessage() == "mail.logged"]
    assert len(logged) == 1
    assert vars(logged[0])["to"] == "s***@kunde.dk"
    assert vars(logged[0])["subject"] == "[ST-7K3Q9X2M] Sagen er genåbnet"
    assert vars(logged[0])["locale"] == "da"
    body = [r for r in records if r.levelno == logging.DEBUG]
    assert "genåbnet sagen" in vars(body[0])["body"]
    assert all(REPORTER not in str(vars(r)) for r in records)
