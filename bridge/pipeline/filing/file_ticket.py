"""The ``file_ticket`` job: classify, route, plan, and create the tracker issue once.

Each step's outcome is stored before the next starts, so a retry after a crash or
an outage continues with the same decisions instead of making new ones.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from tenacity import retry, retry_if_exception, stop_after_attempt, wait_random_exponential

from bridge.adapters.store.models import Job, Ticket
from bridge.adapters.store.repository import Store
from bridge.adapters.trackers.base import Tracker
from bridge.config import Settings
from bridge.domain import (
    Attachment,
    Channel,
    Classification,
    Destination,
    IssueRef,
    Kind,
    NewIssue,
    Plan,
    Report,
    Severity,
    Sprint,
    SprintSlot,
)
from bridge.errors import PermanentError, RetryableError
from bridge.mappings import Mappings
from bridge.pipeline.filing.classify import classify
from bridge.pipeline.filing.plan import SprintPlanner
from bridge.pipeline.filing.route import labels_for, route

log = logging.getLogger(__name__)


def _brief_outage(exc: BaseException) -> bool:
    return isinstance(exc, RetryableError) and (exc.retry_after or 0) <= 2


# Short in-call retries for idempotent reads only; long outages go back to the queue.
idempotent_read = retry(
    retry=retry_if_exception(_brief_outage),
    stop=stop_after_attempt(3),
    wait=wait_random_exponential(multiplier=0.2, max=2),
    reraise=True,
)


def report_of(ticket: Ticket) -> Report:
    return Report(
        title=ticket.title,
        description=ticket.description,
        impact=ticket.impact,
        declared_priority=ticket.declared_priority,
        product=ticket.product,
        organization=ticket.organization,
        environment=dict(ticket.environment or {}),
        attachments=tuple(Attachment(**a) for a in ticket.attachments or []),
        channel=Channel(ticket.channel),
    )


def classification_of(ticket: Ticket) -> Classification | None:
    if ticket.severity is None or ticket.kind is None:
        return None
    return Classification(
        severity=Severity(ticket.severity),
        kind=Kind(ticket.kind),
        po_review=bool(ticket.po_review),
        rules=tuple(ticket.rules or ()),
    )


def destination_of(ticket: Ticket) -> Destination | None:
    if ticket.tracker is None or ticket.project is None:
        return None
    return Destination(tracker=ticket.tracker, project=ticket.project, board_id=ticket.board_id)


def plan_of(ticket: Ticket) -> Plan | None:
    if not ticket.planned:
        return None
    sprint = None
    if ticket.sprint_id is not None:
        sprint = Sprint(
            id=ticket.sprint_id,
            name=ticket.sprint_name or "",
            start_date=ticket.sprint_start,
            due_date=ticket.sprint_due,
        )
    slot = SprintSlot(ticket.sprint_slot) if ticket.sprint_slot else None
    return Plan(sprint=sprint, slot=slot, reason="as planned before")


def tracker_for(trackers: Mapping[str, Tracker], dest: Destination) -> Tracker:
    tracker = trackers.get(dest.tracker)
    if tracker is None:
        raise PermanentError(f"tracker {dest.tracker!r} is not configured")
    return tracker


class TicketFiler:
    def __init__(
        self,
        *,
        store: Store,
        trackers: Mapping[str, Tracker],
        mappings: Mappings,
        settings: Settings,
        planner: SprintPlanner,
    ) -> None:
        self._store = store
        self._trackers = trackers
        self._mappings = mappings
        self._settings = settings
        self._planner = planner

    def __call__(self, job: Job) -> None:
        ticket = self._store.job_ticket(job)
        if ticket.issue_key:
            return  # filed by an earlier attempt that died before finishing the job
        report = report_of(ticket)

        classification, dest = classification_of(ticket), destination_of(ticket)
        if classification is None or dest is None:
            classification = classify(report, self._mappings.severity)
            dest = route(report, self._mappings.routing, self._settings)
            self._store.save_decision(ticket.id, classification, dest)
        tracker = tracker_for(self._trackers, dest)

        existing = idempotent_read(tracker.find_issue)(dest, tracking_id=ticket.tracking_id)
        plan = plan_of(ticket)
        if plan is None:
            plan = self._planner.plan(dest, classification)
            self._store.save_plan(ticket.id, plan)

        if existing is not None:
            # A create that timed out had in fact succeeded: adopt it, finish its planning.
            if plan.sprint is not None:
                tracker.ensure_in_sprint(dest, existing, plan.sprint)
            ref = existing
        else:
            ref = tracker.create_issue(dest, self._new_issue(ticket, report, classification, plan, dest))
            self._planner.record_filed(dest, plan, classification)
        self._store.save_issue(ticket.id, ref)
        log.info(
            "ticket.filed",
            extra={
                "tracking_id": ticket.tracking_id,
                "tracker": dest.tracker,
                "issue": ref.key,
                "severity": classification.severity.value,
                "sprint": plan.sprint.name if plan.sprint else None,
                "adopted": existing is not None,
            },
        )

    def _new_issue(
        self, ticket: Ticket, report: Report, classification: Classification, plan: Plan, dest: Destination
    ) -> NewIssue:
        routing = self._mappings.routing
        labels = labels_for(dest.tracker, classification, report, routing, needs_planning=plan.needs_planning)
        private = self._settings.privacy.reporter_email_in_tracker
        return NewIssue(
            tracking_id=ticket.tracking_id,
            report=report,
            classification=classification,
            labels=labels,
            priority=routing.jira_priority[classification.severity] if dest.tracker == "jira" else None,
            sprint=plan.sprint,
            reporter_name=ticket.reporter_name,
            reporter_email=ticket.reporter_email if private else None,
        )


def issue_ref_of(ticket: Ticket) -> IssueRef | None:
    return IssueRef(key=ticket.issue_key, url=ticket.issue_url) if ticket.issue_key else None
