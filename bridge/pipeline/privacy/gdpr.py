"""A reporter's personal data: export, erasure (on request, or after the retention period), audit.

**Export** gathers everything the bridge holds about one email address (case-insensitive): the
reporter's tickets with their history, follow-ups and notifications, and the emails they sent
(metadata and the message as text), as one JSON document.

**Erasure** keeps every ticket row (status, history, severity, sprint, tracker link), so
statistics and the tracker issue keep working, and removes what identifies or was written by the
reporter, in one transaction:

* the address becomes a random pseudonym ``erased-<32 hex>@invalid``: random, never a hash of the
  address (a hash of an address can be brute-forced from a list of addresses); one pseudonym per
  address and erasure, so one reporter's erased tickets still belong together;
* name, organisation, conversation id, title, description, impact, environment, attachments and
  follow-up messages are cleared or replaced by ``[erased]``; the reply token is cleared (replies
  by plus-address no longer find the ticket) and notifications are muted;
* notification bodies (relayed comments) are cleared and pending notifications skipped;
* the comments in tracker events lose their text;
* inbound emails (from the address, or about an erased ticket) lose the raw message, the provider
  fields, the sender and their Message-ID key; their pending processing is cancelled;
* job errors and email reasons have the address and name cut out; stored webhook answers keep
  only the tracking ID, status and status link.

With ``redact_tracker`` a ``redact_issue`` job per ticket then replaces the tracker issue's
description (the reporter's text, name and organisation) with a short note; the title and the
comments already in the tracker are left alone.

**Audit**: every export, erasure and retention run writes an ``erasures`` row with a random
reference, who did it, when, and how many rows it touched, never the address or a hash of it.
Log lines carry the reference and the counts only.

**Retention** (``retention.personal_data_days``, default 365, 0 = off) erases, through the same
code, each ticket that closed (resolved or declined) longer ago than that with nothing since (no
status change, follow-up or email), and deletes inbound emails that made no ticket (ignored,
rejected or held) received longer ago than that.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.orm import Session

from bridge.adapters.store.models import (
    Delivery,
    Erasure,
    Followup,
    InboundEmail,
    Job,
    Notification,
    StatusEvent,
    Ticket,
    TrackerEvent,
)
from bridge.adapters.store.repository import DEAD, DONE, PENDING, RUNNING, TRACKER_LANE, Store
from bridge.adapters.trackers.base import Tracker
from bridge.domain import Status
from bridge.pipeline.filing.file_ticket import destination_of, issue_ref_of, tracker_for
from bridge.pipeline.intake.email.process import (
    HELD,
    IGNORED,
    PROCESS_EMAIL,
    REJECTED,
    UPLOAD_ATTACHMENTS,
    delivered_of,
    parse_delivered,
)
from bridge.pipeline.notifying.ticket_view import iso_utc

log = logging.getLogger(__name__)

REDACT_ISSUE = "redact_issue"
EXPORT, ERASE, RETENTION = "export", "erase", "retention"
RETENTION_ACTOR = "retention"
ADMIN_API_ACTOR = "admin-api"
ERASED = "[erased]"
EXPORT_FORMAT = "bridge-personal-data-export/1"

_CLOSED = (Status.RESOLVED.value, Status.DECLINED.value)
_UNTICKETED = (IGNORED, REJECTED, HELD)
_EMAIL_JOBS = (PROCESS_EMAIL, UPLOAD_ATTACHMENTS)
_KEPT_RESPONSE_KEYS = ("tracking_id", "status", "status_url")
_SCAN_BATCH = 200
_RETENTION_TICKETS = 500
_RETENTION_EMAILS = 1000


def normalise_address(email: str) -> str:
    return email.strip().lower()


def new_reference() -> str:
    """A random audit reference such as ``GD-3FA2B1C09D4E``: it names the record, not the person."""
    return f"GD-{secrets.token_hex(6).upper()}"


def new_pseudonym() -> str:
    """A random, irreversible stand-in for an erased address (``.invalid`` never delivers, RFC 2606)."""
    return f"erased-{secrets.token_hex(16)}@invalid"


@dataclass(kw_only=True)
class Counts:
    tickets: int = 0
    followups: int = 0
    notifications: int = 0
    inbound_emails: int = 0
    tracker_events: int = 0

    def add(self, other: Counts) -> None:
        self.tickets += other.tickets
        self.followups += other.followups
        self.notifications += other.notifications
        self.inbound_emails += other.inbound_emails
        self.tracker_events += other.tracker_events

    @property
    def empty(self) -> bool:
        return not (self.tickets or self.followups or self.notifications or self.inbound_emails or self.tracker_events)


@dataclass(frozen=True, kw_only=True)
class AuditRecord:
    """One row of the audit log, as the CLI and the admin API show it."""

    reference: str
    kind: str
    actor: str
    at: datetime
    tickets: int
    followups: int
    notifications: int
    inbound_emails: int
    tracker_events: int
    redact_tracker: bool
    tracker_redactions: int
    tracker_redactions_done: int

    @classmethod
    def of(cls, row: Erasure) -> AuditRecord:
        return cls(
            reference=row.reference,
            kind=row.kind,
            actor=row.actor,
            at=row.at,
            tickets=row.tickets,
            followups=row.followups,
            notifications=row.notifications,
            inbound_emails=row.inbound_emails,
            tracker_events=row.tracker_events,
            redact_tracker=row.redact_tracker,
            tracker_redactions=row.tracker_redactions,
            tracker_redactions_done=row.tracker_redactions_done,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "kind": self.kind,
            "actor": self.actor,
            "at": iso_utc(self.at),
            "tickets": self.tickets,
            "followups": self.followups,
            "notifications": self.notifications,
            "inbound_emails": self.inbound_emails,
            "tracker_events": self.tracker_events,
            "redact_tracker": self.redact_tracker,
            "tracker_redactions": self.tracker_redactions,
            "tracker_redactions_done": self.tracker_redactions_done,
        }


@dataclass(frozen=True, kw_only=True)
class Export:
    document: dict[str, Any]
    audit: AuditRecord


@dataclass(kw_only=True)
class _Scrubber:
    """Cuts known personal strings (addresses, names) out of free text such as job errors."""

    patterns: list[re.Pattern[str]] = field(default_factory=list)

    def add(self, value: str | None) -> None:
        value = (value or "").strip()
        if len(value) >= 3:
            self.patterns.append(re.compile(r"(?<!\w)" + re.escape(value) + r"(?!\w)", re.IGNORECASE))

    def __call__(self, text: str | None) -> str | None:
        if text is None:
            return None
        for pattern in self.patterns:
            text = pattern.sub(ERASED, text)
        return text


class PersonalData:
    """Export and erase one reporter's data; erase tickets past the retention period."""

    def __init__(self, *, store: Store, clock: Callable[[], datetime], max_attachment_bytes: int = 0) -> None:
        self._store = store
        self._now = clock
        self._max_attachment_bytes = max_attachment_bytes

    # --- export -------------------------------------------------------------------------------

    def export(self, email: str, *, actor: str) -> Export:
        """Everything held about ``email`` as one JSON-ready document; audited as ``export``."""
        address = normalise_address(email)
        now = self._now()
        with self._store.session() as session:
            tickets = _tickets_of(session, address)
            emails = _emails_of(session, address, ticket_ids=())
            related = {t.linked_ticket_id for t in tickets} | {e.ticket_id for e in emails}
            tracking_ids = _tracking_ids(session, {i for i in related if i is not None})
            counts = Counts(tickets=len(tickets), inbound_emails=len(emails))
            ticket_docs = []
            for ticket in tickets:
                doc = self._ticket_document(session, ticket, tracking_ids)
                counts.followups += len(doc["followups"])
                counts.notifications += len(doc["notifications"])
                ticket_docs.append(doc)
            email_docs = [self._email_document(e, tracking_ids) for e in emails]
            audit = _audit(session, kind=EXPORT, actor=actor, at=now, counts=counts)
        log.info("gdpr.exported", extra={"reference": audit.reference, "actor": actor, **_count_extra(counts)})
        document = {
            "format": EXPORT_FORMAT,
            "reference": audit.reference,
            "exported_at": iso_utc(now),
            "email": address,
            "tickets": ticket_docs,
            "inbound_emails": email_docs,
        }
        return Export(document=document, audit=audit)

    @staticmethod
    def _ticket_document(session: Session, ticket: Ticket, tracking_ids: Mapping[int, str]) -> dict[str, Any]:
        history = session.scalars(
            select(StatusEvent).where(StatusEvent.ticket_id == ticket.id).order_by(StatusEvent.id)
        ).all()
        followups = session.scalars(select(Followup).where(Followup.ticket_id == ticket.id).order_by(Followup.id)).all()
        notes = session.scalars(
            select(Notification).where(Notification.ticket_id == ticket.id).order_by(Notification.id)
        ).all()
        return {
            "tracking_id": ticket.tracking_id,
            "status": ticket.status,
            "status_reason": ticket.status_reason,
            "channel": ticket.channel,
            "locale": ticket.locale,
            "reporter": {
                "email": ticket.reporter_email,
                "name": ticket.reporter_name,
                "organization": ticket.organization,
            },
            "conversation_id": ticket.conversation_id,
            "recipient": ticket.recipient,
            "title": ticket.title,
            "description": ticket.description,
            "impact": ticket.impact,
            "declared_priority": ticket.declared_priority,
            "product": ticket.product,
            "environment": ticket.environment or {},
            "attachments": ticket.attachments or [],
            "severity": ticket.severity,
            "kind": ticket.kind,
            "planned_sprint": ticket.sprint_name,
            "follows_up": tracking_ids.get(ticket.linked_ticket_id) if ticket.linked_ticket_id else None,
            "notifications_muted": ticket.notifications_muted,
            "created_at": iso_utc(ticket.created_at),
            "updated_at": iso_utc(ticket.updated_at),
            "resolved_at": _iso(ticket.resolved_at),
            "erased_at": _iso(ticket.erased_at),
            "history": [{"status": e.status, "at": iso_utc(e.at)} for e in history],
            "followups": [
                {"message": f.message, "not_fixed": f.not_fixed, "at": iso_utc(f.created_at)} for f in followups
            ],
            "notifications": [
                {
                    "kind": n.kind,
                    "status": n.status,
                    "state": n.state,
                    "created_at": iso_utc(n.created_at),
                    "sent_at": _iso(n.sent_at),
                    "comment": n.body,
                }
                for n in notes
            ],
        }

    def _email_document(self, email: InboundEmail, tracking_ids: Mapping[int, str]) -> dict[str, Any]:
        subject = sender_name = None
        try:
            parsed = parse_delivered(delivered_of(email), max_attachment_bytes=self._max_attachment_bytes)
            subject, sender_name = parsed.subject, parsed.sender_name
        except Exception:  # an unreadable message is still exported as it was delivered
            log.info("gdpr.export_unparsed_email", extra={"inbound_email": email.id})
        return {
            "id": email.id,
            "source": email.source,
            "received_at": iso_utc(email.received_at),
            "processed_at": _iso(email.processed_at),
            "state": email.state,
            "reason": email.reason,
            "ticket": tracking_ids.get(email.ticket_id) if email.ticket_id else None,
            "sender": email.sender,
            "sender_name": sender_name,
            "subject": subject,
            "message": email.raw.decode("utf-8", errors="replace") if email.raw is not None else None,
            "fields": email.fields,
        }

    # --- erasure ------------------------------------------------------------------------------

    def preview(self, email: str) -> Counts:
        """What ``erase`` would touch, changing nothing."""
        address = normalise_address(email)
        with self._store.session() as session:
            tickets = _tickets_of(session, address)
            ids = [t.id for t in tickets]
            counts = Counts(tickets=len(tickets), inbound_emails=len(_emails_of(session, address, ticket_ids=ids)))
            if ids:
                counts.followups = _count(session, Followup, Followup.ticket_id.in_(ids))
                counts.notifications = _count(session, Notification, Notification.ticket_id.in_(ids))
                counts.tracker_events = _count(
                    session, TrackerEvent, TrackerEvent.ticket_id.in_(ids), TrackerEvent.kind == "comment"
                )
        return counts

    def erase(self, email: str, *, actor: str, redact_tracker: bool = False) -> AuditRecord:
        """Erase everything about ``email``; repeatable (a second run finds nothing and says so)."""
        address = normalise_address(email)
        now = self._now()
        with self._store.session() as session:
            tickets = _tickets_of(session, address)
            emails = _emails_of(session, address, ticket_ids=[t.id for t in tickets])
            scrub = _Scrubber()
            scrub.add(address)
            for ticket in tickets:
                scrub.add(ticket.reporter_name)
            audit = self._erase(
                session,
                tickets,
                emails,
                scrub=scrub,
                kind=ERASE,
                actor=actor,
                redact_tracker=redact_tracker,
                now=now,
            )
        _log_erasure(audit)
        return audit

    def _erase(
        self,
        session: Session,
        tickets: Sequence[Ticket],
        emails: Sequence[InboundEmail],
        *,
        scrub: _Scrubber,
        kind: str,
        actor: str,
        redact_tracker: bool,
        now: datetime,
    ) -> AuditRecord:
        counts = Counts()
        pseudonyms: dict[str, str] = {}
        for ticket in tickets:
            pseudonym = pseudonyms.setdefault(normalise_address(ticket.reporter_email), new_pseudonym())
            counts.add(_erase_ticket(session, ticket, pseudonym, scrub, now))
        for email in emails:
            _erase_email(session, email, scrub)
        counts.inbound_emails = len(emails)
        _cancel_email_jobs(session, [e.id for e in emails], now)
        audit_row = _audit_row(session, kind=kind, actor=actor, at=now, counts=counts, redact_tracker=redact_tracker)
        if redact_tracker:
            for ticket in tickets:
                Store.new_job(
                    session, kind=REDACT_ISSUE, ticket_id=ticket.id, subject_id=audit_row.id, lane=TRACKER_LANE, now=now
                )
            audit_row.tracker_redactions = len(tickets)
        session.flush()
        return AuditRecord.of(audit_row)

    # --- retention ----------------------------------------------------------------------------

    def purge_expired(self, *, days: int, limit: int = _RETENTION_TICKETS) -> AuditRecord | None:
        """Erase tickets closed more than ``days`` ago with nothing since, and delete emails that made no
        ticket received more than ``days`` ago; audited as ``retention``. None when nothing was due."""
        if days <= 0:
            return None
        now = self._now()
        cutoff = now - timedelta(days=days)
        with self._store.session() as session:
            tickets = list(
                session.scalars(
                    select(Ticket)
                    .where(
                        Ticket.status.in_(_CLOSED),
                        Ticket.resolved_at < cutoff,
                        Ticket.erased_at.is_(None),
                        ~exists().where(StatusEvent.ticket_id == Ticket.id, StatusEvent.at >= cutoff),
                        ~exists().where(Followup.ticket_id == Ticket.id, Followup.created_at >= cutoff),
                        ~exists().where(InboundEmail.ticket_id == Ticket.id, InboundEmail.received_at >= cutoff),
                    )
                    .order_by(Ticket.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)  # PostgreSQL: two workers never purge the same ticket
                )
            )
            stale = list(
                session.scalars(
                    select(InboundEmail.id)
                    .where(
                        InboundEmail.ticket_id.is_(None),
                        InboundEmail.state.in_(_UNTICKETED),
                        InboundEmail.received_at < cutoff,
                    )
                    .order_by(InboundEmail.id)
                    .limit(_RETENTION_EMAILS)
                    .with_for_update(skip_locked=True)
                )
            )
            if not tickets and not stale:
                return None
            row = _audit_row(session, kind=RETENTION, actor=RETENTION_ACTOR, at=now, counts=Counts())
            counts = Counts()
            for ticket in tickets:
                # Ticket by ticket: each has its own reporter, whose other tickets may still be open.
                scrub = _Scrubber()
                scrub.add(ticket.reporter_email)
                scrub.add(ticket.reporter_name)
                emails = list(session.scalars(select(InboundEmail).where(InboundEmail.ticket_id == ticket.id)))
                counts.add(_erase_ticket(session, ticket, new_pseudonym(), scrub, now))
                for email in emails:
                    _erase_email(session, email, scrub)
                counts.inbound_emails += len(emails)
                _cancel_email_jobs(session, [e.id for e in emails], now)
            if stale:
                session.execute(
                    update(Job).where(Job.kind.in_(_EMAIL_JOBS), Job.subject_id.in_(stale)).values(last_error=None)
                )
                _cancel_email_jobs(session, stale, now)
                session.execute(delete(InboundEmail).where(InboundEmail.id.in_(stale)))
                counts.inbound_emails += len(stale)
            _set_counts(row, counts)
            session.flush()
            audit = AuditRecord.of(row)
        _log_erasure(audit)
        return audit


class Retention:
    """The periodic task: the retention purge, a batch per run until nothing is due."""

    def __init__(self, *, data: PersonalData, days: int) -> None:
        self._data = data
        self._days = days

    def run(self) -> AuditRecord | None:
        try:
            return self._data.purge_expired(days=self._days)
        except Exception:
            log.exception("gdpr.retention_failed")  # the next run tries again
            return None


# --- the tracker ----------------------------------------------------------------------------------


def redaction_text(tracking_id: str, *, erased_at: datetime | None) -> str:
    """What replaces the issue description: plain words, valid Markdown and Jira wiki alike."""
    day = f" on {erased_at.date().isoformat()}" if erased_at else ""
    return (
        f"The reporter's text and contact details were removed from this issue{day}: their personal "
        "data was erased from the support bridge. Status, severity and sprint are unchanged.\n\n"
        f"Tracking ID: {tracking_id}\n"
    )


class IssueRedactor:
    """The ``redact_issue`` job: the erased ticket's tracker issue loses the reporter's text."""

    def __init__(self, *, store: Store, trackers: Mapping[str, Tracker]) -> None:
        self._store = store
        self._trackers = trackers

    def __call__(self, job: Job) -> None:
        ticket = self._store.job_ticket(job)
        dest, ref = destination_of(ticket), issue_ref_of(ticket)
        if dest is not None and ref is not None:
            tracker = tracker_for(self._trackers, dest)
            tracker.redact_issue(dest, ref, redaction_text(ticket.tracking_id, erased_at=ticket.erased_at))
            log.info("gdpr.issue_redacted", extra={"tracking_id": ticket.tracking_id, "issue": ref.key})
        else:
            # Never filed: a filing after the erasure only has the erased text to send.
            log.info("gdpr.no_issue_to_redact", extra={"tracking_id": ticket.tracking_id})
        if job.subject_id is not None:
            self._store.count_redaction(job.subject_id)


# --- helpers --------------------------------------------------------------------------------------


def _tickets_of(session: Session, address: str) -> list[Ticket]:
    if not address:
        return []
    return list(session.scalars(select(Ticket).where(func.lower(Ticket.reporter_email) == address).order_by(Ticket.id)))


def _tracking_ids(session: Session, ticket_ids: set[int]) -> dict[int, str]:
    if not ticket_ids:
        return {}
    rows = session.execute(select(Ticket.id, Ticket.tracking_id).where(Ticket.id.in_(ticket_ids)))
    return {int(ticket_id): str(tracking_id) for ticket_id, tracking_id in rows}


def _emails_of(session: Session, address: str, *, ticket_ids: Iterable[int]) -> list[InboundEmail]:
    """Emails from ``address``, about one of ``ticket_ids``, or unread (no sender) but naming it."""
    if not address:
        return []
    ids = list(ticket_ids)
    condition = func.lower(InboundEmail.sender) == address
    if ids:
        condition = or_(condition, InboundEmail.ticket_id.in_(ids))
    found = {e.id: e for e in session.scalars(select(InboundEmail).where(condition))}
    # Messages nobody could read have no sender: look for the address in what was delivered.
    needle = address.encode()
    last_id = 0
    while True:
        batch = list(
            session.scalars(
                select(InboundEmail)
                .where(
                    InboundEmail.sender.is_(None),
                    InboundEmail.id > last_id,
                    or_(InboundEmail.raw.is_not(None), InboundEmail.fields.is_not(None)),
                )
                .order_by(InboundEmail.id)
                .limit(_SCAN_BATCH)
            )
        )
        if not batch:
            break
        for email in batch:
            content = (email.raw or b"") + json.dumps(email.fields or {}, ensure_ascii=False).encode()
            if needle in content.lower():
                found[email.id] = email
        last_id = batch[-1].id
    return sorted(found.values(), key=lambda e: e.id)


def _erase_ticket(session: Session, ticket: Ticket, pseudonym: str, scrub: _Scrubber, now: datetime) -> Counts:
    counts = Counts(tickets=1)
    ticket.reporter_email = pseudonym
    ticket.reporter_name = None
    ticket.organization = None
    ticket.conversation_id = None
    ticket.recipient = None  # usually our own address; without an envelope, the first To/Cc
    ticket.title = ERASED
    ticket.description = ERASED
    ticket.impact = None
    ticket.environment = {}
    ticket.attachments = []
    ticket.reply_token = None
    ticket.notifications_muted = True
    ticket.erased_at = ticket.erased_at or now

    for followup in session.scalars(select(Followup).where(Followup.ticket_id == ticket.id)):
        followup.message = ERASED
        counts.followups += 1
    for note in session.scalars(select(Notification).where(Notification.ticket_id == ticket.id)):
        note.body = None
        if note.state == PENDING:
            note.state = "skipped"
        counts.notifications += 1
    for event in session.scalars(
        select(TrackerEvent).where(TrackerEvent.ticket_id == ticket.id, TrackerEvent.kind == "comment")
    ):
        event.payload = {**event.payload, "body": ERASED}
        counts.tracker_events += 1
    for delivery in session.scalars(select(Delivery).where(Delivery.ticket_id == ticket.id)):
        if delivery.response:
            delivery.response = {k: v for k, v in delivery.response.items() if k in _KEPT_RESPONSE_KEYS}
    for job in session.scalars(select(Job).where(Job.ticket_id == ticket.id, Job.last_error.is_not(None))):
        job.last_error = scrub(job.last_error)
    return counts


def _erase_email(session: Session, email: InboundEmail, scrub: _Scrubber) -> None:
    email.raw = None
    email.fields = None
    email.sender = None
    email.message_key = f"erased:{secrets.token_hex(16)}"
    email.reason = scrub(email.reason)
    for job in session.scalars(
        select(Job).where(Job.kind.in_(_EMAIL_JOBS), Job.subject_id == email.id, Job.last_error.is_not(None))
    ):
        job.last_error = scrub(job.last_error)


def _cancel_email_jobs(session: Session, email_ids: Sequence[int], now: datetime) -> None:
    """Unfinished work on erased emails would only fail on the missing message: it ends here."""
    if not email_ids:
        return
    for job in session.scalars(
        select(Job).where(
            Job.kind.in_(_EMAIL_JOBS),
            Job.subject_id.in_(email_ids),
            Job.state.in_((PENDING, RUNNING, DEAD)),
        )
    ):
        job.state, job.lease_until = DONE, None
        job.finished_at = job.updated_at = now
        job.last_error = "cancelled: the email's personal data was erased"
    for email in session.scalars(select(InboundEmail).where(InboundEmail.id.in_(email_ids))):
        if email.state == "pending":
            email.state, email.reason, email.processed_at = REJECTED, "personal data erased", now


def _count(session: Session, model: Any, *conditions: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(model).where(*conditions)) or 0)


def _audit_row(
    session: Session, *, kind: str, actor: str, at: datetime, counts: Counts, redact_tracker: bool = False
) -> Erasure:
    row = Erasure(
        reference=new_reference(),
        kind=kind,
        actor=actor[:100],
        at=at,
        redact_tracker=redact_tracker,
        tracker_redactions=0,
        tracker_redactions_done=0,
    )
    _set_counts(row, counts)
    session.add(row)
    session.flush()
    return row


def _audit(session: Session, *, kind: str, actor: str, at: datetime, counts: Counts) -> AuditRecord:
    return AuditRecord.of(_audit_row(session, kind=kind, actor=actor, at=at, counts=counts))


def _set_counts(row: Erasure, counts: Counts) -> None:
    row.tickets, row.followups, row.notifications = counts.tickets, counts.followups, counts.notifications
    row.inbound_emails, row.tracker_events = counts.inbound_emails, counts.tracker_events


def _count_extra(counts: Counts) -> dict[str, int]:
    return {
        "tickets": counts.tickets,
        "followups": counts.followups,
        "notifications": counts.notifications,
        "inbound_emails": counts.inbound_emails,
        "tracker_events": counts.tracker_events,
    }


def _log_erasure(audit: AuditRecord) -> None:
    log.info(
        "gdpr.erased",
        extra={
            "reference": audit.reference,
            "kind": audit.kind,
            "actor": audit.actor,
            "tickets": audit.tickets,
            "followups": audit.followups,
            "notifications": audit.notifications,
            "inbound_emails": audit.inbound_emails,
            "tracker_events": audit.tracker_events,
            "tracker_redactions": audit.tracker_redactions,
        },
    )


def _iso(moment: datetime | None) -> str | None:
    return iso_utc(moment) if moment is not None else None
