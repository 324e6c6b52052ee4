"""The SQL schema: the source of truth. The queue only carries job ids."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC (SQLite has no time zones), always returned aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Ticket(Base):
    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tracking_id: Mapped[str] = mapped_column(String(16), unique=True)
    status: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str] = mapped_column(String(10))
    locale: Mapped[str] = mapped_column(String(8))
    reporter_email: Mapped[str] = mapped_column(String(320), index=True)
    reporter_name: Mapped[str | None] = mapped_column(String(200))
    organization: Mapped[str | None] = mapped_column(String(200))
    conversation_id: Mapped[str | None] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    impact: Mapped[str | None] = mapped_column(Text)
    declared_priority: Mapped[str | None] = mapped_column(String(100))
    product: Mapped[str | None] = mapped_column(String(100))
    recipient: Mapped[str | None] = mapped_column(String(320))
    """The address an email report was sent to (the category rules' ``addresses``); None for the chatbot."""
    environment: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    attachments: Mapped[list[Any]] = mapped_column(JSON, default=list)

    # Decided by the worker; persisted before the tracker is called so retries agree.
    severity: Mapped[str | None] = mapped_column(String(10))
    kind: Mapped[str | None] = mapped_column(String(10))
    po_review: Mapped[bool | None] = mapped_column(Boolean)
    rules: Mapped[list[Any] | None] = mapped_column(JSON)
    category: Mapped[str | None] = mapped_column(String(100))
    """The ticket's category: the bridge's decision, or what support set in the tracker (then
    ``category_source`` is ``support`` and the bridge never changes it again). None: not decided
    yet, or filed before the bridge categorised."""
    category_rule: Mapped[str | None] = mapped_column(String(200))
    """Why: the rule that fired (``product:widget``), or ``changed-in-tracker``."""
    category_source: Mapped[str | None] = mapped_column(String(10))
    """``bridge`` or ``support``."""
    tracker: Mapped[str | None] = mapped_column(String(10))
    project: Mapped[str | None] = mapped_column(String(200))
    board_id: Mapped[int | None] = mapped_column(Integer)
    planned: Mapped[bool] = mapped_column(Boolean, default=False)
    sprint_slot: Mapped[str | None] = mapped_column(String(10))
    sprint_id: Mapped[str | None] = mapped_column(String(64))
    sprint_name: Mapped[str | None] = mapped_column(String(200))
    sprint_start: Mapped[date | None] = mapped_column(Date)
    sprint_due: Mapped[date | None] = mapped_column(Date)
    issue_key: Mapped[str | None] = mapped_column(String(100))
    """Stored as soon as the tracker answers the create, before the issue is put into its sprint."""
    issue_url: Mapped[str | None] = mapped_column(Text)
    create_attempted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """Set just before the tracker is asked to create the issue, cleared when it refused; still set
    after a create whose outcome is unknown, so the next attempt searches (long enough) first."""
    filed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """When the filing job finished: the issue exists and is in its sprint (or needs planning)."""
    support_reason: Mapped[str | None] = mapped_column(String(40), index=True)
    """Why the ticket is set aside for support (``issue_deleted``, ``issue_not_found``); None when
    nothing is wrong. The reporter is told nothing about it."""
    support_flagged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    status_reason: Mapped[str | None] = mapped_column(String(40))
    """Why a ticket was declined (duplicate, wont_fix, cannot_reproduce, declined)."""
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reply_token: Mapped[str | None] = mapped_column(String(32), unique=True)
    """Unguessable per-ticket token in the Reply-To plus-address of our emails."""
    notifications_muted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    linked_ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    """The earlier ticket this one follows up (a "not fixed" long after resolution)."""
    tracker_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """Set when the reporter's personal data was erased (on request or after the retention period)."""
    attachments_fetched: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """How many of the report's linked attachments the ``fetch_attachments`` job has dealt with
    (uploaded to the issue, or left as links), so a retried job goes on with the next one."""

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


# Addresses compare case-insensitively: the per-reporter limit (this hour's tickets of one address,
# on every report) and the status API's ?email= read this index instead of every ticket of the hour.
Index("ix_tickets_reporter_lower_created", func.lower(Ticket.reporter_email), Ticket.created_at)


class StatusEvent(Base):
    """The reporter-facing history of a ticket."""

    __tablename__ = "status_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    status: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class Delivery(Base):
    """One inbound webhook delivery; the unique key makes redeliveries no-ops."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("source", "delivery_key", name="uq_deliveries_source_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(20))
    delivery_key: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(50))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """The body we answered with, returned verbatim on a repeat."""
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    """Indexed: the per-reporter rate limit counts the last hour's follow-ups."""


class Followup(Base):
    __tablename__ = "followups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    message: Mapped[str] = mapped_column(Text)
    not_fixed: Mapped[bool] = mapped_column(Boolean, default=False)
    needs_review: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """The reply's meaning is unclear (an email about a resolved ticket): support is flagged to read it."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    commented_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """Set once the comment is in the tracker, so a retry of a later step does not repeat it."""
    spawned_ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    """The new, linked ticket opened for a "not fixed" that came long after resolution."""


class Job(Base):
    """A unit of background work. Every job ends ``done`` or ``dead`` (with its last error)."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_state_due", "state", "next_attempt_at"),
        Index("ix_jobs_ticket_order", "ticket_id", "lane", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))
    lane: Mapped[str] = mapped_column(String(10), default="tracker", server_default="tracker")
    """Jobs of one ticket run in order within their lane (tracker writes, notifications)."""
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    """None for work that has no ticket yet (an inbound email still to be read)."""
    subject_id: Mapped[int | None] = mapped_column(Integer)
    """The follow-up (or other row) the job acts on, when not the ticket itself."""
    state: Mapped[str] = mapped_column(String(10))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """While running: the job is presumed lost with its worker after this; the worker's heartbeat
    extends it every few seconds."""
    claim_token: Mapped[str | None] = mapped_column(String(32))
    """Drawn at each claim: only the run holding it may renew the lease or record the outcome, so a
    worker whose job was taken over (its lease ran out) cannot finish it a second time."""
    retry_from: Mapped[datetime] = mapped_column(UTCDateTime)
    """Start of the retry horizon: creation, or the last replay."""
    last_error: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(64))
    """The web request (``X-Request-ID``) or job run that created the job: its log lines carry it too."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TrackerEvent(Base):
    """A tracker webhook about one of our tickets, kept for the worker to apply."""

    __tablename__ = "tracker_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    tracker: Mapped[str] = mapped_column(String(10))
    kind: Mapped[str] = mapped_column(String(20))
    """``issue`` (state may have changed: read it fresh) or ``comment``."""
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Notification(Base):
    """One message to the reporter; the unique key makes each transition mail at most once."""

    __tablename__ = "notifications"
    __table_args__ = (UniqueConstraint("ticket_id", "dedup_key", name="uq_notifications_ticket_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    """``ack``, ``status``, ``comment`` or ``plan``."""
    dedup_key: Mapped[str] = mapped_column(String(160))
    status: Mapped[str | None] = mapped_column(String(20))
    body: Mapped[str | None] = mapped_column(Text)
    """A public comment's text, for ``comment`` notifications."""
    state: Mapped[str] = mapped_column(String(12), default="pending")
    """``pending``, ``sent``, ``superseded`` (a newer status came first) or ``skipped``."""
    message_id: Mapped[str | None] = mapped_column(String(250))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SyncCursor(Base):
    """How far reconciliation has read a tracker project's changes."""

    __tablename__ = "sync_cursors"

    name: Mapped[str] = mapped_column(String(250), primary_key=True)
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime)


class InboundEmail(Base):
    """One received email, kept as delivered (for replay) with what became of it."""

    __tablename__ = "inbound_emails"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(20))
    """``mailgun``, ``sendgrid``, ``postmark``, ``raw`` or ``imap``."""
    message_key: Mapped[str] = mapped_column(String(255), unique=True)
    """The RFC 5322 Message-ID (or a hash of the message): a second delivery is the same message."""
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    """The full RFC 822 message, when the provider sent it."""
    fields: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """The provider's parsed fields, when it sent no raw message."""
    sender: Mapped[str | None] = mapped_column(String(320), index=True)
    state: Mapped[str] = mapped_column(String(12), default="pending")
    """``pending``, ``ticket``, ``followup``, ``ignored`` (machine mail), ``held`` (rate limit),
    ``unsubscribed`` or ``rejected`` (unreadable; reason says why)."""
    reason: Mapped[str | None] = mapped_column(Text)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """Set when an operator released a held email: it is then exempt from the rate limit."""
    attachments_uploaded: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """How many of its attachments are in the tracker issue, so a retried upload job skips them."""


class Erasure(Base):
    """The audit log of personal-data operations: exports, erasures and retention purges.

    Holds what was done, when, by whom and how much, never the address or any hash of it.
    """

    __tablename__ = "erasures"
    __table_args__ = (
        UniqueConstraint("reference", name="uq_erasures_reference"),
        Index("ix_erasures_at", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(40))
    """A random reference to quote to the data subject or in a ticket (``GD-...``)."""
    kind: Mapped[str] = mapped_column(String(10))
    """``export``, ``erase`` (on request) or ``retention`` (the periodic purge)."""
    actor: Mapped[str] = mapped_column(String(100))
    """Who: ``cli:<os user>``, ``admin-api`` or ``retention``."""
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    tickets: Mapped[int] = mapped_column(Integer, default=0)
    followups: Mapped[int] = mapped_column(Integer, default=0)
    notifications: Mapped[int] = mapped_column(Integer, default=0)
    inbound_emails: Mapped[int] = mapped_column(Integer, default=0)
    tracker_events: Mapped[int] = mapped_column(Integer, default=0)
    redact_tracker: Mapped[bool] = mapped_column(Boolean, default=False)
    """The tracker issues' descriptions were to be redacted too."""
    tracker_redactions: Mapped[int] = mapped_column(Integer, default=0)
    """``redact_issue`` jobs queued (one per erased ticket)."""
    tracker_redactions_done: Mapped[int] = mapped_column(Integer, default=0)
    """Counted up by those jobs as each finishes (an issue redacted, or none was ever filed)."""
