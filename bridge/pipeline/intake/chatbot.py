"""Chatbot events: their schema, and storing them exactly once with their job.

Nothing here calls a tracker: a report is stored and queued, then answered.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, PlainValidator, StringConstraints, TypeAdapter, field_validator
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bridge.adapters.store.models import Delivery, Followup, Ticket
from bridge.adapters.store.repository import Accepted, KeyReused, Store
from bridge.domain import Channel, Status
from bridge.pipeline.intake.fields import CheckedInput, EmailAddress
from bridge.tracking import is_tracking_id, new_tracking_id

CHATBOT = "chatbot"
"""``Delivery.source`` of chatbot events."""
FILE_TICKET = "file_ticket"
APPLY_FOLLOWUP = "apply_followup"
FETCH_ATTACHMENTS = "fetch_attachments"
SUPPORTED_LOCALES = ("da", "en")

Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
RequiredText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class _In(CheckedInput):
    """Chatbot input: unknown fields ignored, every field meets the one rule of ``fields``."""


class ReporterIn(_In):
    email: EmailAddress
    name: Text | None = None
    locale: Text | None = None
    organization: Text | None = None


class AttachmentIn(_In):
    filename: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    content_type: Text | None = None
    url: Annotated[str, StringConstraints(max_length=2000)] | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value


def _env_value(value: object) -> str | int | float | bool | None:
    """One value of ``report.environment`` as sent (one error per bad value, not one per union member)."""
    if isinstance(value, str):
        return value.strip()
    if value is None or isinstance(value, int | float | bool):
        return value
    raise ValueError("must be a string, a number, true, false or null")


EnvValue = Annotated[str | int | float | bool | None, PlainValidator(_env_value)]


class ReportIn(_In):
    title: Annotated[RequiredText, StringConstraints(max_length=500)]
    description: Annotated[RequiredText, StringConstraints(max_length=50_000)]
    impact: Annotated[str, StringConstraints(max_length=10_000)] | None = None
    priority: Text | None = None
    product: Text | None = None
    environment: dict[Annotated[str, StringConstraints(max_length=100)], EnvValue] = Field(
        default_factory=dict, max_length=50
    )
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=50)


class ReportCreated(_In):
    event_id: Annotated[RequiredText, StringConstraints(max_length=200)]
    type: Literal["report.created"]
    occurred_at: datetime | None = None
    conversation_id: Text | None = None
    reporter: ReporterIn
    report: ReportIn


class FollowupReporter(_In):
    email: EmailAddress


class ReportFollowup(_In):
    event_id: Annotated[RequiredText, StringConstraints(max_length=200)]
    type: Literal["report.followup"]
    occurred_at: datetime | None = None
    tracking_id: Annotated[str, StringConstraints(max_length=20)]
    reporter: FollowupReporter
    message: Annotated[RequiredText, StringConstraints(max_length=50_000)]
    not_fixed: bool = False

    @field_validator("tracking_id")
    @classmethod
    def _tracking_id(cls, value: str) -> str:
        value = value.upper()
        if not is_tracking_id(value):
            raise ValueError("not a tracking ID (ST- and 8 characters)")
        return value


ChatbotEvent = Annotated[ReportCreated | ReportFollowup, Field(discriminator="type")]
chatbot_event = TypeAdapter[ReportCreated | ReportFollowup](ChatbotEvent)


def normalise_locale(tag: str | None) -> str:
    """BCP 47 tag -> a supported language (``da-DK`` -> ``da``); anything else -> ``en``."""
    language = (tag or "").replace("_", "-").split("-")[0].lower()
    return language if language in SUPPORTED_LOCALES else "en"


class UnknownTicket(Exception):
    """The follow-up names a ticket that does not exist or is not the reporter's."""


def accept_report(
    store: Store,
    event: ReportCreated,
    *,
    delivery_key: str,
    response_for: Any,
    admit: Callable[[Session, datetime], None] | None = None,
    fetch_attachments: bool = False,
) -> Accepted:
    """Store the report, its ``received`` status and its filing job, once per delivery key.

    ``response_for(tracking_id, status)`` builds the body answered now and on repeats.
    ``admit(session, now)`` runs first in the storing transaction of a new (not repeated) delivery
    and may raise to refuse it (a rate limit); nothing is stored then. With ``fetch_attachments``, a
    report linking files also gets the job that fetches them into the issue once it is filed.
    """

    def build(session: Session, now: datetime) -> tuple[int, dict[str, Any]]:
        if admit is not None:
            admit(session, now)
        report = event.report
        ticket = Ticket(
            status=Status.RECEIVED.value,
            channel=Channel.CHATBOT.value,
            locale=normalise_locale(event.reporter.locale),
            reporter_email=event.reporter.email,
            reporter_name=event.reporter.name,
            organization=event.reporter.organization,
            conversation_id=event.conversation_id,
            title=report.title,
            description=report.description,
            impact=report.impact,
            declared_priority=report.priority,
            product=report.product,
            environment=dict(report.environment),
            attachments=[a.model_dump(exclude_none=True) for a in report.attachments],
            reply_token=secrets.token_hex(16),
            created_at=now,
            updated_at=now,
        )
        open_ticket(store, session, ticket, now)
        if fetch_attachments and any(a.url for a in report.attachments):
            # Same lane as file_ticket and created after it: runs once the issue exists.
            store.new_job(session, kind=FETCH_ATTACHMENTS, ticket_id=ticket.id, now=now)
        return ticket.id, response_for(ticket.tracking_id, Status.RECEIVED.value)

    return store.accept(
        source=CHATBOT,
        delivery_key=delivery_key,
        event_type=event.type,
        build=build,
        event_key=event.event_id,
        same_sender=_from_reporter(store, event.reporter.email),
    )


def accept_followup(
    store: Store,
    event: ReportFollowup,
    *,
    delivery_key: str,
    response_for: Any,
    admit: Callable[[Session, datetime], None] | None = None,
) -> Accepted:
    """Store a follow-up on the reporter's own ticket and queue it for the tracker (``admit`` as
    for ``accept_report``)."""
    ticket = store.ticket_by_tracking_id(event.tracking_id)
    same_sender = _from_reporter(store, event.reporter.email)
    if ticket is None or not _same_address(ticket.reporter_email, event.reporter.email):
        # A repeat of an accepted follow-up still answers 200 (the ticket may have changed since),
        # but only to its reporter: another reporter's event id never returns their answer.
        previous = store.find_delivery(CHATBOT, delivery_key, event_key=event.event_id)
        if previous is not None and previous.response is not None:
            if previous.event_type != event.type or not same_sender(previous):
                raise KeyReused(CHATBOT)
            return Accepted(response=previous.response, duplicate=True)
        raise UnknownTicket(event.tracking_id)
    ticket_id, tracking_id, status = ticket.id, ticket.tracking_id, ticket.status

    def build(session: Session, now: datetime) -> tuple[int, dict[str, Any]]:
        if admit is not None:
            admit(session, now)
        add_followup(store, session, ticket_id=ticket_id, message=event.message, not_fixed=event.not_fixed, now=now)
        return ticket_id, response_for(tracking_id, status)

    return store.accept(
        source=CHATBOT,
        delivery_key=delivery_key,
        event_type=event.type,
        build=build,
        event_key=event.event_id,
        same_sender=same_sender,
    )


def _same_address(a: str, b: str) -> bool:
    return a.strip().lower() == b.strip().lower()


def _from_reporter(store: Store, email: str) -> Callable[[Delivery], bool]:
    """Whether an earlier delivery was this reporter's (its ticket's reporter is ``email``)."""

    def same(previous: Delivery) -> bool:
        if previous.ticket_id is None:
            return False
        try:
            return _same_address(store.ticket(previous.ticket_id).reporter_email, email)
        except LookupError:
            return False

    return same


def open_ticket(store: Store, session: Session, ticket: Ticket, now: datetime) -> None:
    """Insert a new ticket (drawing its tracking ID), its ``received`` status and its filing job.

    Shared by every channel: the status schedules the acknowledgement, the job files the issue.
    """
    insert_with_fresh_tracking_id(session, ticket)
    store.add_status(session, ticket, Status.RECEIVED, now)
    store.new_job(session, kind=FILE_TICKET, ticket_id=ticket.id, now=now)


def add_followup(
    store: Store,
    session: Session,
    *,
    ticket_id: int,
    message: str,
    not_fixed: bool,
    now: datetime,
    needs_review: bool = False,
) -> Followup:
    """Store a follow-up on a ticket and queue the job that takes it to the tracker."""
    followup = Followup(
        ticket_id=ticket_id, message=message, not_fixed=not_fixed, needs_review=needs_review, created_at=now
    )
    session.add(followup)
    session.flush()
    store.new_job(session, kind=APPLY_FOLLOWUP, ticket_id=ticket_id, subject_id=followup.id, now=now)
    return followup


def insert_with_fresh_tracking_id(session: Session, ticket: Ticket, attempts: int = 5) -> None:
    """Draw tracking IDs until one is free (40 bits: collisions are rare, not impossible)."""
    for _ in range(attempts):
        ticket.tracking_id = new_tracking_id()
        try:
            with session.begin_nested():
                session.add(ticket)
                session.flush()
            return
        except IntegrityError:
            continue
    raise RuntimeError("could not draw a free tracking ID")
