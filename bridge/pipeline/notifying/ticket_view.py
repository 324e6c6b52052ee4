"""The reporter-facing view of a ticket: the one place that decides what a reporter may see.

The status API, the status page and the chatbot callback all build their answers from
``TicketView``, so they agree on the status text, the plan and the history, and none of
them can reach tracker internals (issue keys and URLs, projects, internal comments, the
reporter's email): the view simply does not carry them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from bridge.adapters.store.models import StatusEvent, Ticket
from bridge.domain import Kind, SprintSlot, Status
from bridge.mappings import CategoryRules
from bridge.wording import StatusTexts

_E = TypeVar("_E", Kind, SprintSlot)

FALLBACK_LOCALE = "en"
DEFAULT_DECLINE_REASON = "declined"

# Short status names for lists and timelines (the status texts are whole sentences).
STATUS_NAMES: dict[str, dict[Status, str]] = {
    "da": {
        Status.RECEIVED: "Modtaget",
        Status.TRIAGED: "Planlagt",
        Status.IN_PROGRESS: "Under udvikling",
        Status.IN_QA: "Testes",
        Status.RESOLVED: "Rettet",
        Status.DECLINED: "Lukket uden rettelse",
        Status.REOPENED: "Genåbnet",
    },
    "en": {
        Status.RECEIVED: "Received",
        Status.TRIAGED: "Planned",
        Status.IN_PROGRESS: "In progress",
        Status.IN_QA: "Being tested",
        Status.RESOLVED: "Fixed",
        Status.DECLINED: "Closed without a fix",
        Status.REOPENED: "Reopened",
    },
}


def iso_utc(moment: datetime) -> str:
    """``2026-11-25T10:15:00Z``: UTC, second precision (CONTRACT section 3)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, kw_only=True)
class PlannedFor:
    """The sprint the fix is planned for; dates may be unknown (a milestone without dates)."""

    name: str
    start_date: date | None
    due_date: date | None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "start_date": self.start_date.isoformat() if self.start_date else None,
            "due_date": self.due_date.isoformat() if self.due_date else None,
        }


@dataclass(frozen=True, kw_only=True)
class CategoryView:
    """The ticket's category (CONTRACT section 3): its name and what reporters read for it."""

    name: str
    text: str
    """In the ticket's language; a category support wrote in the tracker that ``categories.yaml``
    does not have shows its name as written."""

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "text": self.text}


@dataclass(frozen=True, kw_only=True)
class HistoryEntry:
    status: Status
    name: str
    """The status's short name in the reporter's language."""
    at: datetime

    def as_json(self) -> dict[str, Any]:
        return {"status": self.status.value, "at": iso_utc(self.at)}


@dataclass(frozen=True, kw_only=True)
class TicketView:
    tracking_id: str
    title: str
    """Customer text: escape it wherever it is shown."""
    status: Status
    status_name: str
    status_text: str
    locale: str
    severity: str | None
    kind: Kind | None
    kind_name: str | None
    """The kind in the reporter's language (``fejlrettelse``)."""
    planned_for: PlannedFor | None
    created_at: datetime
    updated_at: datetime
    history: tuple[HistoryEntry, ...]
    needs_support: bool = False
    """Set aside for support: the tracker issue can no longer be followed (never why, never the issue)."""
    category: CategoryView | None = None
    """None until the filing job has decided it (and for tickets filed before categories existed)."""

    def as_json(self, *, with_history: bool = True) -> dict[str, Any]:
        """The CONTRACT section 3 shape, keys in the CONTRACT's order; added fields after them."""
        body: dict[str, Any] = {
            "tracking_id": self.tracking_id,
            "status": self.status.value,
            "status_text": self.status_text,
            "locale": self.locale,
            "severity": self.severity,
            "kind": self.kind.value if self.kind else None,
            "planned_for": self.planned_for.as_json() if self.planned_for else None,
            "created_at": iso_utc(self.created_at),
            "updated_at": iso_utc(self.updated_at),
        }
        if with_history:
            body["history"] = [entry.as_json() for entry in self.history]
        body["needs_support"] = self.needs_support
        body["category"] = self.category.as_json() if self.category else None
        return body


def locale_of(ticket: Ticket, wording: Mapping[str, StatusTexts]) -> str:
    return ticket.locale if ticket.locale in wording else FALLBACK_LOCALE


def planned_for(ticket: Ticket) -> PlannedFor | None:
    """The sprint, or None while the ticket is not planned yet or could not be planned."""
    if not ticket.planned or not ticket.sprint_name:
        return None
    return PlannedFor(name=ticket.sprint_name, start_date=ticket.sprint_start, due_date=ticket.sprint_due)


def status_text(ticket: Ticket, status: Status, wording: Mapping[str, StatusTexts]) -> str:
    """The sentence for ``status`` in the reporter's language, with the ticket's plan and reason."""
    texts = wording[locale_of(ticket, wording)]
    slot = _enum(SprintSlot, ticket.sprint_slot) if planned_for(ticket) else None
    reason = ticket.status_reason
    if status is Status.DECLINED and not reason:
        reason = DEFAULT_DECLINE_REASON  # never "Closed without a fix: " with nothing after it
    return texts.text(status, kind=_enum(Kind, ticket.kind), slot=slot, sprint=ticket.sprint_name, reason=reason)


def status_name(status: Status, locale: str) -> str:
    return STATUS_NAMES.get(locale, STATUS_NAMES[FALLBACK_LOCALE])[status]


def category_view(ticket: Ticket, locale: str, categories: CategoryRules) -> CategoryView | None:
    if not ticket.category:
        return None
    rule = categories.rule(ticket.category)
    text = getattr(rule.text, locale, rule.text.en) if rule is not None else ticket.category
    return CategoryView(name=ticket.category, text=text)


def ticket_view(
    ticket: Ticket,
    history: Iterable[StatusEvent],
    wording: Mapping[str, StatusTexts],
    *,
    categories: CategoryRules,
) -> TicketView:
    locale = locale_of(ticket, wording)
    status = Status(ticket.status)
    kind = _enum(Kind, ticket.kind)
    entries = tuple(
        HistoryEntry(status=Status(event.status), name=status_name(Status(event.status), locale), at=event.at)
        for event in history  # oldest first: the store's order
    )
    return TicketView(
        tracking_id=ticket.tracking_id,
        title=ticket.title,
        status=status,
        status_name=status_name(status, locale),
        status_text=status_text(ticket, status, wording),
        locale=locale,
        severity=ticket.severity,
        kind=kind,
        kind_name=wording[locale].kinds.get(kind) if kind else None,
        planned_for=planned_for(ticket),
        created_at=ticket.created_at,
        updated_at=ticket.updated_at,
        history=entries,
        needs_support=ticket.support_reason is not None,
        category=category_view(ticket, locale, categories),
    )


def _enum(cls: type[_E], value: str | None) -> _E | None:
    try:
        return cls(value) if value else None
    except ValueError:
        return None
