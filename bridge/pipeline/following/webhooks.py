"""Store a tracker webhook about one of our tickets, once, with the jobs that apply it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bridge.adapters.store.models import TrackerEvent
from bridge.adapters.store.repository import Accepted, Store
from bridge.pipeline.following.events import RELAY_COMMENT, SYNC_TICKET, NotOurs, TrackerHook


def accept_tracker_hook(store: Store, hook: TrackerHook, *, delivery_key: str) -> Accepted:
    ticket = store.ticket_by_tracking_id(hook.tracking_id)
    if ticket is None:
        raise NotOurs("no ticket with that tracking ID")
    if ticket.tracker not in (None, hook.tracker) or ticket.issue_key not in (None, hook.issue_key):
        # Someone's issue carries our prefix (copied title, moved issue): not ours to follow.
        raise NotOurs("the issue is not the one filed for that ticket")
    ticket_id = ticket.id

    def build(session: Session, now: datetime) -> tuple[int, dict[str, Any]]:
        if hook.issue_changed:
            event = TrackerEvent(
                ticket_id=ticket_id,
                tracker=hook.tracker,
                kind="issue",
                received_at=now,
                payload={"event": hook.event, "actor_id": hook.actor_id, "actor_username": hook.actor_username},
            )
            session.add(event)
            session.flush()
            store.new_job(session, kind=SYNC_TICKET, ticket_id=ticket_id, subject_id=event.id, now=now)
        for comment in hook.comments:
            event = TrackerEvent(
                ticket_id=ticket_id,
                tracker=hook.tracker,
                kind="comment",
                received_at=now,
                payload={
                    "id": comment.id,
                    "body": comment.body,
                    "author_id": comment.author_id,
                    "author_username": comment.author_username,
                    "internal": comment.internal,
                    "shared": comment.shared,
                },
            )
            session.add(event)
            session.flush()
            store.new_job(session, kind=RELAY_COMMENT, ticket_id=ticket_id, subject_id=event.id, now=now)
        return ticket_id, {"status": "accepted"}

    return store.accept(source=hook.tracker, delivery_key=delivery_key, event_type=hook.event, build=build)
