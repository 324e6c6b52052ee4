"""What a status change or a public comment schedules for the reporter.

Called inside the transaction that records the change, so the notification and its
job exist exactly when the change does: never lost, never made twice.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bridge.adapters.store.models import Notification, StatusEvent, Ticket
from bridge.adapters.store.repository import NOTIFY_LANE, Store
from bridge.domain import Status

NOTIFY = "notify"
CALLBACK = "chatbot_callback"
CALLBACK_LANE = "callback"

ACK, STATUS, COMMENT, PLAN = "ack", "status", "comment", "plan"


class NoticeScheduler:
    """Turns status events and public comments into notification rows and their jobs.

    Status emails wait ``debounce_seconds`` so that flapping becomes one email with the
    final state; the acknowledgement and comments go at once.
    """

    def __init__(self, *, debounce_seconds: float, callback_enabled: bool) -> None:
        self._debounce = debounce_seconds
        self._callback = callback_enabled

    def on_status(self, session: Session, ticket: Ticket, event: StatusEvent, now: datetime) -> None:
        received = event.status == Status.RECEIVED.value
        self._add(
            session,
            ticket,
            now,
            kind=ACK if received else STATUS,
            dedup_key=f"status:{event.id}",
            status=event.status,
            delay=0 if received else self._debounce,
        )
        if self._callback:
            Store.new_job(session, kind=CALLBACK, lane=CALLBACK_LANE, ticket_id=ticket.id, subject_id=event.id, now=now)

    def comment(self, session: Session, ticket: Ticket, *, comment_key: str, body: str, now: datetime) -> bool:
        """Schedule a public comment for the reporter; False if that comment was scheduled before."""
        try:
            with session.begin_nested():
                self._add(session, ticket, now, kind=COMMENT, dedup_key=f"comment:{comment_key}", body=body)
        except IntegrityError:
            return False
        return True

    def plan_changed(self, session: Session, ticket: Ticket, *, change_key: str, now: datetime) -> None:
        """Tell the reporter their ticket was re-planned (support changed the severity)."""
        self._add(session, ticket, now, kind=PLAN, dedup_key=f"plan:{change_key}", delay=self._debounce)

    @staticmethod
    def _add(
        session: Session,
        ticket: Ticket,
        now: datetime,
        *,
        kind: str,
        dedup_key: str,
        status: str | None = None,
        body: str | None = None,
        delay: float = 0,
    ) -> Notification:
        notification = Notification(
            ticket_id=ticket.id,
            kind=kind,
            dedup_key=dedup_key,
            status=status,
            body=body,
            state="pending",
            created_at=now,
        )
        session.add(notification)
        session.flush()
        Store.new_job(
            session,
            kind=NOTIFY,
            lane=NOTIFY_LANE,
            ticket_id=ticket.id,
            subject_id=notification.id,
            now=now,
            delay=delay,
        )
        return notification
