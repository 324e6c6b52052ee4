"""Tracker -> ticket: the ``sync_ticket`` and ``relay_comment`` jobs.

``sync_ticket`` reads the issue fresh from the tracker and brings the ticket in line
(status, a severity changed by support, which re-plans the sprint, and a category changed by
support, which the bridge never changes back). Webhooks, reconciliation and replays all go
through it, so late or repeated deliveries are harmless. ``relay_comment`` passes a
developer's public comment on to the reporter.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy.orm import Session

from bridge import metrics
from bridge.adapters.store.models import Job, Ticket
from bridge.adapters.store.repository import CATEGORY_BY_SUPPORT, Store, apply_plan
from bridge.adapters.trackers.base import Tracker
from bridge.domain import Account, Classification, Destination, IssueRef, IssueSnapshot, Kind, Severity, Status
from bridge.errors import NotFoundError, RetryableError
from bridge.mappings import Mappings
from bridge.pipeline.filing.file_ticket import (
    classification_of,
    destination_of,
    issue_ref_of,
    plan_of,
    report_of,
    tracker_for,
)
from bridge.pipeline.filing.plan import SprintPlanner
from bridge.pipeline.filing.route import labels_for
from bridge.pipeline.following import support
from bridge.pipeline.following.events import JIRA_DELETE_EVENTS
from bridge.pipeline.following.status_map import category_in_tracker, map_status, severity_in_tracker
from bridge.pipeline.notifying.notices import NoticeScheduler

log = logging.getLogger(__name__)


def _filed(store: Store, trackers: Mapping[str, Tracker], ticket: Ticket) -> tuple[Destination, IssueRef, Tracker]:
    dest, ref = destination_of(ticket), issue_ref_of(ticket)
    if dest is None or ref is None:
        raise RetryableError("the ticket's issue is not filed yet")
    return dest, ref, tracker_for(trackers, dest)


class TrackerSync:
    def __init__(
        self,
        *,
        store: Store,
        trackers: Mapping[str, Tracker],
        mappings: Mappings,
        planner: SprintPlanner,
        notices: NoticeScheduler,
    ) -> None:
        self._store = store
        self._trackers = trackers
        self._mappings = mappings
        self._planner = planner
        self._notices = notices

    def __call__(self, job: Job) -> None:
        ticket = self._store.job_ticket(job)
        dest, ref, tracker = _filed(self._store, self._trackers, ticket)
        event = ""
        if job.subject_id is not None:
            payload = self._store.tracker_event(job.subject_id).payload
            event = str(payload.get("event") or "")
            if is_own(tracker.account(), payload.get("actor_id"), payload.get("actor_username")):
                # Our own write coming back: the ticket already reflects it. No echo, no loop.
                log.info("tracker_sync.own_change", extra={"tracking_id": ticket.tracking_id})
                return
        try:
            issue = tracker.issue_state(dest, ref)
        except NotFoundError as exc:
            # Deleted, or no longer visible to us: the ticket keeps its status and the reporter hears
            # nothing wrong (no "resolved", no "declined"); support decides.
            reason = support.ISSUE_DELETED if event in JIRA_DELETE_EVENTS else support.ISSUE_NOT_FOUND
            if support.set_aside(self._store, ticket.id, reason):
                log.warning(
                    "ticket.needs_support",
                    extra={"tracking_id": ticket.tracking_id, "issue": ref.key, "reason": reason, "error": str(exc)},
                )
            return
        if support.issue_readable_again(self._store, ticket):
            log.info("ticket.support_flag_cleared", extra={"tracking_id": ticket.tracking_id, "issue": ref.key})
        self._follow_severity(ticket, dest, ref, tracker, issue)
        self._follow_category(ticket, dest, issue)
        mapped = map_status(dest.tracker, issue, Status(ticket.status), self._mappings.status)
        if mapped is not None and self._store.set_status(ticket.id, mapped.status, reason=mapped.reason):
            log.info(
                "ticket.status_changed",
                extra={"tracking_id": ticket.tracking_id, "from": ticket.status, "to": mapped.status.value},
            )
        self._store.update_ticket(ticket.id, _mark_synced)

    def _follow_severity(
        self, ticket: Ticket, dest: Destination, ref: IssueRef, tracker: Tracker, issue: IssueSnapshot
    ) -> None:
        routing = self._mappings.routing
        scheme = routing.labels[dest.tracker]  # type: ignore[index]
        current = Severity(ticket.severity) if ticket.severity else None
        severity = severity_in_tracker(dest.tracker, issue, scheme, self._mappings.status, current)
        if severity is None:
            return
        rules = self._mappings.severity
        old = classification_of(ticket)
        classification = Classification(
            severity=severity,
            kind=Kind.HOTFIX if severity in rules.hotfix_severities else Kind.BUGFIX,
            po_review=bool(old and old.po_review) or severity in rules.po_review_severities,
            rules=(*(old.rules if old else ()), f"changed-in-tracker:{severity.value}"),
        )
        plan = self._planner.plan(dest, classification)
        if plan.sprint is not None and plan.sprint.id != issue.sprint_id:
            tracker.ensure_in_sprint(dest, ref, plan.sprint)
        report = report_of(ticket)
        wanted = labels_for(dest.tracker, classification, report, routing, needs_planning=plan.needs_planning)
        before = labels_for(dest.tracker, old, report, routing, needs_planning=True) if old else ()
        add = [label for label in wanted if label not in issue.labels]
        remove = [label for label in before if label not in wanted and label in issue.labels]
        if add or remove:
            tracker.update_labels(dest, ref, add=add, remove=remove)
        kept = plan if plan.sprint is not None else (plan_of(ticket) or plan)
        moved = (
            old is None or old.kind is not classification.kind or (kept.sprint and kept.sprint.id) != ticket.sprint_id
        )

        def change(session: Session, row: Ticket, now: datetime) -> None:
            row.severity, row.kind = classification.severity.value, classification.kind.value
            row.po_review, row.rules = classification.po_review, list(classification.rules)
            apply_plan(row, kept)
            if moved:
                key = f"{severity.value}:{kept.sprint.id if kept.sprint else '-'}:{now.isoformat()}"
                self._notices.plan_changed(session, row, change_key=key, now=now)

        self._store.update_ticket(ticket.id, change)
        log.info(
            "ticket.replanned",
            extra={
                "tracking_id": ticket.tracking_id,
                "severity": severity.value,
                "sprint": kept.sprint.name if kept.sprint else None,
            },
        )

    def _follow_category(self, ticket: Ticket, dest: Destination, issue: IssueSnapshot) -> None:
        """Store a category support set in the tracker as theirs: the bridge never changes it back
        (a severity re-plan leaves category labels alone). Counted, never mailed to the reporter."""
        scheme = self._mappings.routing.labels[dest.tracker]  # type: ignore[index]
        names = self._mappings.categories.names
        found = category_in_tracker(dest.tracker, issue, scheme, names, ticket.category)
        if found is None:
            return
        changed: list[str | None] = []

        def change(session: Session, row: Ticket, now: datetime) -> None:
            if row.category == found:
                return  # an earlier run already took it
            changed.append(row.category)
            row.category, row.category_rule, row.category_source = found, CHANGED_IN_TRACKER, CATEGORY_BY_SUPPORT

        self._store.update_ticket(ticket.id, change)
        if not changed:
            return
        metrics.category_change(found if found in names else metrics.OTHER)
        log.info(
            "ticket.category_changed",
            extra={
                "tracking_id": ticket.tracking_id,
                "issue": issue.key,
                "from": changed[0],
                "to": found,
                "known": found in names,
            },
        )


CHANGED_IN_TRACKER = "changed-in-tracker"
"""``Ticket.category_rule`` of a category support set in the tracker."""


def is_own(account: Account, actor_id: object, actor_username: object) -> bool:
    """Whether the bridge's own tracker account did it: by id, or by user name when the event
    named no id (older GitLab payloads). Nobody known is somebody else."""
    if actor_id:
        return str(actor_id) == account.id
    if isinstance(actor_username, str) and actor_username and account.username:
        return actor_username.casefold() == account.username.casefold()
    return False


def strip_marker(body: str, marker: str) -> tuple[str, bool]:
    """``body`` without a leading ``marker`` (case-insensitive, a whole word, a colon after it
    allowed), and whether it was there. ``#reporter: Fixed`` -> ``("Fixed", True)``."""
    text = body.strip()
    head = text[: len(marker)]
    rest = text[len(marker) :]
    if head.casefold() != marker.casefold() or (rest[:1].isalnum() or rest[:1] == "_"):
        return text, False
    return rest.lstrip().removeprefix(":").strip(), True


def _mark_synced(session: Session, ticket: Ticket, now: datetime) -> None:
    ticket.tracker_synced_at = now


class CommentRelay:
    def __init__(
        self, *, store: Store, trackers: Mapping[str, Tracker], mappings: Mappings, notices: NoticeScheduler
    ) -> None:
        self._store = store
        self._trackers = trackers
        self._mappings = mappings
        self._notices = notices

    def __call__(self, job: Job) -> None:
        assert job.subject_id is not None, "relay_comment jobs name their tracker event"
        event = self._store.tracker_event(job.subject_id)
        comment = event.payload
        ticket = self._store.job_ticket(job)
        _, _, tracker = _filed(self._store, self._trackers, ticket)
        if comment.get("internal"):
            return  # internal notes never leave the tracker
        if is_own(tracker.account(), comment.get("author_id"), comment.get("author_username")):
            return  # our own comment (a reporter's follow-up) coming back
        policy = self._mappings.status.comments.of(event.tracker)
        body, marked = strip_marker(str(comment.get("body") or ""), policy.marker)
        if policy.public == "marked" and not (marked or comment.get("shared")):
            return  # not meant for the reporter (Jira Software has no internal comments)
        if not body:
            return
        key = f"{event.tracker}:{comment.get('id')}"

        def schedule(session: Session, row: Ticket, now: datetime) -> None:
            if self._notices.comment(session, row, comment_key=key, body=body, now=now):
                log.info("comment.relayed", extra={"tracking_id": row.tracking_id, "comment": key})

        self._store.update_ticket(ticket.id, schedule)
