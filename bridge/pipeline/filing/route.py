"""Report -> destination (tracker, project, board), from ``mappings/routing.yaml``."""

from __future__ import annotations

from bridge.config import Settings
from bridge.domain import Classification, Destination, Report
from bridge.mappings import Route, Routing
from bridge.pipeline.filing.classify import normalise


def route(report: Report, routing: Routing, settings: Settings) -> Destination:
    """The first route whose conditions all match, else the default tracker's project."""
    for candidate in routing.routes:
        if _matches(candidate, report):
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
    tracker: str, classification: Classification, report: Report, routing: Routing, *, needs_planning: bool
) -> tuple[str, ...]:
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
    return tuple(dict.fromkeys(labels))


def _matches(candidate: Route, report: Report) -> bool:
    when = candidate.when
    if when.product and not _in(report.product, when.product):
        return False
    return not (when.organization and not _in(report.organization, when.organization))


def _in(value: str | None, options: list[str]) -> bool:
    return value is not None and normalise(value) in {normalise(o) for o in options}


def _destination(tracker: str, project: str | None, board_id: int | None, settings: Settings) -> Destination:
    if tracker == "jira":
        jira = settings.trackers.jira
        return Destination(tracker="jira", project=project or jira.project or "", board_id=board_id or jira.board_id)
    return Destination(tracker="gitlab", project=project or settings.trackers.gitlab.project or "")
