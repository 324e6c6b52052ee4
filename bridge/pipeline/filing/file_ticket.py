"""The ``file_ticket`` job: classify, categorise, route, plan, create the tracker issue once, put it in its sprint.

Each step's outcome is stored before the next starts, so a retry after a crash or
an outage continues with the same decisions instead of making new ones.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from datetime import datetime

from sqlalchemy.orm import Session
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
    Status,
)
from bridge.errors import BridgeError, OutcomeUnknown, PermanentError, RetryableError
from bridge.mappings import Mappings
from bridge.pipeline.filing.categorize import CategoryDecision, categorize
from bridge.pipeline.filing.classify import classify
from bridge.pipeline.filing.components import ProjectComponents
from bridge.pipeline.filing.plan import SprintPlanner
from bridge.pipeline.filing.route import category_mark, labels_for, route

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
    """File the ticket's issue, in steps that each store their outcome before the next:

    1. classification, category and destination (routing may depend on the category); 2. the plan
    (sprint); 3. the issue: found by its tracking ID, or created, its key stored as soon as the
    tracker answers; 4. the issue into its sprint, choosing the sprint again if the planned one has
    closed meanwhile; 5. ``filed_at`` and ``triaged``. A retry continues with the first step that
    has no stored outcome.
    """

    def __init__(
        self,
        *,
        store: Store,
        trackers: Mapping[str, Tracker],
        mappings: Mappings,
        settings: Settings,
        planner: SprintPlanner,
        clock: Callable[[], datetime],
        components: ProjectComponents | None = None,
    ) -> None:
        self._store = store
        self._trackers = trackers
        self._mappings = mappings
        self._settings = settings
        self._planner = planner
        self._now = clock
        self._components = components or ProjectComponents(
            trackers=trackers, cache_seconds=mappings.sprints.cache_seconds
        )

    def __call__(self, job: Job) -> None:
        ticket = self._store.job_ticket(job)
        if ticket.filed_at is not None:
            return  # filed by an earlier attempt that died before finishing the job
        report = report_of(ticket)

        classification, dest = classification_of(ticket), destination_of(ticket)
        if classification is None or dest is None:
            classification = classify(report, self._mappings.severity)
            category = self._categorize(ticket, report)
            dest = route(report, self._mappings.routing, self._settings, category=category.name)
            self._store.save_decision(
                ticket.id, classification, dest, category=category.name, category_rule=category.rule
            )
            ticket.category, ticket.category_rule = category.name, category.rule
        elif ticket.category is None and ticket.issue_key is None:
            # Decided before the bridge categorised, not filed yet: the issue can still carry one.
            category = self._categorize(ticket, report)
            self._store.save_category(ticket.id, category.name, category.rule)
            ticket.category, ticket.category_rule = category.name, category.rule
        tracker = tracker_for(self._trackers, dest)

        plan = plan_of(ticket)
        if plan is None:
            plan = self._planner.plan(dest, classification)
            self._store.save_plan(ticket.id, plan)

        ref, how = issue_ref_of(ticket), "stored"
        if ref is None:
            ref, how = self._find_or_create(ticket, tracker, dest, report, classification, plan)
        if how != "created" or not tracker.sprint_on_create:
            plan = self._place(ticket, tracker, dest, ref, classification, plan)
        self._store.update_ticket(ticket.id, self._finish)
        log.info(
            "ticket.filed",
            extra={
                "tracking_id": ticket.tracking_id,
                "tracker": dest.tracker,
                "issue": ref.key,
                "severity": classification.severity.value,
                "sprint": plan.sprint.name if plan.sprint else None,
                "issue_from": how,
                "adopted": how == "adopted",
            },
        )

    def _find_or_create(
        self,
        ticket: Ticket,
        tracker: Tracker,
        dest: Destination,
        report: Report,
        classification: Classification,
        plan: Plan,
    ) -> tuple[IssueRef, str]:
        """The issue for the ticket, found (``adopted``) or made (``created``); its key is stored."""
        existing = idempotent_read(tracker.find_issue)(dest, tracking_id=ticket.tracking_id)
        if existing is not None:
            # A create that timed out had in fact succeeded: adopt it.
            self._store.update_ticket(ticket.id, _issue_change(existing))
            return existing, "adopted"
        attempted = ticket.create_attempted_at
        if attempted is not None:
            # An earlier create may have succeeded without our hearing of it, and the tracker's
            # search may not show new issues yet (Jira's is eventually consistent): wait until it
            # would, then search again, rather than create a second issue.
            waited = (self._now() - attempted).total_seconds()
            if waited < tracker.search_lag_seconds:
                raise RetryableError(
                    f"an earlier create of {ticket.tracking_id} may have succeeded; searching again once "
                    f"{dest.tracker}'s search shows issues {tracker.search_lag_seconds:g} s old",
                    retry_after=tracker.search_lag_seconds - waited,
                )
        self._store.update_ticket(ticket.id, _create_attempt(self._now()))
        try:
            ref = self._create(tracker, dest, self._new_issue(ticket, report, classification, plan, dest))
        except OutcomeUnknown:
            raise  # the attempt stays recorded: the retry looks before it creates
        except BridgeError:
            self._store.update_ticket(ticket.id, _create_attempt(None))  # refused: nothing was made
            raise
        self._store.update_ticket(ticket.id, _issue_change(ref))
        self._planner.record_filed(dest, plan, classification)
        return ref, "created"

    def _create(self, tracker: Tracker, dest: Destination, issue: NewIssue) -> IssueRef:
        """Create the issue; when Jira refuses it with the category's component (deleted since the
        components were read, or not on the project's create screen), create it with the category's
        label instead. A refused create made nothing, so trying again at once is safe."""
        try:
            return tracker.create_issue(dest, issue)
        except PermanentError as exc:
            if not issue.components or issue.category is None:
                raise
            error = str(exc)
        log.warning(
            "category.component_refused", extra={"tracker": dest.tracker, "project": dest.project, "error": error}
        )
        self._components.forget(dest)
        scheme = self._mappings.routing.labels[dest.tracker]  # type: ignore[index]
        labels = tuple(dict.fromkeys((*issue.labels, scheme.category_label(issue.category))))
        return tracker.create_issue(dest, dataclasses.replace(issue, components=(), labels=labels))

    def _place(
        self,
        ticket: Ticket,
        tracker: Tracker,
        dest: Destination,
        ref: IssueRef,
        classification: Classification,
        plan: Plan,
    ) -> Plan:
        """Put the issue into the plan's sprint (idempotent); the plan it ended up in.

        A sprint the tracker refuses (Jira: 400 for a sprint closed since it was planned, 404 for a
        deleted one) is chosen again from fresh sprints; when that gives no other sprint, the issue
        needs planning.
        """
        if plan.sprint is None:
            return plan
        try:
            tracker.ensure_in_sprint(dest, ref, plan.sprint)
            return plan
        except PermanentError as exc:  # closed (400) or deleted (404) since it was planned
            refused, error = plan.sprint, str(exc)
        log.warning(
            "plan.sprint_refused",
            extra={"tracking_id": ticket.tracking_id, "tracker": dest.tracker, "sprint": refused.name, "error": error},
        )
        self._planner.forget(dest)
        replanned = self._planner.plan(dest, classification)
        if replanned.sprint is None or replanned.sprint.id == refused.id:
            replanned = Plan(sprint=None, slot=None, reason=f"{refused.name} refused the issue: {error}")
        # Stored first: a retry after a failure below continues with this plan.
        self._store.save_plan(ticket.id, replanned)
        if replanned.sprint is not None:
            tracker.ensure_in_sprint(dest, ref, replanned.sprint)
        else:
            label = self._mappings.routing.labels[dest.tracker].needs_planning  # type: ignore[index]
            tracker.update_labels(dest, ref, add=[label], remove=[])
        log.info(
            "plan.replanned",
            extra={
                "tracking_id": ticket.tracking_id,
                "from": refused.name,
                "to": replanned.sprint.name if replanned.sprint else None,
            },
        )
        return replanned

    def _categorize(self, ticket: Ticket, report: Report) -> CategoryDecision:
        return categorize(report, self._mappings.categories, recipient=ticket.recipient)

    def _finish(self, session: Session, ticket: Ticket, now: datetime) -> None:
        ticket.filed_at = now
        if ticket.status == Status.RECEIVED.value:
            self._store.add_status(session, ticket, Status.TRIAGED, now)

    def _new_issue(
        self, ticket: Ticket, report: Report, classification: Classification, plan: Plan, dest: Destination
    ) -> NewIssue:
        routing = self._mappings.routing
        labels = labels_for(dest.tracker, classification, report, routing, needs_planning=plan.needs_planning)
        components: tuple[str, ...] = ()
        if ticket.category is not None:
            scheme = routing.labels[dest.tracker]  # type: ignore[index]
            known = self._components.of(dest) if dest.tracker == "jira" and scheme.category_as_component else ()
            mark = category_mark(dest.tracker, ticket.category, routing, known)
            labels = (*labels, mark.label) if mark.label else labels
            components = (mark.component,) if mark.component else ()
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
            category=ticket.category,
            category_rule=ticket.category_rule,
            components=components,
        )


def issue_ref_of(ticket: Ticket) -> IssueRef | None:
    return IssueRef(key=ticket.issue_key, url=ticket.issue_url) if ticket.issue_key else None


def _issue_change(ref: IssueRef) -> Callable[[Session, Ticket, datetime], None]:
    def change(session: Session, ticket: Ticket, now: datetime) -> None:
        ticket.issue_key, ticket.issue_url = ref.key, ref.url

    return change


def _create_attempt(at: datetime | None) -> Callable[[Session, Ticket, datetime], None]:
    def change(session: Session, ticket: Ticket, now: datetime) -> None:
        ticket.create_attempted_at = at

    return change
