"""Read-only aggregate queries for reporting: ``python -m bridge stats`` and the ticket gauges of /metrics.

Counting is done by the database (``GROUP BY``, ``count(DISTINCT ...)``, ``min()``), the same SQL on
SQLite and PostgreSQL; only medians are left to the caller, as SQLite has no percentile function.
Windows include both ends, ``since <= t <= until`` (``until`` is usually now). Nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, distinct, func, select

from bridge.adapters.store.models import StatusEvent, Ticket
from bridge.adapters.store.repository import Store
from bridge.domain import Status


@dataclass(frozen=True, kw_only=True)
class TicketGroup:
    """How many tickets share these values (as stored; the caller bounds them)."""

    category: str | None
    severity: str | None
    channel: str
    status: str
    count: int


@dataclass(frozen=True, kw_only=True)
class Milestones:
    """When one ticket was received and first reached ``triaged`` and ``resolved`` (None: not yet)."""

    received: datetime
    triaged: datetime | None
    resolved: datetime | None


class ReportingQueries:
    def __init__(self, store: Store) -> None:
        self._store = store

    def ticket_groups(self, *, since: datetime | None = None, until: datetime | None = None) -> list[TicketGroup]:
        """Tickets received in the window (every ticket without one) by category (as it is now: the
        bridge's, or support's when support changed it), severity, channel and current status."""
        query = select(Ticket.category, Ticket.severity, Ticket.channel, Ticket.status, func.count()).group_by(
            Ticket.category, Ticket.severity, Ticket.channel, Ticket.status
        )
        query = _received_within(query, since, until)
        with self._store.session() as session:
            rows = session.execute(query).all()
        return [
            TicketGroup(category=cat, severity=severity, channel=channel, status=status, count=int(count))
            for cat, severity, channel, status, count in rows
        ]

    def organizations(self, *, since: datetime, until: datetime, limit: int) -> list[tuple[str, int]]:
        """The organisations with the most tickets received in the window, most first. A value holding
        an ``@`` (the chatbot passes what the reporter typed) is an address, never an organisation."""
        reports = func.count().label("reports")
        query = (
            select(Ticket.organization, reports)
            .where(Ticket.organization.is_not(None), Ticket.organization != "", ~Ticket.organization.contains("@"))
            .group_by(Ticket.organization)
            .order_by(reports.desc(), Ticket.organization)
            .limit(limit)
        )
        query = _received_within(query, since, until)
        with self._store.session() as session:
            return [(str(name), int(count)) for name, count in session.execute(query).all()]

    def milestones(self, *, since: datetime, until: datetime) -> list[Milestones]:
        """Received and first triaged/resolved times of every ticket triaged or resolved in the window
        (the caller keeps those whose *first* such change falls in it)."""
        active = (
            select(StatusEvent.ticket_id)
            .where(
                StatusEvent.status.in_((Status.TRIAGED.value, Status.RESOLVED.value)),
                StatusEvent.at >= since,
                StatusEvent.at <= until,
            )
            .distinct()
        )
        query = (
            select(
                Ticket.created_at,
                func.min(case((StatusEvent.status == Status.RECEIVED.value, StatusEvent.at))),
                func.min(case((StatusEvent.status == Status.TRIAGED.value, StatusEvent.at))),
                func.min(case((StatusEvent.status == Status.RESOLVED.value, StatusEvent.at))),
            )
            .join(StatusEvent, StatusEvent.ticket_id == Ticket.id)
            .where(Ticket.id.in_(active))
            .group_by(Ticket.id, Ticket.created_at)
        )
        with self._store.session() as session:
            rows = session.execute(query).all()
        # A ticket's ``received`` change is stamped at its creation; created_at stands in where it is missing.
        return [
            Milestones(received=_utc(received) or created, triaged=_utc(triaged), resolved=_utc(resolved))
            for created, received, triaged, resolved in rows
        ]

    def tickets_reaching(self, status: Status, *, since: datetime, until: datetime) -> int:
        """How many tickets moved to ``status`` at least once in the window."""
        query = select(func.count(distinct(StatusEvent.ticket_id))).where(
            StatusEvent.status == status.value, StatusEvent.at >= since, StatusEvent.at <= until
        )
        with self._store.session() as session:
            return int(session.scalar(query) or 0)

    def status_changes(self) -> dict[str, int]:
        """Every status change ever recorded, by the status moved to."""
        query = select(StatusEvent.status, func.count()).group_by(StatusEvent.status)
        with self._store.session() as session:
            return {str(status): int(count) for status, count in session.execute(query).all()}


def _received_within(query: Any, since: datetime | None, until: datetime | None) -> Any:
    if since is not None:
        query = query.where(Ticket.created_at >= since)
    if until is not None:
        query = query.where(Ticket.created_at <= until)
    return query


def _utc(value: datetime | str | None) -> datetime | None:
    """An aggregate over a UTC column as an aware datetime: SQLite may hand ``min(CASE ...)`` back as
    the stored text, without the column type's conversion."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
