"""The numbers support asks for, over a window of time (``python -m bridge stats``), and the same
ticket counts for ``/metrics``.

- reports received in the window, by category x severity and by channel;
- median time to triage (received -> first ``triaged``) over the tickets first triaged in the window,
  and to resolve (received -> first ``resolved``) over those first resolved in it;
- reopen rate: tickets reopened in the window / tickets resolved in the window;
- the organisations with the most reports (never an address).

Everything but ``gather`` is pure. Every value that becomes a label is bounded: a category outside
the mapping's names counts as ``other``, severities, channels and statuses come from their enums.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bridge.adapters.store.reporting import Milestones, ReportingQueries, TicketGroup
from bridge.domain import Channel, Severity, Status

OTHER = "other"
"""A category, channel or status outside the known vocabulary."""
UNCLASSIFIED = "unclassified"
"""No severity yet: the ticket is still waiting to be filed."""

SEVERITIES: tuple[str, ...] = (*(s.value for s in Severity), UNCLASSIFIED, OTHER)
"""Every severity label, in table order."""

_DURATION = re.compile(r"^\s*(\d{1,6})\s*([mhdw])\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

GaugeKey = tuple[str, str, str, str]
"""(category, severity, channel, status)."""


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``2w``, ``90m``: a positive whole number and a unit (minutes, hours, days, weeks)."""
    match = _DURATION.match(text)
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration such as 30d, 12h, 2w or 90m")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()])


def format_duration(seconds: float) -> str:
    """``3d 4h``, ``2h 5m``, ``4m 10s``, ``12s``: the two largest units, for people."""
    total = round(seconds)
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if total >= size or (unit == "s" and not parts):
            parts.append(f"{total // size}{unit}")
            total %= size
        if len(parts) == 2:
            break
    return " ".join(parts)


# --- bounded vocabularies ----------------------------------------------------------------------------


def category_label(value: str | None, names: Iterable[str]) -> str:
    return value if value is not None and value in set(names) else OTHER


def severity_label(value: str | None) -> str:
    if value is None:
        return UNCLASSIFIED
    return value if value in {s.value for s in Severity} else OTHER


def channel_label(value: str) -> str:
    return value if value in {c.value for c in Channel} else OTHER


def status_label(value: str) -> str:
    return value if value in {s.value for s in Status} else OTHER


def ticket_counts(groups: Iterable[TicketGroup], category_names: Sequence[str]) -> dict[GaugeKey, int]:
    """Grouped ticket counts with every label bounded (groups that become the same labels are added up)."""
    counts: Counter[GaugeKey] = Counter()
    for group in groups:
        key = (
            category_label(group.category, category_names),
            severity_label(group.severity),
            channel_label(group.channel),
            status_label(group.status),
        )
        counts[key] += group.count
    return dict(counts)


def status_change_counts(changes: Mapping[str, int]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for status, count in changes.items():
        counts[status_label(status)] += count
    return dict(counts)


# --- the numbers --------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Median:
    seconds: float | None
    """None when no ticket got there in the window."""
    tickets: int


@dataclass(frozen=True, kw_only=True)
class Stats:
    since: datetime
    until: datetime
    categories: tuple[str, ...]
    """The mapping's category names, in its order (rows of the category table)."""
    by_category_severity: dict[tuple[str, str], int]
    by_channel: dict[str, int]
    triage: Median
    resolve: Median
    reopened: int
    resolved: int
    top_organizations: tuple[tuple[str, int], ...]

    @property
    def total(self) -> int:
        return sum(self.by_channel.values())

    @property
    def reopen_rate(self) -> float | None:
        return self.reopened / self.resolved if self.resolved else None


def median_after(milestones: Iterable[Milestones], field: str, *, since: datetime, until: datetime) -> Median:
    """Median seconds from receipt to the first ``field`` (``triaged`` or ``resolved``), over the tickets
    whose first ``field`` lies in the window."""
    waits: list[float] = []
    for ticket in milestones:
        reached: datetime | None = getattr(ticket, field)
        if reached is not None and since <= reached <= until:
            waits.append(max(0.0, (reached - ticket.received).total_seconds()))
    return Median(seconds=statistics.median(waits) if waits else None, tickets=len(waits))


def compute(
    *,
    since: datetime,
    until: datetime,
    groups: Iterable[TicketGroup],
    milestones: Sequence[Milestones],
    reopened: int,
    resolved: int,
    organizations: Sequence[tuple[str, int]],
    category_names: Sequence[str],
) -> Stats:
    counts = ticket_counts(groups, category_names)
    by_category_severity: Counter[tuple[str, str]] = Counter()
    by_channel: Counter[str] = Counter()
    for (category, severity, channel, _status), count in counts.items():
        by_category_severity[(category, severity)] += count
        by_channel[channel] += count
    return Stats(
        since=since,
        until=until,
        categories=tuple(dict.fromkeys([*category_names, OTHER])),
        by_category_severity=dict(by_category_severity),
        by_channel=dict(by_channel),
        triage=median_after(milestones, "triaged", since=since, until=until),
        resolve=median_after(milestones, "resolved", since=since, until=until),
        reopened=reopened,
        resolved=resolved,
        top_organizations=tuple((name, count) for name, count in organizations if "@" not in name),
    )


def gather(
    queries: ReportingQueries, *, since: datetime, until: datetime, category_names: Sequence[str], top: int
) -> Stats:
    """Read the window's numbers from the database (read-only) and compute them."""
    return compute(
        since=since,
        until=until,
        groups=queries.ticket_groups(since=since, until=until),
        milestones=queries.milestones(since=since, until=until),
        reopened=queries.tickets_reaching(Status.REOPENED, since=since, until=until),
        resolved=queries.tickets_reaching(Status.RESOLVED, since=since, until=until),
        organizations=queries.organizations(since=since, until=until, limit=top) if top > 0 else [],
        category_names=category_names,
    )


# --- output -------------------------------------------------------------------------------------------


def as_json(stats: Stats) -> dict[str, Any]:
    return {
        "since": _iso(stats.since),
        "until": _iso(stats.until),
        "reports": stats.total,
        "by_category_severity": [
            {"category": category, "severity": severity, "reports": count}
            for (category, severity), count in sorted(
                stats.by_category_severity.items(), key=lambda item: _table_order(stats, item[0])
            )
        ],
        "by_channel": {channel: stats.by_channel[channel] for channel in sorted(stats.by_channel)},
        "time_to_triage": {"median_seconds": stats.triage.seconds, "tickets": stats.triage.tickets},
        "time_to_resolve": {"median_seconds": stats.resolve.seconds, "tickets": stats.resolve.tickets},
        "reopen": {"reopened": stats.reopened, "resolved": stats.resolved, "rate": stats.reopen_rate},
        "top_organizations": [{"organization": name, "reports": count} for name, count in stats.top_organizations],
    }


def as_text(stats: Stats) -> str:
    lines = [f"reports received {_when(stats.since)} to {_when(stats.until)}: {stats.total}", ""]
    present = {severity for _, severity in stats.by_category_severity}
    severities = [s.value for s in Severity] + [s for s in (UNCLASSIFIED, OTHER) if s in present]
    categories = [c for c in stats.categories if any(key[0] == c for key in stats.by_category_severity)]
    width = max([len("CATEGORY"), *(len(c) for c in categories)])
    lines.append(f"{'CATEGORY':<{width}}  " + "  ".join(f"{s.upper():>12}" for s in severities) + f"  {'TOTAL':>6}")
    for category in categories:
        row = [stats.by_category_severity.get((category, s), 0) for s in severities]
        lines.append(f"{category:<{width}}  " + "  ".join(f"{n:>12}" for n in row) + f"  {sum(row):>6}")
    if not categories:
        lines.append("(no reports)")
    lines.append("")
    channels = ", ".join(f"{c} {n}" for c, n in sorted(stats.by_channel.items())) or "-"
    lines.append(f"by channel: {channels}")
    lines.append(f"time to triage (received -> triaged): {_median_text(stats.triage)}")
    lines.append(f"time to resolve (received -> resolved): {_median_text(stats.resolve)}")
    rate = f"{stats.reopen_rate:.1%}" if stats.reopen_rate is not None else "-"
    lines.append(f"reopen rate: {rate} ({stats.reopened} reopened / {stats.resolved} resolved)")
    lines.append("top organisations:")
    if not stats.top_organizations:
        lines.append("  -")
    name_width = max([0, *(len(name) for name, _ in stats.top_organizations)])
    for name, count in stats.top_organizations:
        lines.append(f"  {name:<{name_width}}  {count:>6}")
    return "\n".join(lines)


def _median_text(median: Median) -> str:
    if median.seconds is None:
        return "- (no tickets)"
    return f"median {format_duration(median.seconds)} over {median.tickets} ticket(s)"


def _table_order(stats: Stats, key: tuple[str, str]) -> tuple[int, int]:
    category, severity = key
    rank = stats.categories.index(category) if category in stats.categories else len(stats.categories)
    return rank, SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
