"""Inbound emails as the providers post them (raw RFC 822, Postmark JSON, a Mailgun route forward),
some with a NUL (U+0000) in one place.

PostgreSQL refuses NUL in text, so a NUL that reaches an insert (or a query parameter) fails it every
time; SQLite stores it. The bridge cleans NUL out of the text it reads and sets aside (``rejected``
with the reason) a message whose contents the database still refuses. Where the NUL sits decides
which: ``MUST_FILE`` are the places where nothing the report needs depends on the NUL, so the report
must still become a ticket, cleaned; elsewhere (the sender's address, a threading header) rejecting
or setting the message aside with a reason is as good. Either way it is stored, never lost, and the emails after
it go on.

Every message carries ``X-Soak-Ref: soakref-<run>-<n>``, which is found again in what the bridge
stored (the raw bytes or the provider's fields), whatever became of the message.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

PROVIDERS = ("raw", "postmark", "mailgun")
NUL_PLACEMENTS = (
    "body",
    "body-encoded",
    "subject",
    "display-name",
    "message-id",
    "recipient",
    "header",
    "references",
    "sender",
)
"""Where a NUL mail carries its NUL; ``body-encoded`` is quoted-printable ``=00`` in a raw message,
``recipient`` is the support address it was sent to, ``header`` an unused one (``X-Mailer``)."""
MUST_FILE = frozenset({"body", "body-encoded", "subject", "display-name", "message-id", "recipient", "header"})
"""Placements after which the report must still become a ticket (the NUL cleaned out): nothing the
report needs depends on the NUL. A NUL in the sender's address leaves no address to answer; one in
``References`` names a thread that cannot exist."""

SUPPORT = "support@bridge.example"
MAILER = "Soak Mailer 1.0"
REF_HEADER = "X-Soak-Ref"
_REF = re.compile(rb"soakref-([0-9a-z]+)-(\d+)")


@dataclass(frozen=True)
class Mail:
    sender: str
    name: str
    message_id: str
    """With its angle brackets."""
    subject: str
    text: str
    """Ends with a line ``Mvh`` (the anchor a body NUL is put into)."""
    ref: str


@dataclass(frozen=True)
class Post:
    path: str
    content_type: str
    body: bytes


def soak_ref(run_id: str, n: int) -> str:
    return f"soakref-{run_id}-{n}"


def ref_number(stored: bytes, run_id: str) -> int | None:
    """The report number in a stored message (raw bytes or the fields as JSON), or None."""
    for match in _REF.finditer(stored):
        if match.group(1).decode() == run_id:
            return int(match.group(2))
    return None


def encode(mail: Mail, provider: str, nul: str | None) -> Post:
    """``mail`` as ``provider`` posts it, with a NUL at ``nul`` (None: none)."""
    if provider == "raw":
        return Post("/webhooks/email/raw", "message/rfc822", _raw(mail, nul))
    if provider == "postmark":
        return Post("/webhooks/email/postmark", "application/json", _postmark(mail, nul))
    if provider == "mailgun":
        return Post("/webhooks/email/mailgun", "application/x-www-form-urlencoded", _mailgun(mail, nul))
    raise ValueError(f"unknown provider {provider!r}")


def _references(mail: Mail) -> str:
    """A thread the bridge never saw: the message is still a new report."""
    return f"<soak.thread.{mail.ref}@mail.example>"


def _raw(mail: Mail, nul: str | None) -> bytes:
    message = EmailMessage(policy=SMTP)
    message["From"] = f"{mail.name} <{mail.sender}>"
    message["To"] = SUPPORT
    message["Subject"] = mail.subject
    message["Message-ID"] = mail.message_id
    message["Date"] = format_datetime(datetime.now(UTC))
    message["X-Mailer"] = MAILER
    message[REF_HEADER] = mail.ref
    if nul == "references":
        message["References"] = _references(mail)
    if nul == "body":
        message.set_content(mail.text, cte="8bit")  # the anchor "Mvh" stays as it is, for a NUL byte
    elif nul == "body-encoded":
        message.set_content(mail.text, cte="quoted-printable")  # the NUL comes as "=00"
    else:
        message.set_content(mail.text)
    raw = message.as_bytes()
    if nul is None:
        return raw
    head, _, body = raw.partition(b"\r\n\r\n")
    header_edits = {
        "subject": (b"\r\nSubject: ", b"\r\nSubject: \x00"),
        "display-name": (b"From: " + mail.name.encode(), b"From: " + mail.name.encode() + b"\x00"),
        "message-id": (b"\r\nMessage-ID: <", b"\r\nMessage-ID: <\x00"),
        "recipient": (b"\r\nTo: sup", b"\r\nTo: sup\x00"),
        "header": (b"\r\nX-Mailer: Soak", b"\r\nX-Mailer: Soak\x00"),
        "references": (b"\r\nReferences: <soak.", b"\r\nReferences: <soak.\x00"),
        "sender": (b" <" + mail.sender.encode(), b" <\x00" + mail.sender.encode()),
    }
    if nul == "body":
        body = _once(body, b"Mvh", b"M\x00vh")
    elif nul == "body-encoded":
        body = _once(body, b"Mvh", b"M=00vh")
    else:
        old, new = header_edits[nul]
        head = _once(b"\r\n" + head, old, new)[2:]
    return head + b"\r\n\r\n" + body


def _once(data: bytes, old: bytes, new: bytes) -> bytes:
    if old not in data:
        raise ValueError(f"{old!r} is not in the message")
    return data.replace(old, new, 1)


def _with_nul(mail: Mail, nul: str | None) -> dict[str, str]:
    """The message's fields as text, the NUL put into the one ``nul`` names."""
    fields = {
        "sender": mail.sender,
        "name": mail.name,
        "subject": mail.subject,
        "text": mail.text,
        "message_id": mail.message_id,
        "mailer": MAILER,
        "references": _references(mail) if nul == "references" else "",
        "recipient": SUPPORT,
    }
    where = {
        "body": ("text", "Mvh", "M\x00vh"),
        "body-encoded": ("text", "Mvh", "M\x00vh"),
        "subject": ("subject", "", "\x00"),
        "display-name": ("name", "", "\x00"),
        "message-id": ("message_id", "<", "<\x00"),
        "recipient": ("recipient", "sup", "sup\x00"),
        "header": ("mailer", "Soak", "Soak\x00"),
        "references": ("references", "<soak.", "<soak.\x00"),
        "sender": ("sender", "", "\x00"),
    }
    if nul is not None:
        key, old, new = where[nul]
        fields[key] = new + fields[key] if not old else fields[key].replace(old, new, 1)
    return fields


def _headers(fields: dict[str, str], mail: Mail) -> list[tuple[str, str]]:
    headers = [
        ("From", f"{fields['name']} <{fields['sender']}>"),
        ("To", fields["recipient"]),
        ("Subject", fields["subject"]),
        ("Message-ID", fields["message_id"]),
        ("X-Mailer", fields["mailer"]),
        (REF_HEADER, mail.ref),
    ]
    if fields["references"]:
        headers.append(("References", fields["references"]))
    return headers


def _postmark(mail: Mail, nul: str | None) -> bytes:
    fields = _with_nul(mail, nul)
    payload: dict[str, Any] = {
        "From": fields["sender"],
        "FromName": fields["name"],
        "FromFull": {"Email": fields["sender"], "Name": fields["name"], "MailboxHash": ""},
        "To": fields["recipient"],
        "ToFull": [{"Email": fields["recipient"], "Name": "", "MailboxHash": ""}],
        "OriginalRecipient": fields["recipient"],
        "Subject": fields["subject"],
        # Postmark's own id (not the Message-ID): fixed per message, so a retry is the same post.
        "MessageID": str(uuid.uuid5(uuid.NAMESPACE_URL, mail.ref)),
        "Date": format_datetime(datetime.now(UTC)),
        "TextBody": fields["text"],
        "Headers": [{"Name": name, "Value": value} for name, value in _headers(fields, mail)],
        "Attachments": [],
    }
    return json.dumps(payload, ensure_ascii=False).encode()


def _mailgun(mail: Mail, nul: str | None) -> bytes:
    fields = _with_nul(mail, nul)
    form = {
        "recipient": fields["recipient"],
        "sender": fields["sender"],
        "from": f"{fields['name']} <{fields['sender']}>",
        "subject": fields["subject"],
        "body-plain": fields["text"],
        "Message-Id": fields["message_id"],
        "message-headers": json.dumps(_headers(fields, mail)),
    }
    return urlencode(form).encode()
