"""Email intake end to end: the four endpoints, the ``process_email`` job, replies, limits and attachments.

Real SQLite and job runner, the in-memory tracker and mailer; provider payloads follow
wire-formats.md section 5 (Mailgun forward, SendGrid Inbound Parse, Postmark inbound JSON).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode

import pytest
from click.testing import CliRunner, Result
from flask.testing import FlaskClient
from sqlalchemy import select

from bridge import create_app
from bridge.adapters.store.models import Followup, InboundEmail, Job, Ticket
from bridge.bootstrap import Deps
from bridge.domain import Status
from bridge.errors import RetryableError
from bridge.pipeline.intake.email.process import NotReplayable, reprocess
from tests.conftest import REPO, Clock
from tests.fakes import FakeTracker, RecordingMailer

TOKEN = "inbound-token-123"
MAILGUN_KEY = "key-mailgun-signing"
INTAKE = {"email_inbound_token": TOKEN, "mailgun_signing_key": MAILGUN_KEY}
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bridge.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture
def deps(make_deps: Callable[..., Deps]) -> Deps:
    return make_deps(intake=INTAKE)


# --- helpers ---------------------------------------------------------------------------------


def mail(
    subject: str = "Login virker ikke",
    body: str = "Jeg kan ikke logge ind siden i morges.",
    *,
    sender: str = "Anna Jensen <anna@kunde.dk>",
    to: str = "support@bridge.example",
    message_id: str | None = "<m1@mail.kunde.dk>",
    headers: dict[str, str] | None = None,
    attachments: list[tuple[str, str, bytes]] = (),  # type: ignore[assignment]
) -> bytes:
    message = EmailMessage()
    if sender:
        message["From"] = sender
    message["To"] = to
    if subject:
        message["Subject"] = subject
    if message_id:
        message["Message-ID"] = message_id
    message["Date"] = "Wed, 25 Nov 2026 10:00:00 +0100"
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    for filename, ctype, content in attachments:
        maintype, subtype = ctype.split("/")
        message.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    return message.as_bytes()


def post_raw(client: FlaskClient, raw: bytes, **headers: str) -> Any:
    return client.post("/webhooks/email/raw", data=raw, headers={"Content-Type": "message/rfc822", **BEARER, **headers})


def multipart(parts: list[tuple[str, bytes, str | None, str | None]], boundary: str = "xYzZY") -> tuple[bytes, str]:
    """A multipart/form-data body written byte by byte: (name, value, filename, content type)."""
    chunks = []
    for name, value, filename, ctype in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
        head += f"Content-Type: {ctype}\r\n" if ctype else ""
        chunks.append(head.encode() + b"\r\n" + value + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def mailgun_signature(timestamp: str, token: str, key: str = MAILGUN_KEY) -> str:
    return hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()


def mailgun_fields(**overrides: str) -> dict[str, str]:
    """A Mailgun route forward, as in wire-formats.md 5.1 (fields decoded)."""
    timestamp, token = str(int(time.time())), "06c96bafc3f42a66b9edd546347a2fe18dc23461fe80dc52f0"
    fields = {
        "recipient": "support@mg.bridge.example",
        "sender": "bounce-1234@mail.kunde.dk",
        "from": "Søren Ærø <soren@kunde.dk>",
        "subject": "Kan ikke logge ind",
        "body-plain": "Login fejler med fejl 500.\n\nMvh Søren",
        "stripped-text": "Login fejler med fejl 500.",
        "stripped-signature": "Mvh Søren",
        "body-html": "<div>Login fejler med fejl 500.</div>",
        "stripped-html": "<div>Login fejler med fejl 500.</div>",
        "Message-Id": "<CAEPk3R+4Zr@mail.kunde.dk>",
        "message-headers": json.dumps(
            [
                ["X-Mailgun-Spf", "Pass"],
                ["From", "Søren Ærø <soren@kunde.dk>"],
                ["Message-Id", "<CAEPk3R+4Zr@mail.kunde.dk>"],
                ["Subject", "Kan ikke logge ind"],
                ["Auto-Submitted", "no"],
            ]
        ),
        "timestamp": timestamp,
        "token": token,
        "signature": mailgun_signature(timestamp, token),
    }
    fields.update(overrides)
    return fields


def post_mailgun(client: FlaskClient, fields: dict[str, str], *, query: str = "", files: Any = ()) -> Any:
    parts: list[tuple[str, bytes, str | None, str | None]] = [(k, v.encode(), None, None) for k, v in fields.items()]
    parts += list(files)
    body, ctype = multipart(parts)
    return client.post(f"/webhooks/email/mailgun{query}", data=body, headers={"Content-Type": ctype})


def postmark_payload(**overrides: Any) -> dict[str, Any]:
    """Postmark's published inbound sample (wire-formats.md 5.3), addressed to a Danish customer."""
    payload: dict[str, Any] = {
        "FromName": "Bo Hansen",
        "MessageStream": "inbound",
        "From": "bo@kunde.dk",
        "FromFull": {"Email": "bo@kunde.dk", "Name": "Bo Hansen", "MailboxHash": ""},
        "To": "support@inbound.bridge.example",
        "ToFull": [{"Email": "support@inbound.bridge.example", "Name": "", "MailboxHash": ""}],
        "Cc": "",
        "CcFull": [],
        "OriginalRecipient": "support@inbound.bridge.example",
        "Subject": "Eksport fejler",
        "MessageID": "00000000-0000-0000-0000-000000000000",
        "ReplyTo": "",
        "MailboxHash": "",
        "Date": "Wed, 25 Nov 2026 10:00:00 +0100",
        "TextBody": "Eksporten til Excel fejler hver gang.",
        "HtmlBody": "<p>Eksporten til Excel fejler hver gang.</p>",
        "StrippedTextReply": "",
        "Tag": "",
        "Headers": [
            {"Name": "Return-Path", "Value": "<bo@kunde.dk>"},
            {"Name": "X-Spam-Status", "Value": "No"},
            {"Name": "Message-ID", "Value": "<CAEPk3R+pm@mail.kunde.dk>"},
        ],
        "Attachments": [],
    }
    payload.update(overrides)
    return payload


def post_postmark(client: FlaskClient, payload: dict[str, Any], **headers: str) -> Any:
    return client.post(
        "/webhooks/email/postmark",
        data=json.dumps(payload),
        headers={"Content-Type": "application/json", **BEARER, **headers},
    )


def drain(deps: Deps) -> None:
    """Run every due job, as the worker would, until none is left to run now."""
    for _ in range(30):
        now = deps.clock()
        due = sorted(j.id for j in deps.store.jobs(state="pending", limit=1000) if j.next_attempt_at <= now)
        if not due:
            return
        for job_id in due:
            deps.runner.run(job_id)


def emails(deps: Deps) -> list[InboundEmail]:
    with deps.store.session() as session:
        return list(session.scalars(select(InboundEmail).order_by(InboundEmail.id)).all())


def tickets(deps: Deps) -> list[Ticket]:
    with deps.store.session() as session:
        return list(session.scalars(select(Ticket).order_by(Ticket.id)).all())


def followups(deps: Deps) -> list[Followup]:
    with deps.store.session() as session:
        return list(session.scalars(select(Followup).order_by(Followup.id)).all())


def filed_ticket(client: FlaskClient, deps: Deps, raw: bytes | None = None) -> Ticket:
    """A new email, processed and filed, with its acknowledgement sent."""
    assert post_raw(client, raw or mail()).status_code == 200
    drain(deps)
    (ticket,) = tickets(deps)
    assert ticket.issue_key is not None
    return ticket


def resolve(deps: Deps, tracker: FakeTracker, ticket: Ticket) -> None:
    deps.store.set_status(ticket.id, Status.RESOLVED)
    tracker.issue(ticket.issue_key or "").state = "closed"


# --- endpoints -------------------------------------------------------------------------------


def test_raw_email_becomes_a_ticket_like_a_chatbot_report(
    client: FlaskClient, deps: Deps, tracker: FakeTracker, mailer: RecordingMailer
) -> None:
    """message/rfc822 is stored, answered 200, then filed with subject as title and acknowledged."""
    raw = mail(subject="Sv: Fwd: Login virker ikke")
    response = post_raw(client, raw)
    assert response.status_code == 200
    assert response.get_json()["status"] == "stored"
    assert tickets(deps) == []  # nothing decided in the request

    drain(deps)

    (ticket,) = tickets(deps)
    assert (ticket.channel, ticket.title, ticket.reporter_email, ticket.reporter_name) == (
        "email",
        "Login virker ikke",
        "anna@kunde.dk",
        "Anna Jensen",
    )
    assert "Jeg kan ikke logge ind" in ticket.description
    assert ticket.status == "triaged"
    (issue,) = tracker.issues
    assert "source::email" in issue.labels
    (ack,) = mailer.sent
    assert parseaddr(str(ack["To"]))[1] == "anna@kunde.dk"
    (email,) = emails(deps)
    assert (email.state, email.source, email.ticket_id, email.raw) == ("ticket", "raw", ticket.id, raw)


def test_the_same_message_twice_opens_one_ticket(client: FlaskClient, deps: Deps) -> None:
    """A second delivery of a Message-ID (even through another provider) answers 200 and adds nothing."""
    assert post_raw(client, mail(message_id="<CAEPk3R+pm@mail.kunde.dk>")).get_json()["status"] == "stored"
    again = post_raw(client, mail(message_id="<CAEPk3R+pm@mail.kunde.dk>"))
    via_postmark = post_postmark(client, postmark_payload())
    assert (again.status_code, again.get_json()["status"]) == (200, "duplicate")
    assert (via_postmark.status_code, via_postmark.get_json()["status"]) == (200, "duplicate")
    drain(deps)
    assert len(tickets(deps)) == 1
    assert len(emails(deps)) == 1


def test_nul_bytes_in_the_message_id_and_sender_are_stored_once(client: FlaskClient, deps: Deps) -> None:
    """PostgreSQL holds no NUL in text: such a message is still stored (one key per message, no
    sender), answered 200 instead of 503 for ever, a redelivery is a duplicate, and the emails
    after it are processed."""
    nul = mail("Login virker ikke", message_id="<n@mail.kunde.dk>", sender="Anna <a.n@kunde.dk>")
    nul = nul.replace(b"<n@mail", b"<n\x00@mail").replace(b"<a.n@", b"<a\x00n@")

    first, again = post_raw(client, nul), post_raw(client, nul)
    after = post_raw(client, mail("Rapporten mangler", message_id="<m2@mail.kunde.dk>"))
    drain(deps)

    assert (first.status_code, first.get_json()["status"]) == (200, "stored")
    assert (again.status_code, again.get_json()["status"]) == (200, "duplicate")
    assert after.status_code == 200
    stored, following = emails(deps)
    assert stored.raw == nul
    assert stored.message_key.startswith("msgid-sha256:")
    assert stored.sender is None
    assert stored.state != "pending"
    assert following.state == "ticket"


def test_a_nul_in_the_recipient_address_still_opens_the_ticket(client: FlaskClient, deps: Deps) -> None:
    """The address a mail was sent to is kept for the category rules, without the NUL no text
    column takes: the report is filed, not set aside."""
    raw = mail("Faktura er forkert", to="faktura@bridge.example").replace(b"To: faktura@", b"To: fak\x00tura@")
    assert post_raw(client, raw).status_code == 200
    drain(deps)
    (stored,) = emails(deps)
    assert stored.state == "ticket"
    (ticket,) = deps.store.tickets_by_email("anna@kunde.dk")
    assert ticket.recipient == "faktura@bridge.example"


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({"Authorization": "Basic " + base64.b64encode(f"anyone:{TOKEN}".encode()).decode()}, ""),
        ({"Authorization": f"Bearer {TOKEN}"}, ""),
        ({}, f"?token={TOKEN}"),
    ],
    ids=["basic-password", "bearer", "query"],
)
def test_the_inbound_token_is_accepted_three_ways(
    client: FlaskClient, deps: Deps, headers: dict[str, str], query: str
) -> None:
    """EMAIL_INBOUND_TOKEN as basic-auth password (any user), bearer token, or ?token=."""
    response = client.post(
        f"/webhooks/email/raw{query}", data=mail(), headers={"Content-Type": "message/rfc822", **headers}
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic " + base64.b64encode(b"user:wrong").decode()},
    ],
    ids=["none", "wrong-bearer", "wrong-password"],
)
def test_without_the_token_nothing_is_stored(client: FlaskClient, deps: Deps, headers: dict[str, str]) -> None:
    """Raw and SendGrid answer 401 problem+json; Postmark 403 (its only 'stop retrying')."""
    raw = client.post("/webhooks/email/raw", data=mail(), headers={"Content-Type": "message/rfc822", **headers})
    body, ctype = multipart([("email", mail(), None, None)])
    sendgrid = client.post("/webhooks/email/sendgrid", data=body, headers={"Content-Type": ctype, **headers})
    postmark = client.post(
        "/webhooks/email/postmark",
        data=json.dumps(postmark_payload()),
        headers={"Content-Type": "application/json", **headers},
    )
    assert (raw.status_code, sendgrid.status_code, postmark.status_code) == (401, 401, 403)
    assert raw.mimetype == "application/problem+json"
    assert emails(deps) == []


def test_no_configured_token_accepts_nothing(make_deps: Callable[..., Deps]) -> None:
    """With EMAIL_INBOUND_TOKEN unset the token endpoints are closed, not open."""
    client = create_app(deps=make_deps()).test_client()
    response = client.post("/webhooks/email/raw?token=", data=mail(), headers={"Content-Type": "message/rfc822"})
    assert response.status_code == 401


def test_wrong_content_type_is_415(client: FlaskClient, deps: Deps) -> None:
    """Each endpoint names the content type it takes."""
    raw = client.post("/webhooks/email/raw", data=mail(), headers={"Content-Type": "text/plain", **BEARER})
    postmark = client.post("/webhooks/email/postmark", data="{}", headers={"Content-Type": "text/plain", **BEARER})
    sendgrid = client.post(
        "/webhooks/email/sendgrid", data="a=b", headers={"Content-Type": "application/x-www-form-urlencoded", **BEARER}
    )
    mailgun = client.post("/webhooks/email/mailgun", data="{}", headers={"Content-Type": "application/json"})
    assert [r.status_code for r in (raw, postmark, sendgrid, mailgun)] == [415, 415, 415, 415]
    assert raw.get_json()["type"].endswith("/content-type")


def test_a_body_over_the_email_limit_is_413(make_deps: Callable[..., Deps]) -> None:
    """intake.max_email_bytes bounds every email endpoint (and is independent of the 1 MiB API limit)."""
    deps = make_deps(intake={**INTAKE, "max_email_bytes": 4096})
    client = create_app(deps=deps).test_client()
    small = post_raw(client, mail())
    large = post_raw(client, mail(body="x" * 5000, message_id="<big@kunde.dk>"))
    assert (small.status_code, large.status_code) == (200, 413)
    assert large.mimetype == "application/problem+json"
    assert len(emails(deps)) == 1


def test_the_email_limit_allows_more_than_the_api_limit(client: FlaskClient, deps: Deps) -> None:
    """A 3 MB email passes although server.max_body_bytes (1 MiB) bounds the JSON endpoints."""
    raw = mail(attachments=[("log.txt", "text/plain", b"line\n" * 600_000)])
    assert len(raw) > deps.settings.server.max_body_bytes
    assert post_raw(client, raw).status_code == 200


# --- Mailgun ---------------------------------------------------------------------------------


def test_mailgun_signed_forward_is_stored_and_filed(client: FlaskClient, deps: Deps, tracker: FakeTracker) -> None:
    """A signed route forward with an attachment becomes a ticket; the attachment reaches the issue."""
    response = post_mailgun(
        client,
        mailgun_fields(**{"attachment-count": "1"}),
        files=[("attachment-1", b"\x89PNG\r\n", "skærm.png", "image/png")],
    )
    assert response.status_code == 200
    drain(deps)
    (ticket,) = tickets(deps)
    assert (ticket.title, ticket.reporter_email) == ("Kan ikke logge ind", "soren@kunde.dk")
    (issue,) = tracker.issues
    assert [(name, content) for name, _, content in issue.attachments] == [("skærm.png", b"\x89PNG\r\n")]


def test_mailgun_bad_signature_is_401(client: FlaskClient, deps: Deps) -> None:
    """A signature made with another key is refused (and Mailgun retries: 401, not 406)."""
    fields = mailgun_fields()
    fields["signature"] = mailgun_signature(fields["timestamp"], fields["token"], key="someone-else")
    assert post_mailgun(client, fields).status_code == 401
    assert emails(deps) == []


class CountingBody(io.RawIOBase):
    """A request body produced as it is read, counting what the server read of it."""

    def __init__(self, *parts: bytes, filler: int = 0, filler_at: int = 0) -> None:
        self._parts = list(parts)
        self._filler, self._filler_at = filler, filler_at
        self.size = sum(len(p) for p in parts) + filler
        self.read_bytes = 0
        self._chunks = self._generate()
        self._buffer = b""

    def _generate(self) -> Iterator[bytes]:
        for index, part in enumerate(self._parts):
            if index == self._filler_at:
                left = self._filler
                while left:
                    step = min(left, 1 << 20)
                    yield b"A" * step
                    left -= step
            yield part

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        count = min(len(target), len(self._buffer))
        target[:count] = self._buffer[:count]
        self._buffer = self._buffer[count:]
        self.read_bytes += count
        return count


def post_streamed(client: FlaskClient, body: CountingBody, content_type: str) -> Any:
    """POST ``body`` as the WSGI input, as a server passes it on: read only as far as the app reads."""
    return client.post(
        "/webhooks/email/mailgun",
        environ_overrides={
            "wsgi.input": io.BufferedReader(body, buffer_size=1024),
            "CONTENT_LENGTH": str(body.size),
            "CONTENT_TYPE": content_type,
        },
    )


def multipart_head_and_tail(fields: dict[str, str]) -> tuple[bytes, bytes]:
    """A multipart body cut where a 20 MiB attachment's bytes go: (everything before, everything after)."""
    body, _ = multipart(
        [(k, v.encode(), None, None) for k, v in fields.items()] + [("attachment-1", b"@@", "big.bin", "x/y")]
    )
    head, tail = body.split(b"@@")
    return head, tail


def test_mailgun_with_a_wrong_signature_is_refused_before_the_rest_is_read(client: FlaskClient, deps: Deps) -> None:
    """Signature fields first and wrong, then a 20 MiB attachment: 401 after reading little more than
    the signature (the server never takes the 20 MiB in), nothing stored."""
    fields = mailgun_fields()
    signature = {k: fields.pop(k) for k in ("timestamp", "token", "signature")}
    signature["signature"] = mailgun_signature(signature["timestamp"], signature["token"], key="someone-else")
    head, tail = multipart_head_and_tail({**signature, **fields})
    body = CountingBody(head, tail, filler=20 << 20, filler_at=1)
    response = post_streamed(client, body, "multipart/form-data; boundary=xYzZY")
    assert response.status_code == 401
    assert body.read_bytes < 1 << 20
    assert emails(deps) == []


def test_mailgun_urlencoded_with_a_wrong_signature_is_refused_before_the_rest_is_read(
    client: FlaskClient, deps: Deps
) -> None:
    """The same for an urlencoded forward: a long body-plain after a wrong signature is not read."""
    fields = mailgun_fields()
    fields["signature"] = "0" * 64
    head = urlencode({k: fields[k] for k in ("timestamp", "token", "signature")}).encode() + b"&body-plain="
    body = CountingBody(head, b"&from=x", filler=20 << 20, filler_at=1)
    response = post_streamed(client, body, "application/x-www-form-urlencoded")
    assert response.status_code == 401
    assert body.read_bytes < 1 << 20


def test_mailgun_without_a_token_or_a_signing_key_reads_nothing(make_deps: Callable[..., Deps]) -> None:
    """No EMAIL_INBOUND_TOKEN presented and no signing key configured: nothing can authenticate the post,
    so it is refused before a byte of it is read."""
    deps = make_deps(intake={"email_inbound_token": TOKEN})
    client = create_app(deps=deps).test_client()
    head, tail = multipart_head_and_tail(mailgun_fields())
    body = CountingBody(head, tail, filler=1 << 20, filler_at=1)
    assert post_streamed(client, body, "multipart/form-data; boundary=xYzZY").status_code == 401
    assert body.read_bytes == 0


def test_mailgun_signature_fields_after_a_large_attachment_are_found(client: FlaskClient, deps: Deps) -> None:
    """Mailgun does not promise where the signature fields are: after 5 MiB of attachment, a good
    signature is still found, and the whole post is taken."""
    fields = mailgun_fields()
    signature = {k: fields.pop(k) for k in ("timestamp", "token", "signature")}
    body, ctype = multipart(
        [(k, v.encode(), None, None) for k, v in fields.items()]
        + [("attachment-1", b"B" * (5 << 20), "big.bin", "application/octet-stream")]
        + [(k, v.encode(), None, None) for k, v in signature.items()]
    )
    response = client.post("/webhooks/email/mailgun", data=body, headers={"Content-Type": ctype})
    assert (response.status_code, response.get_json()["status"]) == (200, "stored")


def test_mailgun_repeated_signature_fields_are_refused(client: FlaskClient, deps: Deps) -> None:
    """A good signature plus a second ``token`` (so the replay check could be fed another one): 401."""
    fields = [*mailgun_fields().items(), ("token", "f" * 50)]
    body, ctype = multipart([(k, v.encode(), None, None) for k, v in fields])
    response = client.post("/webhooks/email/mailgun", data=body, headers={"Content-Type": ctype})
    assert response.status_code == 401
    assert emails(deps) == []


def test_mailgun_stale_signature_is_401(client: FlaskClient, deps: Deps) -> None:
    """A correctly signed post from 10 minutes ago is refused as stale."""
    old = str(int(time.time()) - 600)
    fields = mailgun_fields(timestamp=old, signature=mailgun_signature(old, "tok-stale"), token="tok-stale")
    assert post_mailgun(client, fields).status_code == 401
    assert emails(deps) == []


def test_mailgun_replayed_token_is_refused(client: FlaskClient, deps: Deps) -> None:
    """A signature token is good once: the same signed post again, or another message with it, is 406."""
    first = mailgun_fields()
    assert post_mailgun(client, first).status_code == 200
    assert post_mailgun(client, first).status_code == 406
    other = {**first, "Message-Id": "<other@mail.kunde.dk>", "subject": "Noget andet"}
    assert post_mailgun(client, other).status_code == 406
    assert len(emails(deps)) == 1


def test_mailgun_may_use_the_token_instead_of_a_signature(client: FlaskClient, deps: Deps) -> None:
    """Without signature fields the shared token authenticates the forward (here as ?token=)."""
    fields = mailgun_fields()
    for name in ("timestamp", "token", "signature"):
        del fields[name]
    assert post_mailgun(client, fields).status_code == 401
    assert post_mailgun(client, fields, query=f"?token={TOKEN}").status_code == 200


def test_mailgun_urlencoded_forward(client: FlaskClient, deps: Deps) -> None:
    """Without attachments Mailgun posts application/x-www-form-urlencoded."""
    response = client.post(
        "/webhooks/email/mailgun",
        data=urlencode(mailgun_fields()),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    drain(deps)
    assert [t.title for t in tickets(deps)] == ["Kan ikke logge ind"]


def test_mailgun_raw_mime_mode_keeps_the_message(client: FlaskClient, deps: Deps) -> None:
    """A route URL ending in 'mime' posts body-mime: it is stored as the raw message."""
    fields = mailgun_fields()
    for name in ("body-plain", "stripped-text", "body-html", "stripped-html", "message-headers", "from", "subject"):
        del fields[name]
    fields["body-mime"] = mail(subject="Fra body-mime").decode()
    assert post_mailgun(client, fields).status_code == 200
    drain(deps)
    (email,) = emails(deps)
    assert email.raw is not None
    assert [t.title for t in tickets(deps)] == ["Fra body-mime"]


def test_mailgun_unreadable_post_is_406(client: FlaskClient, deps: Deps) -> None:
    """A signed post that is not a route forward can never be accepted: 406 stops Mailgun's retries."""
    timestamp, token = str(int(time.time())), "tok-406"
    fields = {"timestamp": timestamp, "token": token, "signature": mailgun_signature(timestamp, token)}
    assert post_mailgun(client, fields).status_code == 406
    assert emails(deps) == []


# --- SendGrid --------------------------------------------------------------------------------


def test_sendgrid_parsed_mode_decodes_each_field_in_its_charset(client: FlaskClient, deps: Deps) -> None:
    """Fields arrive as raw bytes in the charsets their ``charsets`` entry names (cp850, iso-8859-1)."""
    headers = (
        "Date: Wed, 25 Nov 2026 10:00:00 +0100\n"
        "To: support@parse.bridge.example\n"
        "From: =?utf-8?q?S=C3=B8ren?= <soren@kunde.dk>\n"
        "Subject: =?cp850?q?Fejl_p=86_siden?=\n"
        "Message-ID: <sg-1@mail.kunde.dk>\n"
    )
    body, ctype = multipart(
        [
            ("headers", headers.encode(), None, None),
            ("from", "Søren <soren@kunde.dk>".encode(), None, None),
            ("to", b"support@parse.bridge.example", None, None),
            ("subject", "Fejl på siden".encode("cp850"), None, None),
            ("text", "Blåbærgrød og æøå virker ikke i søgningen.".encode("iso-8859-1"), None, None),
            (
                "charsets",
                b'{"to":"UTF-8","from":"UTF-8","subject":"cp850","text":"iso-8859-1","html":"UTF-8"}',
                None,
                None,
            ),
            ("envelope", b'{"to":["support@parse.bridge.example"],"from":"soren@kunde.dk"}', None, None),
            ("dkim", b"{@kunde.dk : pass}", None, None),
            ("SPF", b"pass", None, None),
            ("attachments", b"0", None, None),
        ]
    )
    response = client.post("/webhooks/email/sendgrid", data=body, headers={"Content-Type": ctype, **BEARER})
    assert response.status_code == 200
    drain(deps)
    (ticket,) = tickets(deps)
    assert ticket.title == "Fejl på siden"
    assert "Blåbærgrød og æøå" in ticket.description


def test_sendgrid_raw_mode_stores_the_full_message(client: FlaskClient, deps: Deps) -> None:
    """'POST the raw, full MIME message': the ``email`` field is the message, kept as raw bytes."""
    raw = mail(subject="Rå besked fra SendGrid", message_id="<sg-raw@mail.kunde.dk>")
    body, ctype = multipart(
        [
            ("email", raw, None, None),
            ("envelope", b'{"to":["support@parse.bridge.example"],"from":"anna@kunde.dk"}', None, None),
            ("charsets", b'{"to":"UTF-8","from":"UTF-8","subject":"UTF-8"}', None, None),
        ]
    )
    assert (
        client.post(f"/webhooks/email/sendgrid?token={TOKEN}", data=body, headers={"Content-Type": ctype}).status_code
        == 200
    )
    drain(deps)
    (email,) = emails(deps)
    assert email.raw == raw
    assert [t.title for t in tickets(deps)] == ["Rå besked fra SendGrid"]


def test_sendgrid_garbage_is_400_not_500(client: FlaskClient, deps: Deps) -> None:
    """A multipart body that is not an Inbound Parse post is a 400 problem."""
    body, ctype = multipart([("unrelated", b"x", None, None)])
    response = client.post("/webhooks/email/sendgrid", data=body, headers={"Content-Type": ctype, **BEARER})
    assert response.status_code == 400
    broken = client.post(
        "/webhooks/email/sendgrid", data=b"--nope\r\nbroken", headers={"Content-Type": "multipart/form-data", **BEARER}
    )
    assert broken.status_code == 400
    assert emails(deps) == []


# --- Postmark --------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["Content", "Data"])
def test_postmark_attachments_in_content_or_data(
    client: FlaskClient, deps: Deps, tracker: FakeTracker, key: str
) -> None:
    """Real payloads carry attachments in Content, the dashboard test in Data: both are uploaded."""
    attachment = {
        "Name": "test.txt",
        key: base64.b64encode(b"This is attachment contents, base-64 encoded.").decode(),
        "ContentType": "text/plain",
        "ContentLength": 45,
        "ContentID": "",
    }
    assert post_postmark(client, postmark_payload(Attachments=[attachment])).status_code == 200
    drain(deps)
    (ticket,) = tickets(deps)
    assert ticket.title == "Eksport fejler"
    (issue,) = tracker.issues
    assert issue.attachments == [("test.txt", "text/plain", b"This is attachment contents, base-64 encoded.")]


def test_postmark_uses_the_rfc_message_id_from_headers(client: FlaskClient, deps: Deps) -> None:
    """Postmark's MessageID is its own UUID; the key is the Message-ID in Headers."""
    post_postmark(client, postmark_payload())
    (email,) = emails(deps)
    assert "CAEPk3R+pm@mail.kunde.dk" in email.message_key
    assert "00000000-0000" not in email.message_key


def test_postmark_malformed_json_is_400(client: FlaskClient, deps: Deps) -> None:
    """Invalid JSON (also absurdly nested, or NaN) or JSON that is no inbound payload: 400 (403 is for auth)."""
    json_headers = {"Content-Type": "application/json", **BEARER}
    broken = client.post("/webhooks/email/postmark", data="{nope", headers=json_headers)
    wrong = post_postmark(client, [1, 2])  # type: ignore[arg-type]
    deep = client.post("/webhooks/email/postmark", data="[" * 100_000 + "]" * 100_000, headers=json_headers)
    nan = client.post("/webhooks/email/postmark", data='{"From": NaN}', headers=json_headers)
    assert [r.status_code for r in (broken, wrong, deep, nan)] == [400, 400, 400, 400]
    assert emails(deps) == []


# --- machine mail ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "headers", "sender"),
    [
        ("Out of Office: Login virker ikke", {"Auto-Submitted": "auto-replied"}, "Anna <anna@kunde.dk>"),
        ("Autosvar: Login virker ikke", {}, "Anna <anna@kunde.dk>"),
        ("Nyhedsbrev november", {"List-Id": "<news.kunde.dk>", "Precedence": "bulk"}, "news@kunde.dk"),
        ("Undelivered Mail Returned to Sender", {"Return-Path": "<>"}, "MAILER-DAEMON@mail.kunde.dk"),
    ],
    ids=["auto-replied", "autosvar", "list", "bounce"],
)
def test_machine_mail_opens_no_ticket_and_is_never_answered(
    client: FlaskClient,
    deps: Deps,
    mailer: RecordingMailer,
    subject: str,
    headers: dict[str, str],
    sender: str,
) -> None:
    """Auto-replies, lists and bounces end ``ignored`` with the reason; no ticket, no email."""
    post_raw(client, mail(subject=subject, headers=headers, sender=sender))
    drain(deps)
    (email,) = emails(deps)
    assert email.state == "ignored"
    assert email.reason
    assert tickets(deps) == []
    assert mailer.sent == []


# --- replies ---------------------------------------------------------------------------------


def test_a_reply_to_the_plus_address_is_a_followup(
    client: FlaskClient, deps: Deps, tracker: FakeTracker, mailer: RecordingMailer
) -> None:
    """The reply token in the recipient address finds the ticket: a follow-up, not a new ticket."""
    ticket = filed_ticket(client, deps)
    reply_to = str(mailer.sent[0]["Reply-To"])
    raw = mail(
        subject="Re: kvittering",
        body="Det sker også i Firefox.",
        to=reply_to,
        message_id="<r1@mail.kunde.dk>",
        sender="Kollega <kollega@kunde.dk>",  # anyone holding the token may add to the ticket
    )
    post_raw(client, raw)
    drain(deps)
    assert len(tickets(deps)) == 1
    (followup,) = followups(deps)
    assert followup.ticket_id == ticket.id
    assert "Det sker også i Firefox." in tracker.issue(ticket.issue_key or "").comments[-1]
    assert emails(deps)[-1].state == "followup"


def test_a_reply_by_in_reply_to_our_acknowledgement_is_a_followup(
    client: FlaskClient, deps: Deps, mailer: RecordingMailer
) -> None:
    """In-Reply-To naming the Message-ID of our acknowledgement finds the ticket."""
    ticket = filed_ticket(client, deps)
    ack_id = str(mailer.sent[0]["Message-ID"])
    raw = mail(
        subject="Re: noget helt andet",
        body="Her er et skærmbillede mere.",
        message_id="<r2@mail.kunde.dk>",
        headers={"In-Reply-To": ack_id, "References": f"<m1@mail.kunde.dk> {ack_id}"},
    )
    post_raw(client, raw)
    drain(deps)
    assert len(tickets(deps)) == 1
    assert [f.ticket_id for f in followups(deps)] == [ticket.id]


def test_in_reply_to_from_someone_else_is_not_a_followup(
    client: FlaskClient, deps: Deps, mailer: RecordingMailer
) -> None:
    """Our Message-IDs contain the tracking ID, so they are guessable: a stranger naming one opens a new ticket."""
    ticket = filed_ticket(client, deps)
    ack_id = str(mailer.sent[0]["Message-ID"])
    raw = mail(
        subject="Re: kvittering",
        body="Genåbn venligst.",
        sender="Eve <eve@example.org>",
        message_id="<r5@example.org>",
        headers={"In-Reply-To": ack_id, "References": ack_id},
    )
    post_raw(client, raw)
    drain(deps)
    assert followups(deps) == []
    assert [t.reporter_email for t in tickets(deps)] == [ticket.reporter_email, "eve@example.org"]


def test_a_reply_naming_the_tracking_id_counts_only_from_the_reporter(client: FlaskClient, deps: Deps) -> None:
    """[ST-…] in the subject makes a follow-up for the reporter; from anyone else it is a new ticket."""
    ticket = filed_ticket(client, deps)
    subject = f"Re: [{ticket.tracking_id}] Login virker ikke"
    post_raw(client, mail(subject=subject, body="Stadig sådan her til morgen.", message_id="<r3@mail.kunde.dk>"))
    post_raw(
        client,
        mail(subject=subject, body="Jeg vil også klage.", message_id="<r4@x.dk>", sender="Eve <eve@example.org>"),
    )
    drain(deps)
    assert [f.ticket_id for f in followups(deps)] == [ticket.id]
    assert len(tickets(deps)) == 2
    assert tickets(deps)[1].reporter_email == "eve@example.org"


def test_thanks_it_works_never_reopens(client: FlaskClient, deps: Deps, tracker: FakeTracker) -> None:
    """ "Tak, det virker nu" on a resolved ticket is a comment; the ticket stays resolved, unflagged."""
    ticket = filed_ticket(client, deps)
    resolve(deps, tracker, ticket)
    post_raw(client, mail(subject=f"Re: [{ticket.tracking_id}]", body="Tak, det virker nu!", message_id="<t1@k.dk>"))
    drain(deps)
    issue = tracker.issue(ticket.issue_key or "")
    assert deps.store.ticket(ticket.id).status == "resolved"
    assert issue.state == "closed"
    assert "Tak, det virker nu!" in issue.comments[-1]
    assert "needs-support-review" not in issue.labels
    assert followups(deps)[0].not_fixed is False


def test_still_not_working_reopens_a_resolved_ticket(client: FlaskClient, deps: Deps, tracker: FakeTracker) -> None:
    """ "Det virker stadig ikke" on a resolved ticket reopens it."""
    ticket = filed_ticket(client, deps)
    resolve(deps, tracker, ticket)
    post_raw(
        client, mail(subject=f"Re: [{ticket.tracking_id}]", body="Det virker stadig ikke.", message_id="<t2@k.dk>")
    )
    drain(deps)
    assert deps.store.ticket(ticket.id).status == "reopened"
    assert tracker.issue(ticket.issue_key or "").state == "opened"
    assert followups(deps)[0].not_fixed is True


def test_an_unclear_reply_is_commented_and_flagged_for_support(
    client: FlaskClient, deps: Deps, tracker: FakeTracker
) -> None:
    """A reply that says neither clearly is added as a comment and flagged; the ticket is not reopened."""
    ticket = filed_ticket(client, deps)
    resolve(deps, tracker, ticket)
    post_raw(
        client,
        mail(subject=f"Re: [{ticket.tracking_id}]", body="Hvornår kommer næste version?", message_id="<t3@k.dk>"),
    )
    drain(deps)
    issue = tracker.issue(ticket.issue_key or "")
    assert deps.store.ticket(ticket.id).status == "resolved"
    assert "Hvornår kommer næste version?" in issue.comments[-1]
    assert "needs-support-review" in issue.labels


def test_the_unsubscribe_mailto_mutes_the_ticket(client: FlaskClient, deps: Deps, mailer: RecordingMailer) -> None:
    """Our List-Unsubscribe mailto (subject 'unsubscribe ST-…' to the plus-address) mutes the ticket."""
    ticket = filed_ticket(client, deps)
    header = str(mailer.sent[0]["List-Unsubscribe"])
    mailto = header.split("<mailto:")[1].rstrip(">")
    address, _, query = mailto.partition("?subject=")
    post_raw(client, mail(subject=unquote(query), body="", to=unquote(address), message_id="<u1@k.dk>"))
    drain(deps)
    assert deps.store.ticket(ticket.id).notifications_muted is True
    assert emails(deps)[-1].state == "unsubscribed"
    assert followups(deps) == []
    assert len(mailer.sent) == 1


# --- limits, organisations, attachments ------------------------------------------------------


def test_the_eleventh_new_ticket_in_an_hour_is_held_and_can_be_released(client: FlaskClient, deps: Deps) -> None:
    """Per sender address, whichever way the mail came: ten tickets an hour, the rest held until released."""
    for n in range(11):
        if n % 2:
            post_raw(client, mail(subject=f"Fejl nummer {n}", message_id=f"<flood-{n}@kunde.dk>"))
        else:
            headers = [{"Name": "Message-ID", "Value": f"<flood-{n}@kunde.dk>"}]
            anna = {"Email": "Anna@Kunde.dk", "Name": "Anna Jensen", "MailboxHash": ""}
            post_postmark(client, postmark_payload(FromFull=anna, Subject=f"Fejl nummer {n}", Headers=headers))
    post_postmark(client, postmark_payload())  # another sender is not affected
    drain(deps)
    states = [e.state for e in emails(deps)]
    assert states == ["ticket"] * 10 + ["held", "ticket"]
    held = emails(deps)[10]
    assert "more than 10 new tickets" in (held.reason or "")

    reprocess(deps.store, held.id, now=deps.clock(), release=True)
    drain(deps)
    assert emails(deps)[10].state == "ticket"
    assert len(tickets(deps)) == 12


def test_the_limit_is_per_hour(client: FlaskClient, deps: Deps, clock: Clock) -> None:
    """An hour later the same sender opens tickets again."""
    for n in range(10):
        post_raw(client, mail(subject=f"Fejl {n}", message_id=f"<h-{n}@kunde.dk>"))
    drain(deps)
    clock.advance(3601)
    post_raw(client, mail(subject="Ny fejl", message_id="<h-late@kunde.dk>"))
    drain(deps)
    assert emails(deps)[-1].state == "ticket"


def test_the_sender_domain_sets_organisation_language_and_severity(client: FlaskClient, deps: Deps) -> None:
    """kunde.dk -> "Kunde A/S" (an enterprise customer): at least high, answered in Danish."""
    post_raw(client, mail(subject="Et lille spørgsmål", body="Knappen er lidt grå.", sender="bo@kunde.dk"))
    post_raw(
        client,
        mail(subject="A small question", body="The button is a bit grey.", sender="jo@else.com", message_id="<e@x>"),
    )
    drain(deps)
    kunde, other = tickets(deps)
    assert (kunde.organization, kunde.locale, kunde.severity) == ("Kunde A/S", "da", "high")
    assert (other.organization, other.locale, other.severity) == (None, "en", "medium")


def test_attachments_are_uploaded_once_and_large_ones_listed(
    make_deps: Callable[..., Deps], tracker: FakeTracker, clock: Clock
) -> None:
    """Small attachments go to the issue once, even when a retry follows a failure; large ones are named."""
    deps = make_deps(intake={**INTAKE, "max_attachment_bytes": 1024})
    client = create_app(deps=deps).test_client()
    raw = mail(
        attachments=[
            ("a.txt", "text/plain", b"first"),
            ("b.txt", "text/plain", b"second"),
            ("stor.zip", "application/zip", b"z" * 5000),
        ]
    )
    tracker.fail_next["upload_attachment"] = [RetryableError("tracker busy")]
    post_raw(client, raw)
    drain(deps)  # the first upload fails and is retried later
    clock.advance(60)
    drain(deps)
    (ticket,) = tickets(deps)
    issue = tracker.issue(ticket.issue_key or "")
    assert [(name, content) for name, _, content in issue.attachments] == [("a.txt", b"first"), ("b.txt", b"second")]
    assert "stor.zip" in ticket.description
    assert issue.new_issue is not None
    assert [a.filename for a in issue.new_issue.report.attachments] == ["a.txt", "b.txt"]

    # Running the finished job again (a redelivered queue message) uploads nothing more.
    (job,) = [j for j in deps.store.jobs(limit=100) if j.kind == "upload_attachments"]
    with deps.store.session() as session:
        session.get(Job, job.id).state = "pending"  # type: ignore[union-attr]
    deps.runner.run(job.id)
    assert len(issue.attachments) == 2


# --- bad input -------------------------------------------------------------------------------


def test_no_sender_is_rejected_and_kept(client: FlaskClient, deps: Deps) -> None:
    """A message without a From address cannot become a ticket: rejected with the reason, original kept."""
    post_raw(client, mail(sender=""))
    drain(deps)
    (email,) = emails(deps)
    assert (email.state, email.reason) == ("rejected", "no sender address")
    assert email.raw == mail(sender="")
    assert tickets(deps) == []


def test_a_sender_address_no_email_can_be_sent_to_is_rejected(client: FlaskClient, deps: Deps) -> None:
    """From ``x@kunde.dk.`` (a trailing dot): no ticket whose every email would fail; rejected with the
    reason, kept for an operator; the next email is processed as usual."""
    post_raw(client, mail(sender="Anna <x@kunde.dk.>", message_id="<dot@mail.kunde.dk>"))
    post_raw(client, mail(message_id="<ok@mail.kunde.dk>"))
    drain(deps)
    refused, fine = emails(deps)
    assert refused.state == "rejected"
    assert (refused.reason or "").startswith("the sender address is not valid: ")
    assert "x@kunde.dk" not in (refused.reason or "")
    assert fine.state == "ticket"
    assert [t.reporter_email for t in tickets(deps)] == ["anna@kunde.dk"]


def test_an_empty_message_is_rejected(client: FlaskClient, deps: Deps) -> None:
    """No subject, no text, no attachments: rejected as having no text at all."""
    post_raw(client, b"From: anna@kunde.dk\r\nMessage-ID: <empty@k.dk>\r\n\r\n")
    drain(deps)
    (email,) = emails(deps)
    assert email.state == "rejected"
    assert "no text" in (email.reason or "")


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (
            b"From: anna@kunde.dk\r\nSubject: Fejl\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
            b"--b1\r\nContent-Type: text/plain\r\n\r\nTeksten er her",
            "Teksten er her",
        ),
        (
            b"From: anna@kunde.dk\r\nSubject: Fejl\r\n"
            b"Content-Type: text/plain; charset=x-unknown-99\r\n\r\nbl\xe5b\xe6r\r\n",
            "blåbær",
        ),
        (b"From: anna@kunde.dk\r\nSubject: " + b"A" * 20000 + b"\r\n\r\nLang overskrift\r\n", "Lang overskrift"),
        (
            b"From: anna@kunde.dk\r\nSubject: Dybt\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n"
            + b"--a\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n" * 200
            + b"--a\r\nContent-Type: text/plain\r\n\r\nInderst\r\n--a--\r\n",
            "Inderst",
        ),
    ],
    ids=["truncated-mime", "unknown-charset", "absurd-header", "nested-multiparts"],
)
def test_damaged_mail_gets_a_ticket_with_what_could_be_read(
    client: FlaskClient, deps: Deps, tracker: FakeTracker, raw: bytes, text: str
) -> None:
    """Broken MIME, unknown charsets, absurd headers, deep nesting: a ticket with the readable text,
    what could not be read noted for support, and a title that fits."""
    assert post_raw(client, raw).status_code == 200
    drain(deps)
    (email,) = emails(deps)
    (ticket,) = tickets(deps)
    assert email.state == "ticket"
    assert text in ticket.description
    assert "[bridge] Parts of this email could not be read:" in ticket.description
    assert 0 < len(ticket.title) <= 500
    assert tracker.issues  # and it was filed


def test_garbage_to_every_endpoint_is_never_a_500(client: FlaskClient, deps: Deps) -> None:
    """Random bytes with each endpoint's content type: 4xx or a stored message, never 500."""
    junk = bytes(range(256)) * 4
    answers = [
        post_raw(client, junk).status_code,
        client.post(
            "/webhooks/email/postmark", data=junk, headers={"Content-Type": "application/json", **BEARER}
        ).status_code,
        client.post(
            "/webhooks/email/sendgrid", data=junk, headers={"Content-Type": "multipart/form-data; boundary=x", **BEARER}
        ).status_code,
        client.post(
            f"/webhooks/email/mailgun?token={TOKEN}",
            data=junk,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ).status_code,
    ]
    assert all(code < 500 for code in answers), answers
    drain(deps)
    assert all(e.state != "pending" for e in emails(deps))


def test_only_unfinished_business_can_be_replayed(client: FlaskClient, deps: Deps) -> None:
    """A rejected email can be processed again from its original; one that made a ticket cannot."""
    post_raw(client, mail(sender="", message_id="<rej@k.dk>"))
    post_raw(client, mail(message_id="<ok@k.dk>"))
    drain(deps)
    rejected, made = emails(deps)
    reprocess(deps.store, rejected.id, now=deps.clock())
    drain(deps)
    assert emails(deps)[0].state == "rejected"  # read again, same outcome
    with pytest.raises(NotReplayable):
        reprocess(deps.store, made.id, now=deps.clock())


class KilledWorker(BaseException):
    """Stands for SIGKILL mid-transaction: nothing catches it."""


def test_a_worker_killed_mid_decision_leaves_nothing_and_the_rerun_makes_one_ticket(
    client: FlaskClient, deps: Deps, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decision and its rows are one transaction: a crash rolls all back, the rerun does it once."""
    from bridge.pipeline.intake.email import process as email_intake

    post_raw(client, mail())
    (job,) = [j for j in deps.store.jobs() if j.kind == "process_email"]
    real = email_intake.EmailProcessor._new_ticket

    def crash(self: Any, *args: Any) -> Any:
        real(self, *args)
        raise KilledWorker

    monkeypatch.setattr(email_intake.EmailProcessor, "_new_ticket", crash)
    with pytest.raises(KilledWorker):
        deps.runner.run(job.id)
    assert tickets(deps) == []
    assert emails(deps)[0].state == "pending"

    monkeypatch.setattr(email_intake.EmailProcessor, "_new_ticket", real)
    clock.advance(deps.settings.delivery.lease_seconds + 1)
    deps.runner.sweep()
    deps.runner.run(job.id)
    deps.runner.run(job.id)
    assert len(tickets(deps)) == 1
    assert emails(deps)[0].state == "ticket"


# --- operator commands -----------------------------------------------------------------------


def test_cli_lists_held_mail_and_releases_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_deps: Callable[..., Deps], clock: Clock
) -> None:
    """`emails --state held` lists it with the reason; `email-release <id>` queues it as new."""
    from bridge.cli import CliContext, cli

    deps = make_deps(intake={**INTAKE, "new_tickets_per_sender_hour": 1})
    client = create_app(deps=deps).test_client()
    post_raw(client, mail(message_id="<c1@k.dk>"))
    post_raw(client, mail(message_id="<c2@k.dk>"))
    drain(deps)
    held = emails(deps)[1]
    assert held.state == "held"

    config = tmp_path / "config.yaml"
    config.write_text(
        (REPO / "config.yaml").read_text().replace("mappings_dir: mappings", f"mappings_dir: {REPO / 'mappings'}")
    )
    for key, value in {
        "BRIDGE_CONFIG": str(config),
        "CHATBOT_SIGNING_SECRET": "s",
        "GITLAB_URL": "https://gitlab.example",
        "GITLAB_TOKEN": "glpat-secret",
        "GITLAB_PROJECT": "acme/support",
        "DATABASE_URL": deps.settings.database_url,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("REDIS_URL", raising=False)

    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), obj=CliContext(clock=clock))

    listed = run("emails", "--state", "held")
    assert listed.exit_code == 0, listed.output
    assert f"#{held.id} held" in listed.output
    assert "more than 1 new tickets" in listed.output
    assert "anna@kunde.dk" not in listed.output  # personal data only on request
    assert "anna@kunde.dk" in run("emails", "--show-personal-data").output

    released = run("email-release", str(held.id))
    assert released.exit_code == 0, released.output
    assert (emails(deps)[1].state, emails(deps)[1].released_at) == ("pending", clock.now)
    again = run("email-release", str(held.id))
    assert again.exit_code == 1
    drain(deps)
    assert emails(deps)[1].state == "ticket"


# --- the shipped rules -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("Tak, det virker nu", "fixed"),
        ("Thanks, it works now!", "fixed"),
        ("Mange tak.", "fixed"),
        ("Det virker stadig ikke.", "not_fixed"),
        ("Still not working, sorry.", "not_fixed"),
        ("Sagen er ikke løst.", "not_fixed"),
        ("Same error as yesterday.", "not_fixed"),
        ("Tak, men det virker stadig ikke", "not_fixed"),
        ("Det virker nu, men samme fejl på den anden side", "unclear"),
        ("Hvornår kommer næste version?", "unclear"),
    ],
)
def test_reply_phrases_in_email_yaml(deps: Deps, text: str, verdict: str) -> None:
    """mappings/email.yaml reads replies conservatively, in Danish and English."""
    from bridge.pipeline.intake.email.rules import read_reply

    assert read_reply(deps.mappings.email.replies, text).value == verdict


@pytest.mark.parametrize(
    ("subject", "title"),
    [
        ("Re: Sv: Fwd: Login", "Login"),
        ("VS: AW: FW:  Fejl i  rapport", "Fejl i rapport"),
        ("Re[2]: Svar", "Svar"),
        ("Reminder: møde", "Reminder: møde"),
    ],
)
def test_reply_prefixes_leave_the_title(subject: str, title: str) -> None:
    """Re:/Sv:/Fwd:/VS:/AW: prefixes (repeated, numbered) are not part of a ticket's title."""
    from bridge.pipeline.intake.email.process import clean_subject

    assert clean_subject(subject) == title
