"""Reconciliation: webhooks get lost (and GitLab disables failing hooks), so the worker
periodically asks each tracker project what changed and syncs those tickets through the
same ``sync_ticket`` job a webhook would create.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from bridge import metrics
from bridge.adapters.store.repository import Store
from bridge.adapters.trackers.base import Tracker
from bridge.config import Settings
from bridge.domain import Destination
from bridge.errors import BridgeError
from bridge.logs import new_request_id, request_id
from bridge.mappings import Mappings
from bridge.pipeline.filing.route import destinations
from bridge.pipeline.following.events import SYNC_TICKET, tracking_id_in

log = logging.getLogger(__name__)

# Read a little before the cursor: tracker clocks and search indexes lag slightly.
OVERLAP = timedelta(minutes=2)
FIRST_LOOK_BACK = timedelta(days=1)
STALL_STEP = timedelta(minutes=1)
"""How far the cursor moves past an instant with more changes than one listing holds."""


class Reconciler:
    def __init__(
        self,
        *,
        store: Store,
        trackers: Mapping[str, Tracker],
        mappings: Mappings,
        settings: Settings,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._trackers = trackers
        self._mappings = mappings
        self._settings = settings
        self._now = clock

    def run(self) -> int:
        """Queue a sync for every ticket whose issue changed since the last run; how many."""
        # One id for the run: its log lines and the sync jobs it queues carry it.
        token = request_id.set(request_id.get() or new_request_id())
        try:
            return self._run()
        finally:
            request_id.reset(token)

    def _run(self) -> int:
        queued = 0
        for dest in destinations(self._mappings.routing, self._settings):
            tracker = self._trackers.get(dest.tracker)
            if tracker is None:
                continue
            cursor = f"{dest.tracker}:{dest.project}"
            started = self._now()
            since = self._store.cursor(cursor) or started - FIRST_LOOK_BACK
            try:
                changed = tracker.changed_since(dest, since - OVERLAP)
            except BridgeError as exc:
                log.warning(
                    "reconcile.failed", extra={"tracker": dest.tracker, "project": dest.project, "error": str(exc)}
                )
                metrics.reconcile_run(dest.tracker, ok=False)
                continue  # the cursor stays: the next run covers this window again
            queued_here = 0
            for ref, title in changed:
                tracking_id = tracking_id_in(title)
                ticket = self._store.ticket_by_tracking_id(tracking_id) if tracking_id else None
                if ticket is None or ticket.tracker != dest.tracker or ticket.issue_key != ref.key:
                    continue
                if self._store.queue_job_once(ticket.id, kind=SYNC_TICKET):
                    queued_here += 1
            self._store.set_cursor(cursor, self._next_cursor(dest, since, started, changed.cut_at))
            metrics.reconcile_run(dest.tracker, ok=True, queued=queued_here)
            queued += queued_here
        if queued:
            log.info("reconcile.queued", extra={"count": queued})
        return queued

    @staticmethod
    def _next_cursor(dest: Destination, since: datetime, started: datetime, cut_at: datetime | None) -> datetime:
        """Where the next run reads from (plus ``OVERLAP``): the start of this run when the listing was
        complete; when it was cut (oldest change first), its last change, so nothing after it is
        skipped for good. A listing that makes no progress (more changes at one instant than the
        adapter lists at once) steps ``STALL_STEP`` past the old cursor rather than reading it for ever."""
        if cut_at is None:
            return started
        # The overlap covers lagging clocks and indexes at the recent end; a cut listing ends in
        # the past, so the next read starts exactly at its last change.
        after = min(cut_at + OVERLAP, started)
        if after <= since:
            log.warning(
                "reconcile.stalled",
                extra={"tracker": dest.tracker, "project": dest.project, "at": cut_at.isoformat()},
            )
            return min(since + STALL_STEP, started)
        log.info(
            "reconcile.cut",
            extra={"tracker": dest.tracker, "project": dest.project, "read_up_to": cut_at.isoformat()},
        )
        return after
