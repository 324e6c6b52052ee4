"""What the bridge reads out of one inbound email, whichever way it arrived."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class EmailAttachment:
    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True, kw_only=True)
class ParsedEmail:
    message_id: str | None
    """The RFC 5322 Message-ID without angle brackets, as sent (None if missing)."""
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    """Message-IDs without angle brackets, tolerant of commas and folding."""
    sender: str | None
    """The From address, lower-cased (None if unreadable)."""
    sender_name: str | None
    envelope_sender: str | None
    """Return-Path / the provider's envelope sender; ``""`` for the null sender ``<>`` (bounces)."""
    recipients: tuple[str, ...]
    """Lower-cased addresses from To, Cc, Delivered-To, X-Original-To and the envelope, for reply tokens."""
    subject: str
    body: str
    """The reporter's new text: HTML turned into text, quoted replies and signature removed."""
    full_body: str
    """The whole text part before stripping."""
    language: str | None
    """``da`` or ``en`` when the message says so (Content-Language) or its text makes it clear."""
    automated: str | None
    """Why this is machine mail (auto-reply, bounce, list, ...); None for a person's message."""
    priority_hint: str | None
    """A priority the reporter wrote ("KRITISK", "[Urgent]", "høj prioritet"), for classification."""
    attachments: tuple[EmailAttachment, ...]
    oversized_attachments: tuple[str, ...]
    """Names of attachments over the size cap: listed, not kept."""
    problems: tuple[str, ...]
    """What could not be read (bad charset, truncated MIME...); the rest is still usable."""
