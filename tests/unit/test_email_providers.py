"""Provider webhooks (Mailgun, SendGrid, Postmark) -> stored JSON -> ParsedEmail, with the documented payloads."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
from typing import Any
from urllib.parse import urlencode

import pytest

from bridge.pipeline.intake.email.message import ParsedEmail
from bridge.pipeline.intake.email.parse import parse_rfc822
from bridge.pipeline.intake.email.providers import (
    mailgun_signature_ok,
    mailgun_to_stored,
    message_key,
    parsed_from_mailgun,
    parsed_from_postmark,
    parsed_from_sendgrid,
    payload_digest,
    read_form,
    read_multipart_form,
    read_urlencoded_form,
    sendgrid_to_stored,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40


def form_body(parts: list[tuple[str, bytes] | tuple[str, str, str, bytes]], boundary: str = "xYzZY") -> bytes:
    """A multipart/form-data body, byte for byte (text fields are not encoded by us)."""
    out = b""
    for part in parts:
        if len(part) == 2:
            name, value = part
            out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value + b"\r\n"
        else:
            name, filename, content_type, content = part
            out += (
                (
                    f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                    f"Content-Type: {content_type}\r\n\r\n"
                ).encode()
                + content
                + b"\r\n"
            )
    return out + f"--{boundary}--\r\n".encode()


# --------------------------------------------------------------------------------------------------
# SendGrid (the captured charset payload from wire-formats.md 5.2)

SENDGRID_HEADERS = (
    "Date: Fri, 24 Jul 2020 16:43:46 UTC\n"
    "To: =?utf-8?q?R=C3=A9cipiendaire_pr=C3=A9cieux?= <inbound@sg.example.com>\n"
    "From: =?utf-8?q?Op=C3=A9rateur?= de test <sender@example.com>\n"
    "Subject: =?cp850?q?Como_usted_pidi=A2?=\n"
    "Message-ID: <CAEPk3R+4Zr@mail.example.org>\n"
    "In-Reply-To: <reply-77@support.example.com>\n"
)
SENDGRID_CHARSETS = {
    "to": "UTF-8",
    "cc": "UTF-8",
    "html": "iso-8859-1",
    "subject": "cp850",
    "from": "UTF-8",
    "text": "windows-1252",
}


def sendgrid_parts(charsets: dict[str, str] = SENDGRID_CHARSETS) -> list[Any]:
    return [
        ("headers", SENDGRID_HEADERS.encode("ascii")),
        ("subject", b"Como usted pidi\xa2"),
        ("text", b"Test the ESP\x92s inbound charset handling\x85"),
        ("html", b"<p>Hilsen fra K\xf8benhavn</p>"),
        ("from", "Opérateur de test <sender@example.com>".encode()),
        ("to", "Récipiendaire précieux <inbound@sg.example.com>".encode()),
        ("charsets", json.dumps(charsets).encode()),
        ("envelope", b'{"to":["inbound+tok3n@sg.example.com"],"from":"bounce@example.com"}'),
        ("dkim", b"{@example.org : pass}"),
        ("attachments", b"1"),
        (
            "attachment-info",
            b'{"attachment1": {"filename": "sk\\u00e6rm.png", "type": "image/png", "content-id": "ii_1"}}',
        ),
        ("attachment1", "upload.bin", "application/octet-stream", PNG),
    ]


def sendgrid_request(charsets: dict[str, str] = SENDGRID_CHARSETS) -> tuple[dict[str, bytes], list[Any]]:
    return read_multipart_form('multipart/form-data; boundary="xYzZY"', form_body(sendgrid_parts(charsets)))


def test_multipart_form_keeps_text_fields_as_raw_bytes() -> None:
    """Text fields come back as the bytes sent (cp850/windows-1252), files with name, filename and type."""
    fields, files = sendgrid_request()
    assert fields["subject"] == b"Como usted pidi\xa2"
    assert fields["text"] == b"Test the ESP\x92s inbound charset handling\x85"
    assert files == [("attachment1", "upload.bin", "application/octet-stream", PNG)]


def test_sendgrid_fields_decode_in_their_charsets() -> None:
    """Each text field is decoded in the charset its ``charsets`` entry names, without problems."""
    stored = sendgrid_to_stored(*sendgrid_request())
    assert stored["fields"]["subject"] == "Como usted pidió"
    assert stored["fields"]["text"] == "Test the ESP\u2019s inbound charset handling…"
    assert stored["fields"]["html"] == "<p>Hilsen fra København</p>"
    assert stored["problems"] == []


def test_sendgrid_stored_json_parses() -> None:
    """The stored JSON round-trips and parses: IDs from the raw headers, envelope recipients, names, attachments."""
    stored = json.loads(json.dumps(sendgrid_to_stored(*sendgrid_request())))
    parsed = parsed_from_sendgrid(stored)
    assert parsed.subject == "Como usted pidió"
    assert parsed.body == "Test the ESP\u2019s inbound charset handling…"
    assert parsed.message_id == "CAEPk3R+4Zr@mail.example.org"
    assert parsed.in_reply_to == ("reply-77@support.example.com",)
    assert (parsed.sender, parsed.sender_name) == ("sender@example.com", "Opérateur de test")
    assert parsed.envelope_sender == "bounce@example.com"
    assert parsed.recipients == ("inbound+tok3n@sg.example.com", "inbound@sg.example.com")
    assert [(a.filename, a.content_type, a.content) for a in parsed.attachments] == [("skærm.png", "image/png", PNG)]
    assert parsed.problems == ()


def test_sendgrid_html_only_body() -> None:
    """Without a text field the iso-8859-1 HTML field becomes the body."""
    fields, files = sendgrid_request()
    del fields["text"]
    assert parsed_from_sendgrid(sendgrid_to_stored(fields, files)).body == "Hilsen fra København"


def test_sendgrid_unknown_charset_is_a_problem() -> None:
    """An unknown charset in ``charsets`` falls back (UTF-8, else Windows-1252) and is recorded."""
    stored = sendgrid_to_stored(*sendgrid_request({**SENDGRID_CHARSETS, "text": "x-martian"}))
    assert stored["fields"]["text"] == "Test the ESP\u2019s inbound charset handling…"
    assert stored["problems"] == ["sendgrid field 'text': unknown charset 'x-martian'; read as windows-1252"]
    assert parsed_from_sendgrid(stored).problems == tuple(stored["problems"])


def test_sendgrid_subject_falls_back_to_header() -> None:
    """A subject field mangled by a wrong charset gives way to the header's encoded-word."""
    stored = sendgrid_to_stored(*sendgrid_request({**SENDGRID_CHARSETS, "subject": "utf-8"}))
    assert stored["fields"]["subject"] == "Como usted pidi¢"
    assert stored["problems"] == ["sendgrid field 'subject': not valid 'utf-8'; read as windows-1252"]
    assert parsed_from_sendgrid(stored).subject == "Como usted pidió"


def test_sendgrid_subject_field_wins_over_raw_8bit_header() -> None:
    """When the raw header block holds unencoded 8-bit text, the charset-labelled subject field is used."""
    fields, files = sendgrid_request()
    fields["headers"] = "Subject: Como usted pidi\u00f3\nFrom: a@example.com\n".encode("cp850")
    fields["subject"] = "Como usted pidió".encode("cp850")
    parsed = parsed_from_sendgrid(sendgrid_to_stored(fields, files))
    assert parsed.subject == "Como usted pidió"


def test_sendgrid_raw_mode() -> None:
    """Raw mode's ``email`` field is stored as raw bytes and parsed as the message; the envelope is added."""
    raw = "From: Bo <bo@kunde.dk>\r\nSubject: =?iso-8859-1?q?bl=E5b=E6r?=\r\nMessage-ID: <raw@kunde.dk>\r\n\r\nHej\r\n"
    fields = {
        "email": raw.encode(),
        "envelope": b'{"to":["support+abc@sg.example.com"],"from":"bo@kunde.dk"}',
        "charsets": b'{"to":"UTF-8"}',
    }
    stored = json.loads(json.dumps(sendgrid_to_stored(fields, [])))
    assert base64.b64decode(stored["raw"]) == raw.encode()
    parsed = parsed_from_sendgrid(stored)
    assert (parsed.subject, parsed.body, parsed.message_id) == ("blåbær", "Hej", "raw@kunde.dk")
    assert parsed.recipients == ("support+abc@sg.example.com",)


def test_multipart_form_edge_cases() -> None:
    """RFC 2231 filenames decode, repeated fields keep the first, and a body cut short keeps what arrived."""
    body = (
        b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nfirst\r\n'
        b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nsecond\r\n'
        b"--b\r\nContent-Disposition: form-data; name=\"f\"; filename*=utf-8''bl%C3%A5.txt\r\n\r\nx\r\n"
        b'--b\r\nContent-Disposition: form-data; name="cut"\r\n\r\npartial'
    )
    fields, files = read_multipart_form("multipart/form-data; boundary=b", body)
    assert fields == {"a": b"first", "cut": b"partial"}
    assert files == [("f", "blå.txt", "application/octet-stream", b"x")]


@pytest.mark.parametrize("content_type", ["application/json", "multipart/form-data", "text/plain; boundary=x"])
def test_multipart_form_rejects_other_bodies(content_type: str) -> None:
    """A body that is not multipart/form-data with a boundary raises ValueError (the web layer answers 400)."""
    with pytest.raises(ValueError, match="multipart"):
        read_multipart_form(content_type, b"--x\r\n\r\n--x--")


# --------------------------------------------------------------------------------------------------
# Mailgun (the forward example from wire-formats.md 5.1)

MAILGUN_HEADERS = [
    ["X-Mailgun-Spf", "Pass"],
    ["Received", "from mail.kunde.dk by mxa.mailgun.org"],
    ["From", "Søren Ærø <soren@kunde.dk>"],
    ["To", "support+9f2c1e@mg.example.com"],
    ["Message-Id", "<CAEPk3R+4Zr@mail.kunde.dk>"],
    ["In-Reply-To", "<reply-9f2c1e@support.example.com>"],
    ["References", "<CAEPk3Rxx@mail.kunde.dk> <reply-9f2c1e@support.example.com>"],
    ["Subject", "Re: [SUP-17] Kan ikke logge ind"],
    ["Auto-Submitted", "no"],
]
MAILGUN_FIELDS = {
    "recipient": "support+9f2c1e@mg.example.com",
    "sender": "bounce-1234@mail.kunde.dk",
    "from": "Søren Ærø <soren@kunde.dk>",
    "subject": "Re: [SUP-17] Kan ikke logge ind",
    "body-plain": "Det virker stadig ikke.\n\nOn Mon, 1 May 2023 at 10:00, Support <support@example.com> wrote:\n"
    "> Har du prøvet igen?\n",
    "stripped-text": "Det virker stadig ikke.",
    "stripped-signature": "",
    "body-html": "<div>Det virker stadig ikke.</div>",
    "Message-Id": "<CAEPk3R+4Zr@mail.kunde.dk>",
    "message-headers": json.dumps(MAILGUN_HEADERS),
    "timestamp": "1461261330",
    "token": "06c96bafc3f42a66b9edd546347a2fe18dc23461fe80dc52f0",
}


def test_urlencoded_form_gives_raw_bytes() -> None:
    """An urlencoded body is read to raw UTF-8 bytes per field (and read_form picks the right reader)."""
    body = urlencode(MAILGUN_FIELDS).encode()
    fields = read_urlencoded_form(body)
    assert fields["from"] == "Søren Ærø <soren@kunde.dk>".encode()
    assert read_form("application/x-www-form-urlencoded; charset=utf-8", body) == (fields, [])


def test_mailgun_forward() -> None:
    """A Mailgun forward: threading from message-headers, envelope recipient and sender, body through strip_reply."""
    stored = json.loads(json.dumps(mailgun_to_stored(read_urlencoded_form(urlencode(MAILGUN_FIELDS).encode()), [])))
    parsed = parsed_from_mailgun(stored)
    assert parsed.message_id == "CAEPk3R+4Zr@mail.kunde.dk"
    assert parsed.in_reply_to == ("reply-9f2c1e@support.example.com",)
    assert parsed.references == ("CAEPk3Rxx@mail.kunde.dk", "reply-9f2c1e@support.example.com")
    assert (parsed.sender, parsed.sender_name) == ("soren@kunde.dk", "Søren Ærø")
    assert parsed.envelope_sender == "bounce-1234@mail.kunde.dk"
    assert parsed.recipients == ("support+9f2c1e@mg.example.com",)
    assert parsed.body == "Det virker stadig ikke."
    assert "> Har du prøvet igen?" in parsed.full_body
    assert (parsed.automated, parsed.language, parsed.problems) == (None, "da", ())


def test_mailgun_multipart_with_attachment() -> None:
    """A multipart Mailgun forward keeps its attachment-N files, base64 in the stored JSON."""
    parts: list[Any] = [(k, v.encode()) for k, v in MAILGUN_FIELDS.items()]
    parts += [("attachment-count", b"1"), ("attachment-1", "screenshot.png", "image/png", PNG)]
    fields, files = read_multipart_form("multipart/form-data; boundary=mgb", form_body(parts, "mgb"))
    stored = mailgun_to_stored(fields, files)
    assert stored["attachments"][0]["content"] == base64.b64encode(PNG).decode()
    parsed = parsed_from_mailgun(json.loads(json.dumps(stored)))
    assert [(a.filename, a.content_type, a.content) for a in parsed.attachments] == [
        ("screenshot.png", "image/png", PNG)
    ]


def test_mailgun_oversized_attachment_is_listed_not_stored() -> None:
    """With a size cap, a too-large file is stored without content and listed as oversized."""
    stored = mailgun_to_stored(
        {"from": b"a@x.dk", "body-plain": b"hej"}, [("attachment-1", "big.bin", "", PNG)], max_attachment_bytes=10
    )
    assert "content" not in stored["attachments"][0]
    parsed = parsed_from_mailgun(stored)
    assert (parsed.attachments, parsed.oversized_attachments) == ((), ("big.bin",))
    assert parsed_from_mailgun(
        mailgun_to_stored({"from": b"a@x.dk"}, [("f", "p.png", "image/png", PNG)]), max_attachment_bytes=10
    ).oversized_attachments == ("p.png",)


def test_mailgun_stripped_text_is_the_fallback() -> None:
    """Mailgun's stripped-text is used only when body-plain and body-html are empty."""
    fields = {**MAILGUN_FIELDS, "body-plain": "", "body-html": "", "stripped-text": "Kun stripped."}
    parsed = parsed_from_mailgun(mailgun_to_stored({k: v.encode() for k, v in fields.items()}, []))
    assert parsed.body == "Kun stripped."


def test_mailgun_without_message_headers_uses_header_fields() -> None:
    """Without message-headers, Mailgun's capitalised per-header fields give the IDs and machine-mail signs."""
    fields = {k: v for k, v in MAILGUN_FIELDS.items() if k != "message-headers"}
    fields |= {"In-Reply-To": "<r@support.example.com>", "Auto-Submitted": "auto-replied"}
    parsed = parsed_from_mailgun(mailgun_to_stored({k: v.encode() for k, v in fields.items()}, []))
    assert (parsed.message_id, parsed.in_reply_to) == ("CAEPk3R+4Zr@mail.kunde.dk", ("r@support.example.com",))
    assert parsed.automated == "auto-submitted:auto-replied"


def test_mailgun_body_mime_is_parsed_as_the_message() -> None:
    """In raw MIME mode body-mime is parsed itself, with Mailgun's recipient and sender as the envelope."""
    mime = "From: Bo <bo@kunde.dk>\r\nMessage-ID: <m@kunde.dk>\r\nSubject: Hej\r\n\r\nTekst\r\n"
    fields = {"body-mime": mime.encode(), "recipient": b"support+key@mg.example.com", "sender": b""}
    stored = json.loads(json.dumps(mailgun_to_stored(fields, [])))
    parsed = parsed_from_mailgun(stored)
    assert (parsed.message_id, parsed.body) == ("m@kunde.dk", "Tekst")
    assert parsed.recipients == ("support+key@mg.example.com",)
    assert (parsed.envelope_sender, parsed.automated) == ("", "null-sender")


def test_mailgun_machine_sender_from_field() -> None:
    """The ``from`` field counts for machine-mail detection when message-headers has no From."""
    fields = {"from": "MAILER-DAEMON@mg.example.com", "subject": "x", "body-plain": "y", "message-headers": "[]"}
    assert parsed_from_mailgun(mailgun_to_stored(fields, [])).automated == "machine-sender:mailer-daemon"  # type: ignore[arg-type]


KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"


def mailgun_signature(timestamp: str, token: str, key: str = KEY) -> str:
    return hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    ("key", "timestamp", "signature", "now", "expected"),
    [
        (KEY, "1461261330", mailgun_signature("1461261330", "tok"), 1461261330 + 10, True),
        (KEY, "1461261330", mailgun_signature("1461261330", "tok").upper(), 1461261330, True),
        (KEY, "1461261330", mailgun_signature("1461261330", "tok", "other"), 1461261330, False),
        (KEY, "1461261330", mailgun_signature("1461261330", "tok"), 1461261330 + 301, False),
        (KEY, "1461261330", mailgun_signature("1461261330", "tok"), 1461261330 - 301, False),
        (KEY, "soon", mailgun_signature("soon", "tok"), 1461261330, False),
        (KEY, "nan", mailgun_signature("nan", "tok"), 1461261330, False),
        ("", "1461261330", mailgun_signature("1461261330", "tok", ""), 1461261330, False),
        (KEY, "1461261330", "æøå", 1461261330, False),
    ],
)
def test_mailgun_signature(key: str, timestamp: str, signature: str, now: float, expected: bool) -> None:
    """HMAC-SHA256(timestamp+token) must match, the timestamp must be fresh and numeric, and a key is required."""
    assert mailgun_signature_ok(key, timestamp, "tok", signature, now=now) is expected


# --------------------------------------------------------------------------------------------------
# Postmark (the sample from wire-formats.md 5.3)


def postmark_sample() -> dict[str, Any]:
    return {
        "FromName": "Postmarkapp Support",
        "MessageStream": "inbound",
        "From": "support@postmarkapp.com",
        "FromFull": {"Email": "support@postmarkapp.com", "Name": "Postmarkapp Support", "MailboxHash": ""},
        "To": '"Firstname Lastname" <mailbox+SampleHash@inbound.postmarkapp.com>',
        "ToFull": [
            {
                "Email": "mailbox+SampleHash@inbound.postmarkapp.com",
                "Name": "Firstname Lastname",
                "MailboxHash": "SampleHash",
            }
        ],
        "Cc": '"First Cc" <firstcc@postmarkapp.com>, secondCc@postmarkapp.com',
        "CcFull": [
            {"Email": "firstcc@postmarkapp.com", "Name": "First Cc", "MailboxHash": ""},
            {"Email": "secondCc@postmarkapp.com", "Name": "", "MailboxHash": ""},
        ],
        "Bcc": '"First Bcc" <firstbcc@postmarkapp.com>',
        "BccFull": [{"Email": "firstbcc@postmarkapp.com", "Name": "First Bcc", "MailboxHash": ""}],
        "OriginalRecipient": "mailbox+SampleHash@inbound.postmarkapp.com",
        "Subject": "Test subject",
        "MessageID": "00000000-0000-0000-0000-000000000000",
        "ReplyTo": "replyto@example.com",
        "MailboxHash": "SampleHash",
        "Date": "Fri, 5 May 2023 17:44:33 -0400",
        "TextBody": "This is a test text body.",
        "HtmlBody": "<html><body><p>This is a test html body.</p></body></html>",
        "StrippedTextReply": "This is the reply text",
        "Tag": "TestTag",
        "Headers": [
            {"Name": "Return-Path", "Value": "<envelope-from@example.org>"},
            {"Name": "X-Spam-Status", "Value": "No"},
            {"Name": "X-Spam-Score", "Value": "1.7"},
            {"Name": "Message-ID", "Value": "<CAEPk3R+4Zr@mail.example.org>"},
        ],
        "Attachments": [
            {
                "Name": "test.txt",
                "Content": "VGhpcyBpcyBhdHRhY2htZW50IGNvbnRlbnRzLCBiYXNlLTY0IGVuY29kZWQu",
                "ContentType": "text/plain",
                "ContentLength": 45,
                "ContentID": "",
            }
        ],
    }


def test_postmark_sample() -> None:
    """Message-ID comes from Headers[] (not Postmark's MessageID UUID); Return-Path is the envelope sender."""
    parsed = parsed_from_postmark(postmark_sample())
    assert parsed.message_id == "CAEPk3R+4Zr@mail.example.org"
    assert parsed.envelope_sender == "envelope-from@example.org"
    assert (parsed.sender, parsed.sender_name) == ("support@postmarkapp.com", "Postmarkapp Support")
    assert (parsed.subject, parsed.body) == ("Test subject", "This is a test text body.")
    assert parsed.recipients[0] == "mailbox+samplehash@inbound.postmarkapp.com"
    assert {"firstcc@postmarkapp.com", "secondcc@postmarkapp.com", "firstbcc@postmarkapp.com"} <= set(parsed.recipients)
    assert [(a.filename, a.content) for a in parsed.attachments] == [
        ("test.txt", b"This is attachment contents, base-64 encoded.")
    ]
    assert (parsed.automated, parsed.problems) == (None, ())


def test_postmark_test_payload_data_attachments() -> None:
    """Attachments carrying ``Data`` (the dashboard test payload) are read like ``Content``."""
    payload = postmark_sample()
    payload["Attachments"] = [
        {"Name": "log.txt", "Data": base64.b64encode(b"log").decode(), "ContentType": "text/plain"},
        {"Name": "bad.bin", "Content": "!!not base64!!", "ContentType": "x/y"},
    ]
    parsed = parsed_from_postmark(payload)
    assert [(a.filename, a.content) for a in parsed.attachments] == [("log.txt", b"log")]
    assert parsed.problems == ("attachment 'bad.bin': not valid base64",)


def test_postmark_threading_headers_any_case() -> None:
    """In-Reply-To and References come from Headers[] whatever the case of their names."""
    payload = postmark_sample()
    payload["Headers"] = [
        {"Name": "message-id", "Value": "<a@x>"},
        {"Name": "IN-REPLY-TO", "Value": "<reply-k3y@support.example.com>"},
        {"Name": "references", "Value": "<r1@x>,\r\n <reply-k3y@support.example.com>"},
        {"Name": "Auto-Submitted", "Value": "auto-replied"},
    ]
    parsed = parsed_from_postmark(payload)
    assert (parsed.message_id, parsed.in_reply_to) == ("a@x", ("reply-k3y@support.example.com",))
    assert parsed.references == ("r1@x", "reply-k3y@support.example.com")
    assert parsed.automated == "auto-submitted:auto-replied"


def test_postmark_html_only_and_stripped_fallback() -> None:
    """Without TextBody the HtmlBody is the body; with neither, StrippedTextReply is."""
    payload = postmark_sample() | {"TextBody": ""}
    assert parsed_from_postmark(payload).body == "This is a test html body."
    assert parsed_from_postmark(payload | {"HtmlBody": ""}).body == "This is the reply text"


def test_postmark_raw_email() -> None:
    """RawEmail, when present, is parsed as the message; Postmark's recipients join as the envelope."""
    payload = postmark_sample() | {
        "RawEmail": "From: Bo <bo@kunde.dk>\nMessage-ID: <raw-pm@kunde.dk>\nSubject: =?utf-8?q?Gr=C3=B8d?=\n\nTekst\n"
    }
    parsed = parsed_from_postmark(payload)
    assert (parsed.message_id, parsed.subject, parsed.body) == ("raw-pm@kunde.dk", "Grød", "Tekst")
    assert "mailbox+samplehash@inbound.postmarkapp.com" in parsed.recipients
    assert parsed.envelope_sender == "envelope-from@example.org"


# --------------------------------------------------------------------------------------------------
# Dedup and robustness


def test_message_key() -> None:
    """The key is the Message-ID; without one ``sha256:<digest>``; an over-long ID is hashed to fit 255."""
    with_id = parse_rfc822(b"Message-ID: <abc@x>\r\n\r\nx")
    without = parse_rfc822(b"Subject: x\r\n\r\nx")
    long_id = parse_rfc822(b"Message-ID: <" + b"a" * 300 + b"@x>\r\n\r\nx")
    assert message_key(with_id, "d1") == "abc@x"
    assert message_key(without, "d1") == "sha256:d1"
    assert message_key(without, "sha256:d1") == "sha256:d1"
    assert message_key(long_id, "d1") == "msgid-sha256:" + hashlib.sha256(b"a" * 300 + b"@x").hexdigest()
    assert (
        payload_digest({"b": 1, "a": 2})
        == payload_digest({"a": 2, "b": 1})
        == hashlib.sha256(b'{"a": 2, "b": 1}').hexdigest()
    )


def _junk(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(8 if depth < 3 else 5)
    if choice == 0:
        return None
    if choice == 1:
        return rng.randrange(-5, 10**6)
    if choice == 2:
        return "".join(chr(rng.choice([rng.randrange(32, 127), rng.randrange(0xA0, 0x3000), 0xD800])) for _ in range(8))
    if choice == 3:
        return rng.choice(["<a@b>", "=?utf-8?b?w6Y=?=", "not base64 !", "", '[["From","x@y"]]', "{}", "<>"])
    if choice == 4:
        return base64.b64encode(rng.randbytes(12)).decode()
    if choice in (5, 6):
        return [_junk(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(KEYS): _junk(rng, depth + 1) for _ in range(rng.randrange(5))}


KEYS = [
    "Name",
    "Value",
    "Content",
    "Data",
    "Email",
    "filename",
    "content",
    "content_type",
    "size",
    "oversized",
    "Headers",
    "Attachments",
    "FromFull",
    "ToFull",
    "RawEmail",
    "TextBody",
    "HtmlBody",
    "raw",
    "fields",
    "attachments",
    "message-headers",
    "envelope",
    "headers",
    "from",
    "subject",
    "body-plain",
    "problems",
]


def test_provider_parsers_never_raise_on_junk() -> None:
    """parsed_from_* accept any JSON-ish junk and still give a ParsedEmail with UTF-8-encodable text."""
    rng = random.Random(0)
    for _ in range(300):
        junk = {rng.choice(KEYS): _junk(rng) for _ in range(rng.randrange(8))}
        for parse in (parsed_from_mailgun, parsed_from_sendgrid, parsed_from_postmark):
            parsed = parse(junk)
            assert isinstance(parsed, ParsedEmail)
            for text in (parsed.subject, parsed.body, parsed.sender or "", *parsed.recipients, *parsed.problems):
                text.encode("utf-8")


def test_postmark_non_ascii_sender_address_is_read() -> None:
    """An internationalised address (RFC 6531) does not cost the reporter their report."""
    from bridge.pipeline.intake.email.providers import parsed_from_postmark

    parsed = parsed_from_postmark(
        {
            "From": "jørgen@firma.dk",
            "FromName": "Jørgen",
            "Subject": "Fejl",
            "TextBody": "Det virker ikke",
            "Headers": [{"Name": "Message-ID", "Value": "<x1@firma.dk>"}],
        },
        max_attachment_bytes=1024,
    )
    assert parsed.sender == "jørgen@firma.dk"
    assert parsed.body.startswith("Det virker ikke")
