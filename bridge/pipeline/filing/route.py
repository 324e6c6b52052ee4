"""Report -> destination (tracker, project, board), from ``mappings/routing.yaml``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bridge.config import Settings
from bridge.domain import Classification, Destination, Report
from bridge.mappings import Route, Routing
from bridge.pipeline.filing.classify import normalise


def route(report: Report, routing: Routing, settings: Settings, *, category: str | None = None) -> Destination:
    """The first route whose conditions all match, else the default tracker's project.

    ``category`` is the report's category: a route with ``when.category`` needs it to match."""
    for candidate in routing.routes:
        if route_matches(candidate, report, category):
            return _destination(candidate.tracker, candidate.project, candidate.board_id, settings)
    return _destination(settings.trackers.default, None, None, settings)


def trackers_in_use(routing: Routing, settings: Settings) -> set[str]:
    return {settings.trackers.default, *(r.tracker for r in routing.routes)}


def destinations(routing: Routing, settings: Settings) -> list[Destination]:
    """Every project issues can be filed in: the default one and each route's, once."""
    found = [_destination(settings.trackers.default, None, None, settings)]
    found += [_destination(r.tracker, r.project, r.board_id, settings) for r in routing.routes]
    return list(dict.fromkeys(found))


def labels_for(
    tracker: str,
    classification: Classification,
    report: Report,
    routing: Routing,
    *,
    needs_planning: bool,
    category: str | None = None,
) -> tuple[str, ...]:
    """The labels of a new issue; ``category`` adds the category's label (leave it out where the
    category goes in as a Jira component, or where the labels are only being brought in line with a
    new severity: the category label is never the bridge's to change after filing)."""
    scheme = routing.labels[tracker]  # type: ignore[index]
    values = {
        "severity": classification.severity.value,
        "kind": classification.kind.value,
        "source": report.channel.value,
    }
    labels = [scheme.severity.format(**values), scheme.kind.format(**values), scheme.source.format(**values)]
    if classification.po_review:
        labels.append(scheme.po_review.format(**values))
    if needs_planning:
        labels.append(scheme.needs_planning.format(**values))
    if category is not None:
        labels.append(scheme.category_label(category))
    return tuple(dict.fromkeys(labels))


@dataclass(frozen=True, kw_only=True)
class CategoryMark:
    """How a category is written on a new issue: a label, or (Jira) a component."""

    label: str | None = None
    component: str | None = None


def category_mark(tracker: str, category: str, routing: Routing, components: Iterable[str] = ()) -> CategoryMark:
    """The project's component of the category's name (compared case-insensitively, written as the
    project spells it) when the scheme says so and ``components`` has one, else the label."""
    scheme = routing.labels[tracker]  # type: ignore[index]
    if tracker == "jira" and scheme.category_as_component:
        wanted = category.casefold()
        found = next((name for name in components if name.casefold() == wanted), None)
        if found is not None:
            return CategoryMark(component=found)
    return CategoryMark(label=scheme.category_label(category))


def route_matches(candidate: Route, report: Report, category: str | None = None) -> bool:
    """Whether every condition of the route's ``when`` holds for the report (and its category)."""
    when = candidate.when
    if when.product and not _in(report.product, when.product):
        return False
    if when.category and not _in(category, when.category):
        return False
    return not (when.organization and not _in(report.organization, when.organization))


def _in(value: str | None, options: list[str]) -> bool:
    return value is not None and normalise(value) in {normalise(o) for o in options}


def _destination(tracker: str, project: str | None, board_id: int | None, settings: Settings) -> Destination:
    if tracker == "jira":
        jira = settings.trackers.jira
        return Destination(tracker="jira", project=project or jira.project or "", board_id=board_id or jira.board_id)
    return Destination(tracker="gitlab", project=project or settings.trackers.gitlab.project or "")
