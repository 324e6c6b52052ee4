"""Read-only queries on the bridge's database (SQLite or PostgreSQL alike), for driving and checking."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text


@dataclass(frozen=True)
class TicketRow:
    id: int
    tracking_id: str
    status: str
    channel: str
    reporter_email: str
    tracker: str | None
    project: str | None
    issue_key: str | None


@dataclass(frozen=True)
class NotificationRow:
    id: int
    ticket_id: int
    kind: str
    status: str | None
    state: str
    message_id: str | None


@dataclass(frozen=True)
class JobRow:
    id: int
    kind: str
    ticket_id: int | None
    state: str
    attempts: int
    last_error: str | None
    created_at: Any
    lane: str


class BridgeDb:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(text(sql), params).all())

    def job_counts(self) -> dict[str, int]:
        return {str(state): int(n) for state, n in self._rows("SELECT state, count(*) FROM jobs GROUP BY state")}

    def filed(self) -> dict[str, tuple[str, str]]:
        """tracking ID -> (tracker, issue key) of every filed ticket."""
        rows = self._rows("SELECT tracking_id, tracker, issue_key FROM tickets WHERE issue_key IS NOT NULL")
        return {str(tid): (str(tracker), str(key)) for tid, tracker, key in rows}

    def email_tickets(self) -> dict[str, str]:
        """lower-cased sender -> tracking ID, for inbound emails that became tickets."""
        rows = self._rows(
            "SELECT e.sender, t.tracking_id FROM inbound_emails e JOIN tickets t ON t.id = e.ticket_id"
            " WHERE e.state = 'ticket'"
        )
        return {str(sender).lower(): str(tid) for sender, tid in rows}

    def inbound_emails(self) -> list[tuple[str, str, str | None, int | None]]:
        """(message key, state, sender, ticket id) of every inbound email."""
        rows = self._rows("SELECT message_key, state, sender, ticket_id FROM inbound_emails")
        return [(str(k), str(s), None if e is None else str(e), t) for k, s, e, t in rows]

    def tickets(self) -> list[TicketRow]:
        rows = self._rows(
            "SELECT id, tracking_id, status, channel, reporter_email, tracker, project, issue_key FROM tickets"
        )
        return [TicketRow(*row) for row in rows]

    def history(self) -> dict[int, list[str]]:
        """ticket id -> statuses, oldest first (what the status API's ``history`` shows)."""
        found: dict[int, list[str]] = defaultdict(list)
        for ticket_id, status in self._rows("SELECT ticket_id, status FROM status_events ORDER BY id"):
            found[int(ticket_id)].append(str(status))
        return found

    def notifications(self) -> list[NotificationRow]:
        rows = self._rows("SELECT id, ticket_id, kind, status, state, message_id FROM notifications")
        return [NotificationRow(*row) for row in rows]

    def jobs(self, *states: str) -> list[JobRow]:
        if not states:
            return []
        marks = ", ".join(f":s{i}" for i in range(len(states)))
        params = {f"s{i}": state for i, state in enumerate(states)}
        columns = "id, kind, ticket_id, state, attempts, last_error, created_at, lane"
        rows = self._rows(f"SELECT {columns} FROM jobs WHERE state IN ({marks})", **params)  # noqa: S608 - placeholders
        return [JobRow(*row) for row in rows]

    def previous_in_lane(self, job: JobRow) -> tuple[int, str, Any] | None:
        """The job just before ``job`` in its ticket's lane: (id, state, finished_at), or None."""
        rows = self._rows(
            "SELECT id, state, finished_at FROM jobs WHERE lane = :lane AND id < :id"
            " AND (ticket_id = :ticket OR (ticket_id IS NULL AND :ticket IS NULL)) ORDER BY id DESC LIMIT 1",
            lane=job.lane,
            id=job.id,
            ticket=job.ticket_id,
        )
        return (int(rows[0][0]), str(rows[0][1]), rows[0][2]) if rows else None

    def job_kinds(self) -> dict[str, int]:
        return {str(kind): int(n) for kind, n in self._rows("SELECT kind, count(*) FROM jobs GROUP BY kind")}

    def job_attempts(self) -> int:
        """Attempts summed over all jobs (more than the jobs: retries after faults and kills)."""
        return int(self._rows("SELECT coalesce(sum(attempts), 0) FROM jobs")[0][0])

    def deliveries(self) -> dict[str, int]:
        """Stored inbound deliveries by source (tracker webhooks: one row per distinct delivery)."""
        return {str(src): int(n) for src, n in self._rows("SELECT source, count(*) FROM deliveries GROUP BY source")}

    def latencies(self) -> dict[str, Any]:
        """Seconds from intake to outcome: an email's processing, and a report's filing (``triaged``)."""
        emails = [
            seconds_of(processed) - seconds_of(received)
            for received, processed in self._rows(
                "SELECT received_at, processed_at FROM inbound_emails WHERE processed_at IS NOT NULL"
            )
        ]
        filed = [
            seconds_of(at) - seconds_of(created)
            for created, at in self._rows(
                "SELECT t.created_at, e.at FROM tickets t JOIN status_events e ON e.ticket_id = t.id"
                " WHERE e.status = 'triaged'"
            )
        ]
        return {"email_processing_s": _stats(emails), "report_to_triaged_s": _stats(filed)}


def seconds_of(value: Any) -> float:
    """A timestamp column as epoch seconds (SQLite gives strings, PostgreSQL datetimes; both UTC)."""
    from datetime import UTC, datetime

    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50": round(ordered[len(ordered) // 2], 2),
        "p95": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 2),
        "max": round(ordered[-1], 2),
    }
