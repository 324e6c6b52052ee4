"""Inbound email: stored as delivered, then read by the ``process_email`` job.

The request (or the IMAP poll) only stores the message with a unique key and queues
``process_email``; it answers at once. The job reads the stored original and decides,
in ONE transaction, what the email is:

1. ``unsubscribed``: ``unsubscribe ST-…`` sent to a reply plus-address of that ticket (our
   ``List-Unsubscribe`` mailto): the ticket's emails stop.
2. ``ignored``: machine mail (auto-reply, bounce, list); never answered, no ticket.
3. ``rejected``: nothing to work with (no sender address, no text at all, unparseable).
4. ``followup``: a reply to one of our emails, found by (a) the reply token in a recipient
   address (``support+<token>@…``), then (b) ``In-Reply-To``/``References`` naming a message we
   sent, then (c) the tracking ID in the subject. (b) and (c) only count when the sender is the
   ticket's reporter: tracking IDs are shared and our Message-IDs contain them, so either can be
   forged by someone who knows the ID; the 128-bit token cannot.
5. ``held``: a new ticket over the sender's hourly limit; an operator can release it.
6. ``ticket``: a new ticket, like a chatbot report.

The state is written in the same transaction as the rows it creates, so a worker that dies
half-way leaves nothing behind and the rerun decides again: each email has one outcome.
The original is never changed, so any email can be processed again after a fix.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bridge import metrics
from bridge.adapters.store.models import Delivery, InboundEmail, Job, Notification, Ticket
from bridge.adapters.store.repository import Store
from bridge.adapters.store.text import UNSTORABLE_ERRORS, describe_unstorable, storable
from bridge.adapters.trackers.base import Tracker
from bridge.config import Settings
from bridge.domain import Channel, Status
from bridge.errors import RetryableError
from bridge.mappings import Mappings
from bridge.pipeline.filing.file_ticket import destination_of, issue_ref_of, tracker_for
from bridge.pipeline.intake.chatbot import add_followup, open_ticket
from bridge.pipeline.intake.email import parse as email_parse
from bridge.pipeline.intake.email import providers as email_providers
from bridge.pipeline.intake.email.message import ParsedEmail
from bridge.pipeline.intake.email.rules import ReplyVerdict, locale_for, organization_for, read_reply
from bridge.pipeline.intake.fields import address_problem
from bridge.tracking import is_tracking_id

log = logging.getLogger(__name__)

PROCESS_EMAIL = "process_email"
UPLOAD_ATTACHMENTS = "upload_attachments"
EMAIL_LANE = "email"
MAILGUN_TOKENS = "mailgun-token"
"""``Delivery.source`` of the Mailgun signature tokens already used (a replay is refused)."""

SOURCES = ("mailgun", "sendgrid", "postmark", "raw", "imap")
PENDING, TICKET, FOLLOWUP, IGNORED, HELD, UNSUBSCRIBED, REJECTED = (
    "pending",
    "ticket",
    "followup",
    "ignored",
    "held",
    "unsubscribed",
    "rejected",
)
STATES = (PENDING, TICKET, FOLLOWUP, IGNORED, HELD, UNSUBSCRIBED, REJECTED)

_TITLE_MAX = 500
_NAME_MAX = 200
_PRIORITY_MAX = 100
_ADDRESS_MAX = 320
_REPLY_TOKEN = re.compile(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")
_SUBJECT_TRACKING_ID = re.compile(r"(?<![0-9A-Za-z])ST-[0-9A-Za-z]{8}(?![0-9A-Za-z])", re.IGNORECASE)
_UNSUBSCRIBE = re.compile(r"^\s*unsubscribe\s+(ST-[0-9A-Za-z]{8})\s*$", re.IGNORECASE)
_REPLY_PREFIX = re.compile(
    r"^\s*(?:(?:re|sv|aw|antw|vs|fw|fwd|wg|tr|videresend|vb)\s*(?:\[\d+\]|\(\d+\))?\s*[:\uff1a]\s*)+", re.IGNORECASE
)


# --- storing what was delivered ---------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Delivered:
    """One email as it arrived, before anything is decided about it."""

    source: str
    raw: bytes | None = None
    """The full RFC 822 message, when the provider sent one (or the mailbox held it)."""
    fields: dict[str, Any] | None = None
    """The provider's fields as JSON (``email_providers.*_to_stored``, or Postmark's payload); with a
    raw message, the fields beside it (the SMTP envelope, which the message itself may lack)."""


@dataclass(frozen=True, kw_only=True)
class Stored:
    inbound_id: int
    duplicate: bool
    """The same message (key) was stored before: nothing new was created."""


class ReplayedToken(Exception):
    """A Mailgun signature token that was used before."""


class Unstorable(Exception):
    """The database refuses the message as delivered; it was set aside (``inbound_id``, ``rejected``)."""

    def __init__(self, reason: str, *, inbound_id: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.inbound_id = inbound_id


def parse_delivered(delivered: Delivered, *, max_attachment_bytes: int) -> ParsedEmail:
    """Read an email in whichever shape its source delivered it.

    A provider's raw message is handed back to that provider's reader together with its other
    fields, so the SMTP envelope it reported (where a BCC'd reply keeps its token) still counts.
    """
    fields = delivered.fields or {}
    raw = delivered.raw
    source = delivered.source
    if source == "mailgun":
        stored = {**fields, "raw": base64.b64encode(raw).decode("ascii")} if raw is not None else fields
        return email_providers.parsed_from_mailgun(stored, max_attachment_bytes=max_attachment_bytes)
    if source == "sendgrid":
        stored = {**fields, "raw": base64.b64encode(raw).decode("ascii")} if raw is not None else fields
        return email_providers.parsed_from_sendgrid(stored, max_attachment_bytes=max_attachment_bytes)
    if source == "postmark":
        payload = {**fields, "RawEmail": raw.decode("utf-8", "surrogateescape")} if raw is not None else fields
        return email_providers.parsed_from_postmark(payload, max_attachment_bytes=max_attachment_bytes)
    if raw is None:
        raise ValueError(f"a {source!r} email without a raw message")
    return email_parse.parse_rfc822(raw, max_attachment_bytes=max_attachment_bytes)


def digest_of(delivered: Delivered) -> str:
    """SHA-256 of the message as delivered: the key of a message without a Message-ID."""
    return email_providers.payload_digest(delivered.raw if delivered.raw is not None else (delivered.fields or {}))


class EmailIntake:
    """Stores delivered emails once each and queues their processing (web endpoints and IMAP)."""

    def __init__(self, *, store: Store, settings: Settings, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._settings = settings
        self._now = clock

    def store(self, delivered: Delivered, *, mailgun_token: str | None = None) -> Stored:
        """Keep the email as delivered with a ``process_email`` job, unless its key is known.

        ``mailgun_token`` is recorded in the same transaction; a token used before raises
        ``ReplayedToken`` and nothing is stored. A message the database refuses as delivered
        (a field it can never hold) is set aside: kept as bytes, ``rejected`` with the reason,
        and ``Unstorable`` is raised. Any other database failure propagates (answer 503).
        """
        if delivered.source not in SOURCES:
            raise ValueError(f"unknown email source {delivered.source!r}")
        digest = digest_of(delivered)
        sender: str | None = None
        try:
            parsed = parse_delivered(delivered, max_attachment_bytes=self._settings.intake.max_attachment_bytes)
            key = email_providers.message_key(parsed, digest)
            sender = (parsed.sender or "")[:_ADDRESS_MAX] or None
        except Exception:
            # Unreadable now: keep it under its hash; the job records why it cannot be read.
            log.warning("email.unparsed_on_receipt", extra={"source": delivered.source}, exc_info=True)
            key = f"sha256:{digest}"
        key = key[:255]
        if not storable(key):  # a NUL in the Message-ID: still one key per message, one the database can hold
            key = "msgid-sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        if sender is not None and not storable(sender):
            sender = None  # not an address; the job decides what the message is
        now = self._now()
        try:
            return self._insert(delivered, key=key, sender=sender, mailgun_token=mailgun_token, now=now)
        except UNSTORABLE_ERRORS as exc:
            reason = f"set aside: the database refused the message as delivered ({describe_unstorable(exc)})"
            inbound_id = self._set_aside(delivered, key=key, reason=reason, now=now)
            raise Unstorable(reason, inbound_id=inbound_id) from None

    def _insert(
        self, delivered: Delivered, *, key: str, sender: str | None, mailgun_token: str | None, now: datetime
    ) -> Stored:
        with self._store.session() as session:
            if mailgun_token is not None:
                try:
                    with session.begin_nested():
                        session.add(
                            Delivery(
                                source=MAILGUN_TOKENS,
                                delivery_key=mailgun_token[:255],
                                event_type="signature",
                                received_at=now,
                            )
                        )
                        session.flush()
                except IntegrityError:
                    raise ReplayedToken(mailgun_token) from None
            existing = session.scalar(select(InboundEmail.id).where(InboundEmail.message_key == key))
            if existing is not None:
                return Stored(inbound_id=existing, duplicate=True)
            email = InboundEmail(
                source=delivered.source,
                message_key=key,
                raw=delivered.raw,
                fields=delivered.fields,
                sender=sender,
                state=PENDING,
                received_at=now,
            )
            try:
                with session.begin_nested():
                    session.add(email)
                    session.flush()
            except IntegrityError:
                # Stored a moment ago by a concurrent delivery of the same message.
                existing = session.scalar(select(InboundEmail.id).where(InboundEmail.message_key == key))
                if existing is None:
                    raise
                return Stored(inbound_id=existing, duplicate=True)
            queue_processing(session, email.id, now)
            inbound_id = email.id
        log.info("email.stored", extra={"source": delivered.source, "inbound_email": inbound_id})
        return Stored(inbound_id=inbound_id, duplicate=False)

    def _set_aside(self, delivered: Delivered, *, key: str, reason: str, now: datetime) -> int:
        """Keep what can always be kept (the bytes, under the message's key) as ``rejected`` with
        ``reason``, so an operator finds it with ``emails --state rejected``; nothing is queued.
        A redelivery then is a duplicate of this row."""
        with self._store.session() as session:
            existing = session.scalar(select(InboundEmail.id).where(InboundEmail.message_key == key))
            if existing is not None:
                return int(existing)
            email = InboundEmail(
                source=delivered.source,
                message_key=key,
                raw=delivered.raw,
                fields=None,  # the provider's fields may be what the database refused
                sender=None,
                state=REJECTED,
                reason=reason,
                received_at=now,
                processed_at=now,
            )
            session.add(email)
            session.flush()
            inbound_id = email.id
        log.warning("email.set_aside", extra={"source": delivered.source, "inbound_email": inbound_id})
        metrics.report("email", "set_aside")
        return inbound_id


def queue_processing(session: Session, inbound_id: int, now: datetime) -> Job:
    """Add the ``process_email`` job of a stored email to the transaction.

    Email jobs have no ticket and share the ``email`` lane, so they run one at a time in
    arrival order: the rate limit and "is this a reply?" never race with each other.
    """
    return Store.new_job(
        session,
        kind=PROCESS_EMAIL,
        ticket_id=None,  # no ticket yet: the email decides whether it makes one
        subject_id=inbound_id,
        lane=EMAIL_LANE,
        now=now,
    )


def delivered_of(email: InboundEmail) -> Delivered:
    return Delivered(source=email.source, raw=email.raw, fields=email.fields)


# --- deciding what an email is -----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Outcome:
    state: str
    reason: str | None = None
    ticket_id: int | None = None


def clean_subject(subject: str) -> str:
    """The subject without reply/forward prefixes (``Re:``, ``Sv:``, ``Fwd:``, ``VS:``, ``AW:`` ...)."""
    return " ".join(_REPLY_PREFIX.sub("", subject or "").split())


def reply_tokens(recipients: Iterable[str]) -> list[str]:
    """Reply tokens (32 hex digits) in the local parts of the recipients, in order."""
    found: list[str] = []
    for address in recipients:
        local = address.rpartition("@")[0].lower()
        found += _REPLY_TOKEN.findall(local)
    return list(dict.fromkeys(found))


def _same_address(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    return a.strip().lower() == b.strip().lower()


class EmailProcessor:
    """The ``process_email`` job."""

    def __init__(self, *, store: Store, settings: Settings, mappings: Mappings, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._settings = settings
        self._mappings = mappings
        self._now = clock

    def __call__(self, job: Job) -> None:
        if job.subject_id is None:
            raise LookupError(f"job {job.id} names no inbound email")
        with self._store.session() as session:
            email = session.get(InboundEmail, job.subject_id)
            if email is None:
                raise LookupError(f"inbound email {job.subject_id} does not exist")
            if email.state != PENDING:
                return  # decided by an earlier run of this job
            delivered = delivered_of(email)
        try:
            parsed: ParsedEmail | None = parse_delivered(
                delivered, max_attachment_bytes=self._settings.intake.max_attachment_bytes
            )
            failure = None
        except Exception as exc:
            # A parser bug or a message beyond repair: a defined outcome instead of blocking the lane.
            log.warning("email.unreadable", extra={"inbound_email": job.subject_id}, exc_info=True)
            parsed, failure = None, f"the message could not be read: {type(exc).__name__}: {exc}"[:1000]
        now = self._now()
        try:
            self._record(job.subject_id, parsed, failure, now)
        except UNSTORABLE_ERRORS as exc:
            # What the email would create holds a value the database never accepts: retrying would
            # hold up every email behind it in the lane for days. Set it aside with the reason.
            reason = f"set aside: the database refused what the email makes ({describe_unstorable(exc)})"
            log.warning("email.set_aside", extra={"inbound_email": job.subject_id, "reason": reason})
            self._record(job.subject_id, None, reason, now)
            metrics.report("email", "set_aside")

    def _record(self, inbound_id: int, parsed: ParsedEmail | None, failure: str | None, now: datetime) -> None:
        """Decide and record the email's outcome, with the rows it creates, in one transaction."""
        with self._store.session() as session:
            email = session.get(InboundEmail, inbound_id, with_for_update=True)
            if email is None or email.state != PENDING:
                return
            if parsed is None:
                outcome = Outcome(state=REJECTED, reason=failure)
            else:
                outcome = self._decide(session, email, parsed)
            email.state, email.reason, email.ticket_id = outcome.state, outcome.reason, outcome.ticket_id
            email.processed_at = now
            log.info(
                "email.processed",
                extra={"inbound_email": email.id, "source": email.source, "state": outcome.state},
            )

    def _decide(self, session: Session, email: InboundEmail, parsed: ParsedEmail) -> Outcome:
        now = self._now()
        sender = (parsed.sender or "").strip().lower() or None

        by_token = self._ticket_by_token(session, parsed)
        unsubscribe = _UNSUBSCRIBE.match(parsed.subject or "")
        if by_token is not None and unsubscribe and unsubscribe.group(1).upper() == by_token.tracking_id:
            by_token.notifications_muted = True
            by_token.updated_at = now
            return Outcome(state=UNSUBSCRIBED, reason="unsubscribe by email", ticket_id=by_token.id)

        if parsed.automated:
            return Outcome(state=IGNORED, reason=parsed.automated)
        if sender is None:
            return Outcome(state=REJECTED, reason="no sender address")

        ticket, how = by_token, "reply token"
        if ticket is None:
            ticket, how = self._ticket_by_thread(session, parsed, sender), "In-Reply-To/References"
        if ticket is None:
            ticket, how = self._ticket_by_subject(session, parsed, sender), "tracking ID in the subject"
        if ticket is not None:
            return self._followup(session, email, parsed, ticket, how)

        if not (parsed.subject.strip() or parsed.body.strip() or parsed.full_body.strip() or parsed.attachments):
            return Outcome(state=REJECTED, reason="no text at all: empty subject and body, no attachments")
        invalid = address_problem(sender)
        if invalid is not None:  # the reporter could never be written to (the acknowledgement would fail for days)
            return Outcome(state=REJECTED, reason=f"the sender address is not valid: {invalid}")
        limit = self._settings.intake.new_tickets_per_sender_hour
        if email.released_at is None and self._recent_tickets(session, sender, now) >= limit:
            return Outcome(state=HELD, reason=f"more than {limit} new tickets in an hour from {sender}")
        return self._new_ticket(session, email, parsed, sender)

    # --- replies ----------------------------------------------------------------------------

    @staticmethod
    def _ticket_by_token(session: Session, parsed: ParsedEmail) -> Ticket | None:
        tokens = reply_tokens(parsed.recipients)
        if not tokens:
            return None
        return session.scalars(select(Ticket).where(Ticket.reply_token.in_(tokens)).order_by(Ticket.id)).first()

    @staticmethod
    def _ticket_by_thread(session: Session, parsed: ParsedEmail, sender: str) -> Ticket | None:
        # The direct parent first, then the thread from the newest reference back.
        ids = list(dict.fromkeys([*parsed.in_reply_to, *reversed(parsed.references)]))
        if not ids:
            return None
        wanted = [f"<{i.strip().strip('<>')}>" for i in ids if i.strip()]
        candidates = list(dict.fromkeys([*wanted, *(w.lower() for w in wanted)]))
        rows = session.execute(
            select(Notification.message_id, Notification.ticket_id).where(Notification.message_id.in_(candidates))
        ).all()
        by_id = {str(m).lower(): t for m, t in rows}
        for message_id in wanted:
            ticket_id = by_id.get(message_id.lower())
            if ticket_id is not None:
                ticket = session.get(Ticket, ticket_id)
                if ticket is not None and _same_address(ticket.reporter_email, sender):
                    return ticket
        return None

    @staticmethod
    def _ticket_by_subject(session: Session, parsed: ParsedEmail, sender: str) -> Ticket | None:
        for match in _SUBJECT_TRACKING_ID.findall(parsed.subject or ""):
            tracking_id = match.upper()
            if not is_tracking_id(tracking_id):
                continue
            ticket = session.scalar(select(Ticket).where(Ticket.tracking_id == tracking_id))
            if ticket is not None and _same_address(ticket.reporter_email, sender):
                return ticket
        return None

    def _followup(
        self, session: Session, email: InboundEmail, parsed: ParsedEmail, ticket: Ticket, how: str
    ) -> Outcome:
        now = self._now()
        text = parsed.body.strip()
        message = text or parsed.full_body.strip()
        if not message and not parsed.attachments:
            return Outcome(state=REJECTED, reason=f"a reply to {ticket.tracking_id} ({how}) without any text")
        verdict = read_reply(self._mappings.email.replies, text) if text else ReplyVerdict.UNCLEAR
        status = Status(ticket.status)
        not_fixed = verdict is ReplyVerdict.NOT_FIXED and status in (Status.RESOLVED, Status.DECLINED)
        needs_review = verdict is ReplyVerdict.UNCLEAR and status is Status.RESOLVED
        notes = _notes(parsed, self._settings.intake.max_attachment_bytes)
        body = "\n\n".join(part for part in (message or "(no text; see the attachments)", notes) if part)
        add_followup(
            self._store,
            session,
            ticket_id=ticket.id,
            message=body,
            not_fixed=not_fixed,
            needs_review=needs_review,
            now=now,
        )
        if parsed.attachments:
            self._store.new_job(session, kind=UPLOAD_ATTACHMENTS, ticket_id=ticket.id, subject_id=email.id, now=now)
        return Outcome(state=FOLLOWUP, reason=f"{how}; reply reads as {verdict.value}", ticket_id=ticket.id)

    # --- new tickets --------------------------------------------------------------------------

    @staticmethod
    def _recent_tickets(session: Session, sender: str, now: datetime) -> int:
        count = session.scalar(
            select(func.count())
            .select_from(InboundEmail)
            .where(
                func.lower(InboundEmail.sender) == sender,
                InboundEmail.state == TICKET,
                InboundEmail.processed_at > now - timedelta(hours=1),
            )
        )
        return int(count or 0)

    def _new_ticket(self, session: Session, email: InboundEmail, parsed: ParsedEmail, sender: str) -> Outcome:
        now = self._now()
        rules = self._mappings.email
        body = parsed.body.strip() or parsed.full_body.strip()
        title = clean_subject(parsed.subject)
        if not title:
            first_line = next((line.strip() for line in body.splitlines() if line.strip()), "")
            title = first_line[:120] or "(no subject)"
        description = body or "(The email had no text.)"
        notes = _notes(parsed, self._settings.intake.max_attachment_bytes)
        if notes:
            description = f"{description}\n\n{notes}"
        ticket = Ticket(
            status=Status.RECEIVED.value,
            channel=Channel.EMAIL.value,
            locale=locale_for(rules, sender, parsed.language),
            reporter_email=sender,
            reporter_name=(parsed.sender_name or "").strip()[:_NAME_MAX] or None,
            organization=organization_for(rules, sender),
            conversation_id=None,
            title=title[:_TITLE_MAX],
            description=description,
            impact=None,
            declared_priority=(parsed.priority_hint or "")[:_PRIORITY_MAX] or None,
            product=None,
            # The address it was sent to (the envelope's first, else To/Cc): the category rules read it.
            # No NUL: neither database's text columns take one, and a header may carry it.
            recipient=parsed.recipients[0].replace("\x00", "")[:_ADDRESS_MAX] or None if parsed.recipients else None,
            environment={},
            attachments=[{"filename": a.filename, "content_type": a.content_type} for a in parsed.attachments],
            reply_token=secrets.token_hex(16),
            created_at=now,
            updated_at=now,
        )
        open_ticket(self._store, session, ticket, now)
        if parsed.attachments:
            # Same lane as file_ticket and created after it: runs once the issue exists.
            self._store.new_job(session, kind=UPLOAD_ATTACHMENTS, ticket_id=ticket.id, subject_id=email.id, now=now)
        return Outcome(state=TICKET, reason=None, ticket_id=ticket.id)


def _notes(parsed: ParsedEmail, max_attachment_bytes: int) -> str:
    """What the tracker should know beyond the text: unreadable parts, attachments left out."""
    lines: list[str] = []
    if parsed.oversized_attachments:
        size = _size_text(max_attachment_bytes)
        names = ", ".join(parsed.oversized_attachments)
        lines.append(f"Attachments not uploaded (larger than {size}): {names}")
    if parsed.problems:
        lines.append("Parts of this email could not be read: " + "; ".join(parsed.problems))
    return "\n".join(f"[bridge] {line}" for line in lines)


def _size_text(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):g} MiB"
    if size >= 1024:
        return f"{size / 1024:g} KiB"
    return f"{size} bytes"


# --- attachments -------------------------------------------------------------------------------


class AttachmentUploader:
    """The ``upload_attachments`` job: an email's attachments into its ticket's tracker issue.

    Progress is recorded per attachment (``InboundEmail.attachments_uploaded``), so a retry goes
    on with the next one. A crash between an upload and that record repeats one upload: the
    tracker then shows that file twice. Nothing else is repeated.
    """

    def __init__(self, *, store: Store, trackers: Mapping[str, Tracker], settings: Settings) -> None:
        self._store = store
        self._trackers = trackers
        self._settings = settings

    def __call__(self, job: Job) -> None:
        if job.subject_id is None:
            raise LookupError(f"job {job.id} names no inbound email")
        ticket = self._store.job_ticket(job)
        dest, ref = destination_of(ticket), issue_ref_of(ticket)
        if dest is None or ref is None:
            raise RetryableError("the ticket has no tracker issue yet")
        with self._store.session() as session:
            email = session.get(InboundEmail, job.subject_id)
            if email is None:
                raise LookupError(f"inbound email {job.subject_id} does not exist")
            delivered, done = delivered_of(email), email.attachments_uploaded
        parsed = parse_delivered(delivered, max_attachment_bytes=self._settings.intake.max_attachment_bytes)
        tracker = tracker_for(self._trackers, dest)
        attachments: Sequence[Any] = parsed.attachments
        for index, attachment in enumerate(attachments):
            if index < done:
                continue
            tracker.upload_attachment(
                dest,
                ref,
                filename=attachment.filename,
                content_type=attachment.content_type,
                content=attachment.content,
            )
            self._record(job.subject_id, index + 1)
        log.info(
            "email.attachments_uploaded",
            extra={"tracking_id": ticket.tracking_id, "count": max(0, len(attachments) - done)},
        )

    def _record(self, inbound_id: int, uploaded: int) -> None:
        with self._store.session() as session:
            email = session.get(InboundEmail, inbound_id)
            if email is not None and email.attachments_uploaded < uploaded:
                email.attachments_uploaded = uploaded


# --- operator actions --------------------------------------------------------------------------


class NotReplayable(Exception):
    """The email already became a ticket or follow-up (or is waiting): processing it again would repeat that."""


def reprocess(store: Store, inbound_id: int, *, now: datetime, release: bool = False) -> None:
    """Process a stored email again from its original: ``release`` a held one past the rate
    limit, or replay a rejected/ignored/held one (after a parser fix, say). Refused for emails
    that made a ticket, follow-up or unsubscription, and for ones still pending."""
    with store.session() as session:
        email = session.get(InboundEmail, inbound_id, with_for_update=True)
        if email is None:
            raise LookupError(f"inbound email {inbound_id} does not exist")
        allowed = (HELD,) if release else (HELD, REJECTED, IGNORED)
        if email.state not in allowed:
            raise NotReplayable(f"inbound email {inbound_id} is {email.state}; only {'/'.join(allowed)} can be")
        email.state, email.reason, email.processed_at = PENDING, None, None
        if release:
            email.released_at = now
        queue_processing(session, email.id, now)
