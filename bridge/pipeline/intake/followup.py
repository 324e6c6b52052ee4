"""The ``apply_followup`` job: the reporter's follow-up reaches the tracker issue.

"Not fixed" on a resolved ticket reopens the issue; long after resolution it opens a
new ticket linked to the old one instead. A declined ticket is never reopened by the
reporter: the message is added and support is flagged. An email reply about a resolved
ticket that says neither "fixed" nor clearly "not fixed" (``needs_review``) is added and
flagged the same way. Anything else is a comment.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from bridge.adapters.store.models import Followup, Job, Ticket
from bridge.adapters.store.repository import Store
from bridge.adapters.trackers.base import Tracker
from bridge.domain import Status
from bridge.errors import RetryableError
from bridge.mappings import Mappings
from bridge.pipeline.filing.file_ticket import destination_of, issue_ref_of, tracker_for
from bridge.pipeline.intake.chatbot import FILE_TICKET, insert_with_fresh_tracking_id

log = logging.getLogger(__name__)


def followup_heading(*, not_fixed: bool) -> str:
    """The bridge's words before the reporter's message (which the adapter adds, made inert)."""
    return "The reporter says the fix did not work:" if not_fixed else "The reporter added:"


class FollowupApplier:
    def __init__(
        self,
        *,
        store: Store,
        trackers: Mapping[str, Tracker],
        mappings: Mappings,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._trackers = trackers
        self._mappings = mappings
        self._now = clock

    def __call__(self, job: Job) -> None:
        assert job.subject_id is not None, "apply_followup jobs name their follow-up"
        ticket = self._store.job_ticket(job)
        followup = self._store.followup(job.subject_id)
        dest, ref = destination_of(ticket), issue_ref_of(ticket)
        if dest is None or ref is None:
            # Per-ticket order runs the filing job first; if that died, wait for its replay.
            raise RetryableError("the ticket has no tracker issue yet")
        tracker = tracker_for(self._trackers, dest)
        status = Status(ticket.status)

        if followup.not_fixed and status is Status.RESOLVED and self._past_reopen_window(ticket):
            if followup.commented_at is None:
                note = (
                    "The reporter says the fix did not work, long after it was resolved; a new linked ticket follows."
                )
                tracker.add_comment(dest, ref, note, reporter_text=followup.message)
                self._store.mark_commented(followup.id)
            self._spawn_linked_ticket(ticket, followup)
            return

        if followup.commented_at is None:
            heading = followup_heading(not_fixed=followup.not_fixed)
            tracker.add_comment(dest, ref, heading, reporter_text=followup.message)
            self._store.mark_commented(followup.id)
        if followup.not_fixed and status is Status.RESOLVED:
            tracker.reopen(dest, ref)
            self._store.set_status(ticket.id, Status.REOPENED)
            log.info("ticket.reopened", extra={"tracking_id": ticket.tracking_id, "issue": ref.key})
        elif (followup.not_fixed and status is Status.DECLINED) or (
            followup.needs_review and status is Status.RESOLVED
        ):
            # A disputed decline, or an email reply about a resolved ticket whose meaning is unclear.
            label = self._mappings.routing.labels[dest.tracker].support_review  # type: ignore[index]
            tracker.update_labels(dest, ref, add=[label], remove=[])
            log.info("ticket.support_flagged", extra={"tracking_id": ticket.tracking_id, "issue": ref.key})

    def _past_reopen_window(self, ticket: Ticket) -> bool:
        window = timedelta(days=self._mappings.status.reopen_window_days)
        return ticket.resolved_at is not None and self._now() - ticket.resolved_at > window

    def _spawn_linked_ticket(self, old: Ticket, followup: Followup) -> None:
        def spawn(session: Session, row: Ticket, now: datetime) -> None:
            current = session.get(Followup, followup.id)
            if current is None or current.spawned_ticket_id is not None:
                return  # a retry after the new ticket was made
            resolved = old.resolved_at.date().isoformat() if old.resolved_at else "earlier"
            new = Ticket(
                status=Status.RECEIVED.value,
                channel=old.channel,
                locale=old.locale,
                reporter_email=old.reporter_email,
                reporter_name=old.reporter_name,
                organization=old.organization,
                conversation_id=old.conversation_id,
                title=old.title,
                description=f"{followup.message}\n\nFollow-up to {old.tracking_id} (resolved {resolved}): "
                "the reporter says the problem is not fixed.",
                impact=old.impact,
                declared_priority=old.declared_priority,
                product=old.product,
                environment=dict(old.environment or {}),
                attachments=list(old.attachments or []),
                reply_token=secrets.token_hex(16),
                linked_ticket_id=old.id,
                created_at=now,
                updated_at=now,
            )
            insert_with_fresh_tracking_id(session, new)
            self._store.add_status(session, new, Status.RECEIVED, now)
            self._store.new_job(session, kind=FILE_TICKET, ticket_id=new.id, now=now)
            current.spawned_ticket_id = new.id
            log.info("ticket.linked_followup", extra={"tracking_id": old.tracking_id, "new": new.tracking_id})

        self._store.update_ticket(old.id, spawn)
