"""Time stamps in the formats each vendor uses on the wire, and the sprint calendar."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

SPRINT_ANCHOR = date(2025, 2, 3)
"""Monday on which "Sprint 1" starts; sprints are 14 days long, back to back."""
SPRINT_DAYS = 14


def now() -> datetime:
    """The current time, UTC, timezone-aware."""
    return datetime.now(UTC)


def gitlab_rest(dt: datetime | None) -> str | None:
    """GitLab REST API: ``2016-01-04T15:31:51.081Z``."""
    if dt is None:
        return None
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def gitlab_hook(dt: datetime | None) -> str | None:
    """GitLab webhook ``object_attributes``: ``2013-12-03T17:15:43Z``."""
    if dt is None:
        return None
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def gitlab_hook_utc(dt: datetime | None) -> str | None:
    """GitLab webhook ``changes`` and note payloads: ``2017-09-15 16:50:55 UTC``."""
    if dt is None:
        return None
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def jira(dt: datetime | None) -> str | None:
    """Jira REST v2 and webhook issue fields: ``2017-11-16T18:28:14.672+0000``."""
    if dt is None:
        return None
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}+0000"


def agile(dt: datetime | None) -> str | None:
    """Jira Software agile API: ``2015-04-11T15:22:00.000Z``."""
    if dt is None:
        return None
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def epoch_ms(dt: datetime) -> int:
    """Jira webhook ``timestamp``: epoch milliseconds."""
    return int(dt.timestamp() * 1000)


@dataclass(frozen=True)
class SprintSlot:
    """One two-week sprint of the shared calendar."""

    number: int
    start: date
    end: date
    """Last day of the sprint (inclusive), a Sunday."""


def sprint_slot(number: int) -> SprintSlot:
    """Sprint ``number`` of the calendar that starts on :data:`SPRINT_ANCHOR`."""
    start = SPRINT_ANCHOR + timedelta(days=(number - 1) * SPRINT_DAYS)
    return SprintSlot(number=number, start=start, end=start + timedelta(days=SPRINT_DAYS - 1))


def sprint_containing(day: date) -> SprintSlot:
    """The sprint whose start..end contains ``day``."""
    return sprint_slot((day - SPRINT_ANCHOR).days // SPRINT_DAYS + 1)


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def day_end(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 23, 59, tzinfo=UTC)
