"""Abuse limits: how many reports and follow-ups one reporter may send through the chatbot in an hour.

**Per reporter, never per connection.** During an outage hundreds of customers report at once,
all through the chatbot's few connections; that burst is accepted whole. What is limited is one
reporter address (``reporter.email`` of the verified, validated event) sending more than
``limits.reports_per_reporter_hour`` reports (``followups_per_reporter_hour`` follow-ups) within
the last hour: the chatbot gets ``429`` with ``Retry-After`` and keeps the event, to send it again
later. Nothing of a refused event is stored.

**Counted in the database**, from what was stored: the chatbot tickets the address opened, or the
chatbot follow-ups it sent, in the hour before now. So the limit holds across every web process and
machine (no Redis needed, nothing lost on a restart), a redelivered ``event_id`` never counts twice
(a duplicate is answered from its first delivery before the check runs), a refused attempt does not
count at all, and ``Retry-After`` is exact: when the oldest counted event leaves the window. The
check runs inside the transaction that stores the event. On SQLite that transaction holds the write
lock, so the count is exact; on PostgreSQL two requests of one reporter at the same instant may
both pass, so a burst can exceed the limit by the number of requests in flight at once.

Email senders have their own, older limit (``intake.new_tickets_per_sender_hour``): a new ticket
over it is ``held`` for review rather than refused, because an email cannot be asked to come back.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from bridge.adapters.store.models import Delivery, Ticket
from bridge.config import LimitsSettings
from bridge.domain import Channel

WINDOW = timedelta(hours=1)
CHATBOT = "chatbot"
REPORT_CREATED = "report.created"
REPORT_FOLLOWUP = "report.followup"

Admit = Callable[[Session, datetime], None]
"""Called in the storing transaction before anything is added; raises ``RateLimited`` to refuse."""


class RateLimited(Exception):
    """The reporter sent too many events of one kind within the window."""

    def __init__(self, *, what: str, limit: int, retry_after: int) -> None:
        super().__init__(f"more than {limit} {what} within an hour from this reporter")
        self.what = what
        self.limit = limit
        self.retry_after = retry_after
        """Whole seconds until the oldest counted event leaves the window (at least 1)."""


class ReporterLimits:
    """The per-reporter hourly limits of the chatbot webhook."""

    def __init__(self, settings: LimitsSettings) -> None:
        self._settings = settings

    def for_event(self, event_type: str, email: str) -> Admit:
        """The check for one event (``report.created`` or ``report.followup``) from ``email``."""
        if event_type == REPORT_CREATED:
            return lambda session, now: self.check_reports(session, email, now)
        return lambda session, now: self.check_followups(session, email, now)

    def check_reports(self, session: Session, email: str, now: datetime) -> None:
        """Refuse a new report when the address opened the limit's number of chatbot tickets this hour."""
        limit = self._settings.reports_per_reporter_hour
        times = (
            select(Ticket.created_at)
            .where(
                Ticket.created_at > now - WINDOW,
                Ticket.channel == Channel.CHATBOT.value,
                func.lower(Ticket.reporter_email) == email.strip().lower(),
            )
            .order_by(Ticket.created_at)
        )
        _refuse_over(session, times, limit=limit, what="reports", now=now)

    def check_followups(self, session: Session, email: str, now: datetime) -> None:
        """Refuse a follow-up when the address sent the limit's number of chatbot follow-ups this hour."""
        limit = self._settings.followups_per_reporter_hour
        times = (
            select(Delivery.received_at)
            .join(Ticket, Ticket.id == Delivery.ticket_id)
            .where(
                Delivery.received_at > now - WINDOW,
                Delivery.source == CHATBOT,
                Delivery.event_type == REPORT_FOLLOWUP,
                func.lower(Ticket.reporter_email) == email.strip().lower(),
            )
            .order_by(Delivery.received_at)
        )
        _refuse_over(session, times, limit=limit, what="follow-ups", now=now)


def _refuse_over(session: Session, times: Select[Any], *, limit: int, what: str, now: datetime) -> None:
    """Raise ``RateLimited`` when ``times`` (the counted events, oldest first) hold ``limit`` or more."""
    count = int(session.scalar(select(func.count()).select_from(times.order_by(None).subquery())) or 0)
    if count < limit:
        return
    # One more event fits once all but limit - 1 of the counted ones have left the window.
    freed_by: datetime | None = session.scalar(times.offset(count - limit).limit(1))
    raise RateLimited(what=what, limit=limit, retry_after=seconds_until_free(freed_by, now))


def seconds_until_free(oldest: datetime | None, now: datetime) -> int:
    """Whole seconds until ``oldest`` leaves the window: when one more event fits again (at least 1)."""
    if oldest is None:
        return 1
    if oldest.tzinfo is None and now.tzinfo is not None:
        oldest = oldest.replace(tzinfo=now.tzinfo)
    return max(1, math.ceil((oldest + WINDOW - now).total_seconds()))
