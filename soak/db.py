"""Read-only queries on the bridge's database (SQLite or PostgreSQL alike), for driving and checking."""

from __future__ import annotations

import json
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
    sprint_id: str | None
    filed_at: Any


@dataclass(frozen=True)
class NotificationRow:
    id: int
    ticket_id: int
    kind: str
    status: str | None
    state: str
    message_id: str | None
    dedup_key: str
    body: str | None


@dataclass(frozen=True)
class InboundRow:
    """One stored inbound email and the soak report it came from (``X-Soak-Ref``), if found."""

    id: int
    state: str
    reason: str | None
    tracking_id: str | None
    report: int | None


@dataclass(frozen=True)
class LaneDisorder:
    """Two jobs of one lane that finished in the opposite order of their ids."""

    ticket_id: int | None
    lane: str
    older: tuple[int, str]
    """(id, kind) of the job with the smaller id, which finished later."""
    newer: tuple[int, str]
    seconds: float


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

    def ticket_jobs_open(self, tracking_id: str) -> int:
        """Jobs of the ticket that are pending or running."""
        rows = self._rows(
            "SELECT count(*) FROM jobs j JOIN tickets t ON t.id = j.ticket_id"
            " WHERE t.tracking_id = :tid AND j.state IN ('pending', 'running')",
            tid=tracking_id,
        )
        return int(rows[0][0])

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

    def tickets(self) -> list[TicketRow]:
        rows = self._rows(
            "SELECT id, tracking_id, status, channel, reporter_email, tracker, project, issue_key, sprint_id,"
            " filed_at FROM tickets"
        )
        return [TicketRow(*row) for row in rows]

    def tickets_holding_nul(self) -> dict[str, list[str]]:
        """tracking ID -> the columns of its ticket whose text holds a NUL (SQLite stores one)."""
        found: dict[str, list[str]] = defaultdict(list)
        with self.engine.connect() as conn:
            result = conn.execute(text("SELECT * FROM tickets"))
            columns = list(result.keys())
            for row in result:
                values = dict(zip(columns, row, strict=True))
                for column, value in values.items():
                    if isinstance(value, str) and "\x00" in value:
                        found[str(values["tracking_id"])].append(column)
        return dict(found)

    def inbound(self, run_id: str) -> list[InboundRow]:
        """Every stored inbound email, with the number of the soak report found in what was stored."""
        from soak.inbound import ref_number

        rows = self._rows(
            "SELECT e.id, e.state, e.reason, t.tracking_id, e.raw, e.fields FROM inbound_emails e"
            " LEFT JOIN tickets t ON t.id = e.ticket_id ORDER BY e.id"
        )
        found = []
        for inbound_id, state, reason, tracking_id, raw, fields in rows:
            stored = bytes(raw or b"") + _json_bytes(fields)
            found.append(InboundRow(int(inbound_id), str(state), reason, tracking_id, ref_number(stored, run_id)))
        return found

    def relayed_comments(self) -> dict[int, list[tuple[int, str]]]:
        """ticket id -> (job id, tracker comment id) of every ``relay_comment`` job, by job id."""
        rows = self._rows(
            "SELECT j.id, j.ticket_id, e.payload FROM jobs j JOIN tracker_events e ON e.id = j.subject_id"
            " WHERE j.kind = 'relay_comment' ORDER BY j.id"
        )
        found: dict[int, list[tuple[int, str]]] = defaultdict(list)
        for job_id, ticket_id, payload in rows:
            data = json.loads(payload) if isinstance(payload, str) else payload
            found[int(ticket_id)].append((int(job_id), str(data.get("id"))))
        return dict(found)

    def lane_disorder(self) -> list[LaneDisorder]:
        """Finished jobs whose lane's next job (by id) finished before them.

        A lane's jobs run one at a time in id order (a job waits while an older one of its ticket and
        lane is pending or running), so each finishes before the next one starts.
        """
        rows = self._rows(
            "SELECT id, kind, ticket_id, lane, finished_at FROM jobs WHERE state IN ('done', 'dead')"
            " ORDER BY ticket_id, lane, id"
        )
        found = []
        previous: tuple[Any, str, int, str, float] | None = None
        for job_id, kind, ticket_id, lane, finished_at in rows:
            finished = seconds_of(finished_at)
            if previous is not None and previous[:2] == (ticket_id, lane) and finished < previous[4]:
                found.append(
                    LaneDisorder(
                        ticket_id,
                        str(lane),
                        (previous[2], previous[3]),
                        (int(job_id), str(kind)),
                        round(previous[4] - finished, 3),
                    )
                )
            previous = (ticket_id, str(lane), int(job_id), str(kind), finished)
        return found

    def history(self) -> dict[int, list[str]]:
        """ticket id -> statuses, oldest first (what the status API's ``history`` shows)."""
        found: dict[int, list[str]] = defaultdict(list)
        for ticket_id, status in self._rows("SELECT ticket_id, status FROM status_events ORDER BY id"):
            found[int(ticket_id)].append(str(status))
        return found

    def notifications(self) -> list[NotificationRow]:
        rows = self._rows("SELECT id, ticket_id, kind, status, state, message_id, dedup_key, body FROM notifications")
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


def _json_bytes(value: Any) -> bytes:
    """A JSON column's value as text bytes (PostgreSQL gives the object, SQLite the text)."""
    if value is None:
        return b""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


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
