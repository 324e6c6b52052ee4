"""The ``apply_followup`` job: the reporter's follow-up reaches the tracker issue.

A follow-up saying "not fixed" on a resolved ticket also reopens the issue.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from bridge.adapters.store.models import Job
from bridge.adapters.store.repository import Store
from bridge.adapters.trackers.base import Tracker
from bridge.domain import Status
from bridge.errors import RetryableError
from bridge.pipeline.file_ticket import destination_of, issue_ref_of, tracker_for

log = logging.getLogger(__name__)


def followup_comment(message: str, *, not_fixed: bool) -> str:
    heading = "The reporter says the fix did not work:" if not_fixed else "The reporter added:"
    return f"{heading}\n\n{message}"


class FollowupApplier:
    def __init__(self, *, store: Store, trackers: Mapping[str, Tracker]) -> None:
        self._store = store
        self._trackers = trackers

    def __call__(self, job: Job) -> None:
        assert job.subject_id is not None, "apply_followup jobs name their follow-up"
        ticket = self._store.ticket(job.ticket_id)
        followup = self._store.followup(job.subject_id)
        dest, ref = destination_of(ticket), issue_ref_of(ticket)
        if dest is None or ref is None:
            # Per-ticket order runs the filing job first; if that died, wait for its replay.
            raise RetryableError("the ticket has no tracker issue yet")
        tracker = tracker_for(self._trackers, dest)
        if followup.commented_at is None:
            tracker.add_comment(dest, ref, followup_comment(followup.message, not_fixed=followup.not_fixed))
            self._store.mark_commented(followup.id)
        if followup.not_fixed and ticket.status == Status.RESOLVED.value:
            tracker.reopen(dest, ref)
            self._store.set_status(ticket.id, Status.REOPENED)
            log.info("ticket.reopened", extra={"tracking_id": ticket.tracking_id, "issue": ref.key})
