"""What the bridge would decide about a report, and why, without filing or writing anything.

For whoever tunes ``mappings/``: ``python -m bridge explain`` and ``POST /api/v1/admin/explain`` both
call ``explain``, which runs the filing job's own decisions (``classify``, ``categorize``, ``route``,
``labels_for`` and the ``SprintPlanner``) on a report read from plain fields, a chatbot event
(validated with the webhook's schema) or a raw email (read the way the email job reads it).

Nothing is stored and nothing is queued. Sprints come from a ``SprintSource``: ``OnlineSprints``
asks the tracker through the real adapter, behind ``ReadOnlyTracker``, which lets the planner read
sprints and their load and refuses every other call; ``NoSprints`` says there is nothing to ask
(the planner keeps its sprints in memory only, so there is no cache to read either).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, ConfigDict, StringConstraints

from bridge.adapters.trackers.base import CapacityUnit, ChangedIssues, SprintQuery, Tracker
from bridge.config import Settings
from bridge.domain import (
    Account,
    Attachment,
    Channel,
    Classification,
    Destination,
    IssueRef,
    IssueSnapshot,
    NewIssue,
    Plan,
    Report,
    Sprint,
    SprintSlot,
    SprintWindow,
)
from bridge.errors import BridgeError, PermanentError
from bridge.mappings import CategoryText, Mappings, Route, SprintPolicy
from bridge.pipeline.filing.categorize import CategoryDecision, categorize
from bridge.pipeline.filing.classify import classify
from bridge.pipeline.filing.plan import SprintPlanner
from bridge.pipeline.filing.route import CategoryMark, labels_for, route, route_matches
from bridge.pipeline.intake.chatbot import ReportCreated, RequiredText, Text, chatbot_event, normalise_locale
from bridge.pipeline.intake.email import parse as email_parse
from bridge.pipeline.intake.email.process import clean_subject, reply_tokens
from bridge.pipeline.intake.email.rules import EmailRules, locale_for, organization_for
from bridge.tracking import is_tracking_id

log = logging.getLogger(__name__)

PROBLEMS = "grouping not enabled"
"""Reports are never grouped into open problems yet: each one gets an issue of its own."""


# --- what is explained -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Intake:
    """What the intake would do with the input: open a ticket, or not (and why)."""

    state: Literal["ticket", "ignored", "rejected"] = "ticket"
    reason: str | None = None
    maybe_followup: bool = False
    """An email that may answer one of ours (reply token, ``In-Reply-To``, a tracking ID in the
    subject): the email job makes it a follow-up when it belongs to one of the sender's tickets."""


@dataclass(frozen=True, kw_only=True)
class Candidate:
    """A report as the filing job would see it, with what the intake knows besides its text."""

    report: Report
    locale: str
    recipient: str | None = None
    """The address an email was sent to (for the category's ``addresses``)."""
    source: Literal["fields", "event", "email"] = "fields"
    intake: Intake = Intake()


class ExplainFields(BaseModel):
    """A report given field by field (the admin API's body, the CLI's options), limited as the
    chatbot's report is."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: Annotated[RequiredText, StringConstraints(max_length=500)]
    description: Annotated[str, StringConstraints(max_length=50_000)] = ""
    impact: Annotated[str, StringConstraints(max_length=10_000)] | None = None
    priority: Text | None = None
    product: Text | None = None
    organization: Text | None = None
    locale: Text | None = None
    recipient: Annotated[str, StringConstraints(max_length=320)] | None = None

    def candidate(self) -> Candidate:
        return candidate_from_fields(**self.model_dump())


class NotAReport(ValueError):
    """The chatbot event is valid but not a ``report.created``."""


def candidate_from_fields(
    *,
    title: str,
    description: str = "",
    impact: str | None = None,
    priority: str | None = None,
    product: str | None = None,
    organization: str | None = None,
    locale: str | None = None,
    recipient: str | None = None,
    channel: Channel = Channel.CHATBOT,
) -> Candidate:
    report = Report(
        title=title.strip(),
        description=description.strip(),
        impact=_blank_none(impact),
        declared_priority=_blank_none(priority),
        product=_blank_none(product),
        organization=_blank_none(organization),
        channel=channel,
    )
    return Candidate(report=report, locale=normalise_locale(locale), recipient=_blank_none(recipient))


def candidate_from_event(payload: object) -> Candidate:
    """A chatbot ``report.created`` event, validated with the webhook's schema (``ValidationError``
    lists every problem; ``NotAReport`` for a follow-up)."""
    event = chatbot_event.validate_python(payload)
    if not isinstance(event, ReportCreated):
        raise NotAReport(f"a {event.type} event adds to a ticket; explain takes report.created")
    report = event.report
    return Candidate(
        report=Report(
            title=report.title,
            description=report.description,
            impact=report.impact,
            declared_priority=report.priority,
            product=report.product,
            organization=event.reporter.organization,
            environment=dict(report.environment),
            attachments=tuple(Attachment(**a.model_dump(exclude_none=True)) for a in report.attachments),
            channel=Channel.CHATBOT,
        ),
        locale=normalise_locale(event.reporter.locale),
        source="event",
    )


def candidate_from_email(raw: bytes, *, rules: EmailRules, max_attachment_bytes: int) -> Candidate:
    """A raw RFC 822 message read as the email job reads a new one: the title from the subject,
    organisation and language from the sender, the recipient for the category."""
    parsed = email_parse.parse_rfc822(raw, max_attachment_bytes=max_attachment_bytes)
    sender = (parsed.sender or "").strip().lower() or None
    body = parsed.body.strip() or parsed.full_body.strip()
    title = clean_subject(parsed.subject)
    if not title:
        first_line = next((line.strip() for line in body.splitlines() if line.strip()), "")
        title = first_line[:120] or "(no subject)"
    intake = Intake(
        maybe_followup=bool(
            reply_tokens(parsed.recipients)
            or parsed.in_reply_to
            or parsed.references
            or _tracking_id_in(parsed.subject)
        )
    )
    if parsed.automated:
        intake = Intake(state="ignored", reason=parsed.automated)
    elif sender is None:
        intake = Intake(state="rejected", reason="no sender address")
    elif not (parsed.subject.strip() or body or parsed.attachments):
        intake = Intake(state="rejected", reason="no text at all: empty subject and body, no attachments")
    report = Report(
        title=title,
        description=body or "(The email had no text.)",
        declared_priority=parsed.priority_hint or None,
        organization=organization_for(rules, sender),
        attachments=tuple(Attachment(filename=a.filename, content_type=a.content_type) for a in parsed.attachments),
        channel=Channel.EMAIL,
    )
    return Candidate(
        report=report,
        locale=locale_for(rules, sender, parsed.language),
        recipient=parsed.recipients[0] if parsed.recipients else None,
        source="email",
        intake=intake,
    )


# --- sprints ---------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SlotSeen:
    """One sprint the plan considered, with the capacity it saw."""

    slot: SprintSlot
    sprint: Sprint | None
    """None: the tracker has no such sprint."""
    load: float | None
    """The sprint's bugfix load; None when it was not needed (capacity ignored, or an earlier slot won)."""
    limit: float


@dataclass(frozen=True, kw_only=True)
class SprintDecision:
    source: Literal["online", "none"]
    """``online``: the tracker was asked; ``none``: no sprints were known (``plan`` is None)."""
    plan: Plan | None = None
    seen: tuple[SlotSeen, ...] = ()
    unit: CapacityUnit = "issues"
    ignore_capacity: bool = False
    error: str | None = None
    """Why the tracker's sprints could not be read (the filing job would retry later)."""


class SprintSource(Protocol):
    def decide(self, dest: Destination, classification: Classification) -> SprintDecision: ...


class NoSprints:
    """No tracker call and no cache to read: the sprint is not decided."""

    def decide(self, dest: Destination, classification: Classification) -> SprintDecision:
        return SprintDecision(source="none")


class ReadOnlyTracker:
    """A tracker the planner may read sprints and their load from, and nothing else: every other
    call raises, so explaining never changes the tracker. It remembers what it read."""

    def __init__(self, inner: Tracker) -> None:
        self._inner = inner
        self.name = inner.name
        self.sprint_on_create = inner.sprint_on_create
        self.search_lag_seconds = inner.search_lag_seconds
        self.window: SprintWindow | None = None
        self.loads: dict[str, float] = {}

    def sprints(self, dest: Destination, query: SprintQuery, *, today: str) -> SprintWindow:
        self.window = self._inner.sprints(dest, query, today=today)
        return self.window

    def sprint_load(self, dest: Destination, sprint: Sprint, *, label: str, unit: CapacityUnit) -> float:
        load = self._inner.sprint_load(dest, sprint, label=label, unit=unit)
        self.loads[sprint.id] = load
        return load

    def components(self, dest: Destination) -> tuple[str, ...]:
        return self._inner.components(dest)  # a read, like the sprints

    def _refuse(self, what: str) -> PermanentError:
        return PermanentError(f"explain only reads sprints; it does not {what}")

    def find_issue(self, dest: Destination, *, tracking_id: str) -> IssueRef | None:
        raise self._refuse("look for issues")

    def create_issue(self, dest: Destination, issue: NewIssue) -> IssueRef:
        raise self._refuse("create issues")

    def ensure_in_sprint(self, dest: Destination, ref: IssueRef, sprint: Sprint) -> None:
        raise self._refuse("move issues")

    def add_comment(self, dest: Destination, ref: IssueRef, body: str, *, reporter_text: str | None = None) -> None:
        raise self._refuse("comment")

    def reopen(self, dest: Destination, ref: IssueRef) -> None:
        raise self._refuse("reopen issues")

    def issue_state(self, dest: Destination, ref: IssueRef) -> IssueSnapshot:
        raise self._refuse("read issues")

    def update_labels(self, dest: Destination, ref: IssueRef, *, add: Sequence[str], remove: Sequence[str]) -> None:
        raise self._refuse("label issues")

    def upload_attachment(
        self, dest: Destination, ref: IssueRef, *, filename: str, content_type: str, content: bytes
    ) -> None:
        raise self._refuse("upload files")

    def redact_issue(self, dest: Destination, ref: IssueRef, text: str) -> None:
        raise self._refuse("redact issues")

    def account(self) -> Account:
        raise self._refuse("read the account")

    def changed_since(self, dest: Destination, since: datetime) -> ChangedIssues:
        raise self._refuse("list changes")

    def check(self, dest: Destination, query: SprintQuery, *, today: str) -> list[str]:
        raise self._refuse("check the connection")


class OnlineSprints:
    """The tracker's sprints and their load, read now through ``trackers`` (real adapters), as the
    filing job's planner reads them."""

    def __init__(
        self,
        *,
        trackers: Mapping[str, Tracker],
        mappings: Mappings,
        settings: Settings,
        clock: Callable[[], datetime],
    ) -> None:
        self._trackers = trackers
        self._mappings = mappings
        self._settings = settings
        self._clock = clock

    def decide(self, dest: Destination, classification: Classification) -> SprintDecision:
        policy = self._mappings.sprints
        placement = policy.placement[classification.severity]
        inner = self._trackers.get(dest.tracker)
        if inner is None:
            return SprintDecision(source="none", error=f"tracker {dest.tracker!r} is not configured")
        reader = ReadOnlyTracker(inner)
        labels = self._mappings.routing.labels
        planner = SprintPlanner(
            policy=policy,
            trackers={dest.tracker: reader},
            bugfix_label=lambda tracker: labels[tracker].kind.format(kind="bugfix"),  # type: ignore[index]
            timezone=self._settings.timezone,
            clock=self._clock,
        )
        try:
            plan = planner.plan(dest, classification)
        except BridgeError as exc:  # unreachable or rate-limited: the filing job would retry
            return SprintDecision(source="online", error=str(exc), unit=policy.capacity.unit)
        return SprintDecision(
            source="online",
            plan=plan,
            seen=_seen(policy, placement.sprints, reader),
            unit=policy.capacity.unit,
            ignore_capacity=placement.ignore_capacity,
            error=plan.reason if reader.window is None else None,
        )


def _seen(policy: SprintPolicy, slots: Sequence[SprintSlot], reader: ReadOnlyTracker) -> tuple[SlotSeen, ...]:
    if reader.window is None:
        return ()
    seen = []
    for slot in slots:
        sprint = reader.window.get(slot)
        load = reader.loads.get(sprint.id) if sprint is not None else None
        seen.append(SlotSeen(slot=slot, sprint=sprint, load=load, limit=policy.capacity.limit(slot)))
    return tuple(seen)


# --- the decision ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Explanation:
    candidate: Candidate
    classification: Classification | None = None
    """None when the intake would open no ticket (then nothing else is decided)."""
    category: CategoryDecision | None = None
    category_text: CategoryText | None = None
    """What reporters see for the category, in Danish and English."""
    category_mark: CategoryMark | None = None
    """How the category would be written on the issue: a label, or (Jira, with
    ``category_as_component``) the project's component of that name, else ``label``: the project's
    components are not read here, so both are given and ``labels`` holds neither."""
    route_name: str | None = None
    """The route in ``routing.yaml`` that matched, or None for the default tracker's project."""
    destination: Destination | None = None
    labels: tuple[str, ...] = ()
    jira_priority: str | None = None
    sprint: SprintDecision | None = None
    problems: str = PROBLEMS

    @property
    def rules(self) -> tuple[str, ...]:
        """Every rule that fired, in the order the filing job applies them."""
        fired: list[str] = []
        if self.classification is not None:
            fired += self.classification.rules
        if self.category is not None:
            fired.append(self.category.reason)
        if self.destination is not None:
            fired.append(f"route:{self.route_name or 'default'}({self.destination.tracker})")
        sprint = self.sprint
        if sprint is not None and sprint.plan is not None and sprint.error is None:
            placed = sprint.plan.slot.value if sprint.plan.slot else "none"
            fired.append(f"sprint:{placed}")
        return tuple(fired)


def explain(candidate: Candidate, *, mappings: Mappings, settings: Settings, sprints: SprintSource) -> Explanation:
    """What filing ``candidate`` would decide: the same calls the filing job makes, nothing stored."""
    if candidate.intake.state != "ticket":
        return Explanation(candidate=candidate)
    report = candidate.report
    classification = classify(report, mappings.severity)
    category = categorize(report, mappings.categories, recipient=candidate.recipient)
    dest = route(report, mappings.routing, settings, category=category.name)
    sprint = sprints.decide(dest, classification)
    needs_planning = sprint.plan is not None and sprint.plan.needs_planning
    labels = labels_for(dest.tracker, classification, report, mappings.routing, needs_planning=needs_planning)
    scheme = mappings.routing.labels[dest.tracker]  # type: ignore[index]
    mark = CategoryMark(label=scheme.category_label(category.name))
    if dest.tracker == "jira" and scheme.category_as_component:
        mark = CategoryMark(component=category.name, label=mark.label)  # the label if there is no component
    else:
        labels = (*labels, scheme.category_label(category.name))
    return Explanation(
        candidate=candidate,
        classification=classification,
        category=category,
        category_text=rule.text if (rule := mappings.categories.rule(category.name)) is not None else None,
        category_mark=mark,
        route_name=_route_name(report, mappings.routing.routes, category.name),
        destination=dest,
        labels=labels,
        jira_priority=mappings.routing.jira_priority[classification.severity] if dest.tracker == "jira" else None,
        sprint=sprint,
    )


def _route_name(report: Report, routes: Sequence[Route], category: str) -> str | None:
    return next((candidate.name for candidate in routes if route_matches(candidate, report, category)), None)


def _blank_none(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _tracking_id_in(subject: str) -> bool:
    return any(is_tracking_id(word.strip("[]():,.").upper()) for word in (subject or "").split())
