"""Inbound-email webhooks (Mailgun, SendGrid, Postmark) -> JSON to store -> :class:`ParsedEmail`.

Pure: no I/O, no clock (``now`` is passed in), no Flask. The web layer reads the request body with
:func:`read_multipart_form` / :func:`read_urlencoded_form` (text fields stay bytes: SendGrid sends each
in its own charset), turns the fields into JSON with ``*_to_stored`` and stores that; the job later
calls ``parsed_from_*``. Postmark posts JSON, which is stored as it came.

The stored shape (``*_to_stored``)::

    {"provider": "mailgun" | "sendgrid", "version": 1,
     "fields": {name: text},                       # decoded text fields
     "attachments": [{"field", "filename", "content_type", "size", "content" (base64) | "oversized": true}],
     "raw": base64 of the full MIME message,      # only in raw mode (Mailgun body-mime, SendGrid email)
     "problems": [text]}                          # what could not be decoded on receipt
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from email.message import Message
from email.utils import formataddr
from typing import Any
from urllib.parse import unquote_to_bytes

from bridge.pipeline.intake.email.message import EmailAttachment, ParsedEmail
from bridge.pipeline.intake.email.parse import (
    DEFAULT_MAX_ATTACHMENT_BYTES,
    MAX_ATTACHMENTS,
    build_parsed,
    capped_headers,
    clean_content_type,
    clean_text,
    decode_bytes,
    decode_header_value,
    header_value,
    parse_header_block,
    parse_rfc822,
    safe_filename,
)

FormFile = tuple[str, str, str, bytes]
"""(form field name, filename, content type, content) of one uploaded file."""

STORED_VERSION = 1
MAX_FORM_PARTS = 10_000


# --------------------------------------------------------------------------------------------------
# Reading form bodies


def _form_header_params(raw_headers: bytes) -> tuple[str | None, str | None, str]:
    """(field name, filename or None, content type) from one form part's header block."""
    try:
        text = raw_headers.decode("utf-8")
    except UnicodeDecodeError:
        text = raw_headers.decode("latin-1")
    text = re.sub(r"\r?\n[ \t]+", " ", text)
    carrier = Message()
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() in ("content-disposition", "content-type"):
            carrier[name.strip()] = value.strip()
    name_param = carrier.get_param("name", header="content-disposition")
    field = name_param if isinstance(name_param, str) else None
    # get_param folds RFC 2231 "filename*" into "filename"; a present but empty filename is still a file.
    has_filename = carrier.get_param("filename", header="content-disposition") is not None
    filename = carrier.get_filename() if has_filename else None
    if filename is not None:
        filename = decode_header_value(filename)
    content_type = carrier.get_content_type() if carrier.get("Content-Type") else ""
    return field, filename, content_type


def read_multipart_form(content_type: str, body: bytes) -> tuple[dict[str, bytes], list[FormFile]]:
    """A ``multipart/form-data`` body without decoding any text: fields as raw bytes, files as
    (field, filename, content type, bytes). The first of repeated fields wins; a body cut short keeps
    what arrived. Raises ValueError when ``content_type`` is not multipart/form-data with a boundary."""
    carrier = Message()
    carrier["Content-Type"] = content_type or ""
    if carrier.get_content_type() != "multipart/form-data":
        raise ValueError(f"not multipart/form-data: {content_type[:80]!r}")
    boundary = carrier.get_boundary()
    if not boundary or len(boundary) > 200:
        raise ValueError("multipart/form-data without a usable boundary")
    delimiter = re.compile(
        rb"(?:\A|\r?\n)--" + re.escape(boundary.encode("utf-8", "replace")) + rb"(--)?[ \t]*(?:\r?\n|\Z)"
    )
    fields: dict[str, bytes] = {}
    files: list[FormFile] = []
    previous_end: int | None = None
    for count, match in enumerate(delimiter.finditer(body)):
        if previous_end is not None:
            _add_form_part(body[previous_end : match.start()], fields, files)
        if match.group(1) or count >= MAX_FORM_PARTS:
            previous_end = None
            break
        previous_end = match.end()
    if previous_end is not None and previous_end < len(body):
        _add_form_part(body[previous_end:], fields, files)  # closing delimiter never came
    return fields, files


def _add_form_part(part: bytes, fields: dict[str, bytes], files: list[FormFile]) -> None:
    split = re.search(rb"\r?\n\r?\n", part)
    if split is None:
        return
    name, filename, content_type = _form_header_params(part[: split.start()])
    if name is None:
        return
    content = part[split.end() :]
    if filename is not None:
        files.append((name, filename, content_type or "application/octet-stream", content))
    else:
        fields.setdefault(name, content)


def read_urlencoded_form(body: bytes) -> dict[str, bytes]:
    """An ``application/x-www-form-urlencoded`` body, values as raw bytes; the first of repeated fields wins."""
    fields: dict[str, bytes] = {}
    for pair in body.split(b"&"):
        if not pair:
            continue
        raw_name, _, raw_value = pair.partition(b"=")
        name = unquote_to_bytes(raw_name.replace(b"+", b" ")).decode("utf-8", "replace")
        fields.setdefault(name, unquote_to_bytes(raw_value.replace(b"+", b" ")))
    return fields


def read_form(content_type: str, body: bytes) -> tuple[dict[str, bytes], list[FormFile]]:
    """Either form encoding, by content type (ValueError for anything else)."""
    mimetype = (content_type or "").split(";", 1)[0].strip().lower()
    if mimetype == "application/x-www-form-urlencoded":
        return read_urlencoded_form(body), []
    return read_multipart_form(content_type, body)


# --------------------------------------------------------------------------------------------------
# Shared helpers


def _as_bytes(value: bytes | bytearray | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _attachment_record(
    field: str, filename: str, content_type: str, content: bytes, max_bytes: int | None
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "field": field,
        "filename": filename,
        "content_type": content_type or "application/octet-stream",
        "size": len(content),
    }
    if max_bytes is not None and len(content) > max_bytes:
        record["oversized"] = True
    else:
        record["content"] = base64.b64encode(content).decode("ascii")
    return record


def _stored_fields(stored: Mapping[str, Any]) -> dict[str, str]:
    fields = stored.get("fields")
    source = fields if isinstance(fields, Mapping) else stored  # tolerate the plain decoded form
    return {str(k): v for k, v in source.items() if isinstance(v, str)}


def _stored_problems(stored: Mapping[str, Any]) -> list[str]:
    problems = stored.get("problems")
    return [clean_text(p)[:500] for p in problems if isinstance(p, str)] if isinstance(problems, list) else []


def _stored_raw(stored: Mapping[str, Any], problems: list[str]) -> bytes | None:
    raw = stored.get("raw")
    if not isinstance(raw, str):
        return None
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        problems.append("stored raw message is not valid base64")
        return None


def _decode_base64(data: str, what: str, problems: list[str]) -> bytes | None:
    try:
        return base64.b64decode(re.sub(r"\s+", "", data), validate=True)
    except (binascii.Error, ValueError):
        try:
            return base64.b64decode(data + "=" * (-len(data) % 4))
        except (binascii.Error, ValueError):
            problems.append(f"{what}: not valid base64")
            return None


class _Attachments:
    def __init__(self, max_bytes: int, problems: list[str]) -> None:
        self.max_bytes = max_bytes
        self.problems = problems
        self.kept: list[EmailAttachment] = []
        self.oversized: list[str] = []

    def add(self, filename: str | None, content_type: str, content: bytes | None, size: int | None = None) -> None:
        number = len(self.kept) + len(self.oversized) + 1
        if number > MAX_ATTACHMENTS:
            self.problems.append(f"more than {MAX_ATTACHMENTS} attachments; the rest were ignored")
            return
        content_type = clean_content_type(content_type)
        name = safe_filename(filename, content_type, number)
        if content is None or len(content) > self.max_bytes:
            if content is not None or (size is not None and size > self.max_bytes):
                self.oversized.append(name)
            return
        self.kept.append(EmailAttachment(filename=name, content_type=content_type, content=content))

    def add_stored(self, records: Any) -> None:
        if not isinstance(records, list):
            return
        for record in records:
            if not isinstance(record, Mapping):
                continue
            filename = record.get("filename")
            content_type = str(record.get("content_type") or "")
            size = record.get("size")
            data = record.get("content")
            content = _decode_base64(data, f"attachment {filename!r}", self.problems) if isinstance(data, str) else None
            if record.get("oversized") is True:  # over the cap when it was stored: listed whatever the cap now
                self.oversized.append(safe_filename(filename if isinstance(filename, str) else None, content_type, 0))
                continue
            if content is None:
                continue
            self.add(
                filename if isinstance(filename, str) else None,
                content_type,
                content,
                size if isinstance(size, int) else None,
            )


def _from_header(name: str, address: str) -> str:
    """A From value for a name and address. ``formataddr`` refuses non-ASCII addresses
    (``jørgen@firma.dk``), which are valid (RFC 6531) and must not cost the reporter their report."""
    try:
        return formataddr((name, address))
    except UnicodeEncodeError:
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{quoted}" <{address}>' if name else address


def _json_field(value: str | None, what: str, problems: list[str]) -> Any:
    if value is None or not value.strip():
        return None
    try:
        return json.loads(value)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        problems.append(f"{what}: not valid JSON")
        return None


# --------------------------------------------------------------------------------------------------
# Mailgun


def mailgun_signature_ok(
    signing_key: str, timestamp: str, token: str, signature: str, *, now: float, tolerance: float = 300
) -> bool:
    """Mailgun's webhook signature: hex HMAC-SHA256 of ``timestamp + token`` under the signing key,
    compared in constant time, with ``timestamp`` within ``tolerance`` seconds of ``now``.
    (Replays inside the window are the caller's to block, by remembering ``token``.)"""
    if not signing_key or not timestamp or not token or not signature:
        return False
    try:
        sent_at = float(timestamp.strip())
    except ValueError:
        return False
    if not math.isfinite(sent_at) or abs(now - sent_at) > tolerance:
        return False
    expected = hmac.new(signing_key.encode("utf-8"), (timestamp + token).encode("utf-8"), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode("ascii"), signature.strip().lower().encode("utf-8", "replace"))


def mailgun_to_stored(
    fields: Mapping[str, bytes | str], files: Sequence[FormFile], *, max_attachment_bytes: int | None = None
) -> dict[str, Any]:
    """A Mailgun route forward as JSON: text fields as UTF-8 text (Mailgun transcodes everything to
    UTF-8), files as base64 (only listed when over ``max_attachment_bytes``), ``body-mime`` kept raw."""
    problems: list[str] = []
    stored: dict[str, Any] = {"provider": "mailgun", "version": STORED_VERSION}
    text: dict[str, str] = {}
    for name, value in fields.items():
        data = _as_bytes(value)
        if name == "body-mime":
            stored["raw"] = base64.b64encode(data).decode("ascii")
            continue
        text[name] = decode_bytes(data, "utf-8", f"mailgun field {name[:40]!r}", problems)
    attachments = []
    for field, filename, content_type, content in files:
        if field == "body-mime" and "raw" not in stored:
            stored["raw"] = base64.b64encode(content).decode("ascii")
            continue
        attachments.append(_attachment_record(field, filename, content_type, content, max_attachment_bytes))
    stored.update(fields=text, attachments=attachments, problems=problems)
    return stored


def _mailgun_headers(fields: Mapping[str, str], problems: list[str]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    data = _json_field(fields.get("message-headers"), "message-headers", problems)
    if isinstance(data, list):
        for item in data:
            if isinstance(item, list | tuple) and len(item) == 2 and all(isinstance(x, str) for x in item):
                pairs.append((item[0], item[1]))
    if not pairs:
        # Mailgun also posts every header as its own capitalised field ("Message-Id", "In-Reply-To").
        pairs = [(name, value) for name, value in fields.items() if name[:1].isupper()]
    return capped_headers(pairs, problems)


def parsed_from_mailgun(
    stored: Mapping[str, Any], *, max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES
) -> ParsedEmail:
    """The email in a stored Mailgun forward (``body-mime`` is parsed as the message itself).

    The body is ``body-plain`` (else ``body-html``) through :func:`strip_reply`, like every other
    source; Mailgun's own ``stripped-text`` is used only when there is no other body.
    """
    problems = _stored_problems(stored)
    fields = _stored_fields(stored)
    recipients = [fields["recipient"]] if fields.get("recipient") else []
    raw = _stored_raw(stored, problems)
    if raw is not None:
        parsed = parse_rfc822(
            raw,
            max_attachment_bytes=max_attachment_bytes,
            envelope_sender=fields.get("sender"),
            envelope_recipients=recipients,
        )
        return _with_problems(parsed, problems)
    headers = _mailgun_headers(fields, problems)
    attachments = _Attachments(max_attachment_bytes, problems)
    attachments.add_stored(stored.get("attachments"))
    return build_parsed(
        headers=headers,
        subject=fields.get("subject"),
        from_value=fields.get("from"),
        envelope_sender=fields.get("sender"),
        envelope_recipients=recipients,
        text=fields.get("body-plain"),
        html=fields.get("body-html"),
        stripped_fallback=fields.get("stripped-text"),
        attachments=attachments.kept,
        oversized=attachments.oversized,
        problems=problems,
    )


def _with_problems(parsed: ParsedEmail, problems: list[str]) -> ParsedEmail:
    if not problems:
        return parsed
    return replace(parsed, problems=tuple(dict.fromkeys([*problems, *parsed.problems])))


# --------------------------------------------------------------------------------------------------
# SendGrid


_SENDGRID_RAW_FIELD = "email"


def sendgrid_to_stored(
    fields: Mapping[str, bytes | str], files: Sequence[FormFile], *, max_attachment_bytes: int | None = None
) -> dict[str, Any]:
    """A SendGrid Inbound Parse post as JSON: each text field decoded in the charset its ``charsets``
    entry names (an unknown or wrong charset falls back, recorded in ``problems``); raw mode's
    ``email`` field kept as raw bytes; files as base64 with the names from ``attachment-info``."""
    problems: list[str] = []
    stored: dict[str, Any] = {"provider": "sendgrid", "version": STORED_VERSION}
    charsets_raw = fields.get("charsets")
    charsets: dict[str, str] = {}
    if charsets_raw is not None:
        data = _json_field(_as_bytes(charsets_raw).decode("utf-8", "replace"), "charsets", problems)
        if isinstance(data, dict):
            charsets = {str(k): str(v) for k, v in data.items() if isinstance(v, str)}
    text: dict[str, str] = {}
    for name, value in fields.items():
        data_bytes = _as_bytes(value)
        if name == _SENDGRID_RAW_FIELD:
            stored["raw"] = base64.b64encode(data_bytes).decode("ascii")
            continue
        if isinstance(value, str):
            text[name] = value  # already text (a caller that decoded it): nothing more to learn
            continue
        text[name] = decode_bytes(data_bytes, charsets.get(name), f"sendgrid field {name[:40]!r}", problems)
    parsed_info = _json_field(text.get("attachment-info"), "attachment-info", problems)
    info: dict[str, Any] = parsed_info if isinstance(parsed_info, dict) else {}
    attachments = []
    for field, filename, content_type, content in files:
        if field == _SENDGRID_RAW_FIELD and "raw" not in stored:
            stored["raw"] = base64.b64encode(content).decode("ascii")
            continue
        entry = info.get(field)
        meta: dict[str, Any] = entry if isinstance(entry, dict) else {}
        name = meta["filename"] if isinstance(meta.get("filename"), str) else filename
        kind = meta["type"] if isinstance(meta.get("type"), str) else content_type
        attachments.append(_attachment_record(field, name, kind, content, max_attachment_bytes))
    stored.update(fields=text, attachments=attachments, problems=problems)
    return stored


def parsed_from_sendgrid(
    stored: Mapping[str, Any], *, max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES
) -> ParsedEmail:
    """The email in a stored SendGrid post: raw mode parses the MIME message; parsed mode reads the raw
    ``headers`` block (encoded-words decoded), ``text``/``html``, ``envelope`` and the attachments."""
    problems = _stored_problems(stored)
    fields = _stored_fields(stored)
    envelope = _json_field(fields.get("envelope"), "envelope", problems)
    envelope = envelope if isinstance(envelope, dict) else {}
    to = envelope.get("to")
    envelope_to = [str(x) for x in to] if isinstance(to, list) else ([to] if isinstance(to, str) else [])
    envelope_from = envelope.get("from") if isinstance(envelope.get("from"), str) else None
    raw = _stored_raw(stored, problems)
    if raw is not None:
        parsed = parse_rfc822(
            raw,
            max_attachment_bytes=max_attachment_bytes,
            envelope_sender=envelope_from,
            envelope_recipients=envelope_to,
        )
        return _with_problems(parsed, problems)
    headers = parse_header_block(fields.get("headers", ""), problems)
    subject = fields.get("subject")
    raw_subject = header_value(headers, "Subject")
    if raw_subject is not None and raw_subject.isascii():
        subject = None  # encoded-words name their own charset: exact, unlike a field in a mislabelled charset
    attachments = _Attachments(max_attachment_bytes, problems)
    attachments.add_stored(stored.get("attachments"))
    return build_parsed(
        headers=headers,
        subject=subject,
        from_value=fields.get("from"),
        envelope_sender=envelope_from,
        envelope_recipients=envelope_to,
        text=fields.get("text"),
        html=fields.get("html"),
        attachments=attachments.kept,
        oversized=attachments.oversized,
        problems=problems,
    )


# --------------------------------------------------------------------------------------------------
# Postmark


def _postmark_addresses(payload: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    original = payload.get("OriginalRecipient")
    if isinstance(original, str) and original.strip():
        found.append(original)
    for key in ("ToFull", "CcFull", "BccFull"):
        entries = payload.get(key)
        if isinstance(entries, list):
            found.extend(e["Email"] for e in entries if isinstance(e, Mapping) and isinstance(e.get("Email"), str))
    for key in ("To", "Cc", "Bcc"):
        value = payload.get(key)
        if isinstance(value, str) and value.strip():
            found.append(value)
    return found


def _encode_lenient(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def parsed_from_postmark(
    payload: Mapping[str, Any], *, max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES
) -> ParsedEmail:
    """The email in a Postmark inbound JSON post. The Message-ID and threading headers come from
    ``Headers[]`` (``MessageID`` is Postmark's own UUID); ``OriginalRecipient`` and the ``*Full``
    addresses (which carry the ``MailboxHash``) are recipients; attachments carry ``Content`` or
    ``Data``; ``RawEmail``, when present, is parsed as the message itself."""
    problems: list[str] = []
    entries = payload.get("Headers")
    pairs: list[tuple[str, str]] = []
    if isinstance(entries, list):
        for entry in entries:
            if (
                isinstance(entry, Mapping)
                and isinstance(entry.get("Name"), str)
                and isinstance(entry.get("Value"), str)
            ):
                pairs.append((entry["Name"], entry["Value"]))
    headers = capped_headers(pairs, problems)
    recipients = _postmark_addresses(payload)
    raw = payload.get("RawEmail")
    if isinstance(raw, str) and raw.strip():
        parsed = parse_rfc822(
            _encode_lenient(raw),
            max_attachment_bytes=max_attachment_bytes,
            envelope_sender=header_value(headers, "Return-Path"),
            envelope_recipients=recipients,
        )
        return _with_problems(parsed, problems)

    from_full = payload.get("FromFull")
    from_value: str | None = None
    if isinstance(from_full, Mapping) and isinstance(from_full.get("Email"), str):
        name = from_full.get("Name") if isinstance(from_full.get("Name"), str) else ""
        from_value = _from_header(name or "", from_full["Email"])
    elif isinstance(payload.get("From"), str):
        name = payload.get("FromName") if isinstance(payload.get("FromName"), str) else ""
        from_value = _from_header(name or "", payload["From"])

    attachments = _Attachments(max_attachment_bytes, problems)
    items = payload.get("Attachments")
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, Mapping):
            continue
        data = item.get("Content") if isinstance(item.get("Content"), str) else item.get("Data")
        filename = item.get("Name") if isinstance(item.get("Name"), str) else None
        content = _decode_base64(data, f"attachment {filename!r}", problems) if isinstance(data, str) else None
        if content is None:
            continue
        attachments.add(filename, str(item.get("ContentType") or ""), content)

    def text_of(key: str) -> str | None:
        value = payload.get(key)
        return value if isinstance(value, str) else None

    return build_parsed(
        headers=headers,
        subject=text_of("Subject"),
        from_value=from_value,
        envelope_recipients=recipients,
        text=text_of("TextBody"),
        html=text_of("HtmlBody"),
        stripped_fallback=text_of("StrippedTextReply"),
        attachments=attachments.kept,
        oversized=attachments.oversized,
        problems=problems,
    )


# --------------------------------------------------------------------------------------------------
# Dedup


def message_key(parsed: ParsedEmail, raw_or_fields_digest: str) -> str:
    """The dedup key: the Message-ID when there is one, else ``sha256:<digest>`` of what was delivered.

    A Message-ID longer than 255 characters (the column) becomes ``msgid-sha256:<hash of it>``.
    """
    if parsed.message_id:
        if len(parsed.message_id) <= 255:
            return parsed.message_id
        return "msgid-sha256:" + hashlib.sha256(parsed.message_id.encode("utf-8", "replace")).hexdigest()
    digest = raw_or_fields_digest.strip()
    return digest if digest.startswith("sha256:") else f"sha256:{digest}"


def payload_digest(data: bytes | Mapping[str, Any]) -> str:
    """SHA-256 hex of raw bytes, or of a JSON payload in canonical form (sorted keys)."""
    if not isinstance(data, bytes | bytearray):
        data = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass")
    return hashlib.sha256(bytes(data)).hexdigest()
