"""Tickets set aside for support: the bridge can no longer follow their issue.

A ticket whose issue was deleted (``jira:issue_deleted``), or which the tracker no longer shows the
bridge (404 on the fresh read), would otherwise keep its last status for ever. It keeps that status
and the reporter is told nothing (no "resolved", no "declined"): the ticket is flagged with a
reason, listed by ``python -m bridge tickets --needs-support``, counted in ``/metrics`` and shown
as ``needs_support`` in the status API, so a person can decide what the reporter hears.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bridge.adapters.store.models import Ticket
from bridge.adapters.store.repository import Store

ISSUE_DELETED = "issue_deleted"
"""The tracker announced the issue's deletion."""
ISSUE_NOT_FOUND = "issue_not_found"
"""The tracker answers 404 for the issue: deleted, or no longer visible to the bridge's account."""
ISSUE_GONE = frozenset({ISSUE_DELETED, ISSUE_NOT_FOUND})


def set_aside(store: Store, ticket_id: int, reason: str) -> bool:
    """Flag the ticket for support with ``reason``; False when it already was (for any reason)."""
    flagged = False

    def change(session: Session, ticket: Ticket, now: datetime) -> None:
        nonlocal flagged
        if ticket.support_reason is None:
            ticket.support_reason, ticket.support_flagged_at = reason, now
            flagged = True

    store.update_ticket(ticket_id, change)
    return flagged


def issue_readable_again(store: Store, ticket: Ticket) -> bool:
    """Clear a flag set because the issue could not be read, now that it can; True if cleared."""
    if ticket.support_reason not in ISSUE_GONE:
        return False
    cleared = False

    def change(session: Session, row: Ticket, now: datetime) -> None:
        nonlocal cleared
        if row.support_reason in ISSUE_GONE:
            row.support_reason, row.support_flagged_at = None, None
            cleared = True

    store.update_ticket(ticket.id, change)
    return cleared


def needing_support(store: Store, *, status: str | None = None, limit: int = 100) -> Sequence[Ticket]:
    """Flagged tickets (optionally of one status), most recently flagged first."""
    query = select(Ticket).where(Ticket.support_reason.is_not(None))
    if status:
        query = query.where(Ticket.status == status)
    with store.session() as session:
        return session.scalars(query.order_by(Ticket.support_flagged_at.desc(), Ticket.id.desc()).limit(limit)).all()


def count_needing_support(store: Store) -> dict[str, int]:
    """Flagged tickets by reason (for ``/metrics``)."""
    with store.session() as session:
        rows = session.execute(
            select(Ticket.support_reason, func.count())
            .where(Ticket.support_reason.is_not(None))
            .group_by(Ticket.support_reason)
        ).all()
        return {str(reason): int(count) for reason, count in rows}
