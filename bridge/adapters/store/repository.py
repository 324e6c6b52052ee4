"""Every read and write the bridge makes to its database, one transaction per method."""

from __future__ import annotations

import hashlib
import logging
import secrets
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, Engine, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bridge.adapters.store.models import (
    Delivery,
    Erasure,
    Followup,
    Job,
    Notification,
    StatusEvent,
    SyncCursor,
    Ticket,
    TrackerEvent,
)
from bridge.domain import Classification, Destination, Plan, Status
from bridge.logs import request_id
from bridge.metrics import QueueStats

log = logging.getLogger(__name__)

PENDING, RUNNING, DONE, DEAD = "pending", "running", "done", "dead"
_IN_CHUNK = 500
"""Ids per ``IN (...)``: well inside every database's limit on bound parameters."""
TRACKER_LANE, NOTIFY_LANE = "tracker", "notify"

StatusHook = Callable[[Session, Ticket, StatusEvent, datetime], None]
Enqueue = Callable[[int, float], None]


@dataclass(frozen=True, kw_only=True)
class Accepted:
    """The outcome of storing an inbound delivery."""

    response: dict[str, Any]
    duplicate: bool


class DuplicateDelivery(Exception):
    """Raised inside a transaction when the delivery key was seen before."""


class LeaseLost(Exception):
    """The job is no longer held under this claim: its lease ran out and it was taken back (or
    another worker runs it now). The stale run must record nothing about the job."""


class KeyReused(Exception):
    """A delivery key or event id seen before, now on another kind of event or from another sender."""


def event_source(source: str) -> str:
    """``Delivery.source`` of the rows recording event ids beside delivery keys (``chatbot:event``)."""
    return f"{source}:event"


class Store:
    """The database. ``clock`` stamps what happened (``created_at``, ...). With ``database_time`` on
    PostgreSQL, when jobs are due and who holds them (due times, claims, leases, the sweep) is decided
    by the database's clock instead: web and worker processes on several hosts then agree on "due" to
    the millisecond however far their own clocks drift apart. Tests leave it off and move ``clock``.
    (SQLite lives on one host: every process reads the same clock.)"""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime], database_time: bool = False) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._now = clock
        self._database_time = database_time and engine.dialect.name == "postgresql"
        self.enqueue: Enqueue | None = None
        """Set by the composition root: jobs created in a transaction are queued after its commit."""
        self.on_status: StatusHook | None = None
        """Called inside the transaction that records a status, e.g. to schedule the reporter's email."""

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            created: list[tuple[int, float]] = session.info.setdefault("new_jobs", [])
            session.info["database_time"] = self._database_time
            yield session
        # Committed: only now may a worker see the jobs. If queuing fails the sweep finds them.
        for job_id, delay in created:
            self._enqueue_safely(job_id, delay)

    def _enqueue_safely(self, job_id: int, delay: float) -> None:
        if self.enqueue is None:
            return
        try:
            self.enqueue(job_id, delay)
        except Exception:
            log.warning("queue.enqueue_failed", extra={"job_id": job_id}, exc_info=True)

    # --- intake -------------------------------------------------------------------------

    def accept(
        self,
        *,
        source: str,
        delivery_key: str,
        event_type: str,
        build: Callable[[Session, datetime], tuple[int | None, dict[str, Any]]],
        event_key: str | None = None,
        same_sender: Callable[[Delivery], bool] | None = None,
    ) -> Accepted:
        """Record a delivery exactly once and, in the same transaction, what it creates.

        ``build`` adds the rows the delivery creates and returns (ticket id, response).
        ``event_key``, the event's own id, is recorded beside ``delivery_key`` (which may be a
        sender's Idempotency-Key): a repeat of either is the same delivery, so a new key on an old
        event creates nothing. A repeat returns the first response and creates nothing, but only to
        the same kind of event (``event_type``) from the same sender (``same_sender``, given the
        first delivery); any other reuse of a key raises ``KeyReused`` and stores nothing.
        """
        now = self._now()
        delivery_key = bounded_key(delivery_key)
        event_key = bounded_key(event_key) if event_key is not None else None
        try:
            with self.session() as session:
                delivery = Delivery(source=source, delivery_key=delivery_key, event_type=event_type, received_at=now)
                session.add(delivery)
                event = None
                if event_key is not None:
                    event = Delivery(
                        source=event_source(source), delivery_key=event_key, event_type=event_type, received_at=now
                    )
                    session.add(event)
                session.flush()  # the unique keys are checked here, before any other row
                ticket_id, response = build(session, now)
                for row in (delivery, event):
                    if row is not None:
                        row.ticket_id, row.response = ticket_id, response
                session.flush()
                return Accepted(response=response, duplicate=False)
        except IntegrityError:
            previous = self.find_delivery(source, delivery_key, event_key=event_key)
            if previous is None:  # not a duplicate key: a real integrity problem
                raise
            if previous.event_type != event_type or (same_sender is not None and not same_sender(previous)):
                raise KeyReused(source) from None
            return Accepted(response=previous.response or {}, duplicate=True)

    def find_delivery(self, source: str, delivery_key: str, *, event_key: str | None = None) -> Delivery | None:
        """The earlier delivery with this key, or (given ``event_key``) of this event."""
        wanted = [(source, bounded_key(delivery_key))]
        if event_key is not None:
            wanted.append((event_source(source), bounded_key(event_key)))
        with self.session() as session:
            for where, key in wanted:
                found = session.scalar(select(Delivery).where(Delivery.source == where, Delivery.delivery_key == key))
                if found is not None:
                    return found
            return None

    def _due_now_sql(self) -> Any:
        """The same "now" inside a statement (no extra round trip): a SQL expression or a value."""
        return _DATABASE_NOW if self._database_time else self._now()

    @staticmethod
    def new_job(
        session: Session,
        *,
        kind: str,
        ticket_id: int | None,
        now: datetime,
        subject_id: int | None = None,
        lane: str = TRACKER_LANE,
        delay: float = 0,
    ) -> Job:
        """Add a job to the transaction; it is queued (after ``delay`` seconds) once committed.

        Jobs of one lane run in id order (``blocking_job``), so ids must become visible in the
        order they are drawn: see ``lock_lane``.
        """
        lock_lane(session, ticket_id=ticket_id, lane=lane)
        due = due_now(session, fallback=now) + timedelta(seconds=delay)
        job = Job(
            kind=kind,
            lane=lane,
            ticket_id=ticket_id,
            subject_id=subject_id,
            state=PENDING,
            attempts=0,
            next_attempt_at=due,
            retry_from=due,
            created_at=now,
            updated_at=now,
            request_id=request_id.get(),  # the request or job run creating it, followed into the worker's logs
        )
        session.add(job)
        session.flush()
        session.info.setdefault("new_jobs", []).append((job.id, delay))
        return job

    def add_status(self, session: Session, ticket: Ticket, status: Status, now: datetime) -> StatusEvent:
        ticket.status = status.value
        ticket.updated_at = now
        event = StatusEvent(ticket_id=ticket.id, status=status.value, at=now)
        session.add(event)
        session.flush()
        if self.on_status is not None:
            self.on_status(session, ticket, event, now)
        return event

    # --- tickets --------------------------------------------------------------------------

    def ticket(self, ticket_id: int) -> Ticket:
        with self.session() as session:
            ticket = session.get(Ticket, ticket_id)
            if ticket is None:
                raise LookupError(f"ticket {ticket_id} does not exist")
            return ticket

    def job_ticket(self, job: Job) -> Ticket:
        """The ticket a job works on; LookupError (a dead letter) for a job that has none."""
        if job.ticket_id is None:
            raise LookupError(f"job {job.id} ({job.kind}) is not about a ticket")
        return self.ticket(job.ticket_id)

    def ticket_by_tracking_id(self, tracking_id: str) -> Ticket | None:
        with self.session() as session:
            return session.scalar(select(Ticket).where(Ticket.tracking_id == tracking_id))

    def tickets_by_email(self, email: str, *, limit: int = 100) -> Sequence[Ticket]:
        with self.session() as session:
            return session.scalars(
                select(Ticket)
                .where(func.lower(Ticket.reporter_email) == email.lower())
                .order_by(Ticket.created_at.desc(), Ticket.id.desc())
                .limit(limit)
            ).all()

    def history(self, ticket_id: int) -> Sequence[StatusEvent]:
        with self.session() as session:
            return session.scalars(
                select(StatusEvent).where(StatusEvent.ticket_id == ticket_id).order_by(StatusEvent.id)
            ).all()

    def followup(self, followup_id: int) -> Followup:
        with self.session() as session:
            row = session.get(Followup, followup_id)
            if row is None:
                raise LookupError(f"follow-up {followup_id} does not exist")
            return row

    def mark_commented(self, followup_id: int) -> None:
        with self.session() as session:
            row = session.get(Followup, followup_id)
            if row is not None and row.commented_at is None:
                row.commented_at = self._now()

    def save_decision(
        self,
        ticket_id: int,
        classification: Classification,
        dest: Destination,
        *,
        category: str | None = None,
        category_rule: str | None = None,
    ) -> None:
        with self.session() as session:
            ticket = _get(session, ticket_id)
            ticket.severity = classification.severity.value
            ticket.kind = classification.kind.value
            ticket.po_review = classification.po_review
            ticket.rules = list(classification.rules)
            ticket.tracker, ticket.project, ticket.board_id = dest.tracker, dest.project, dest.board_id
            if category is not None:
                _decide_category(ticket, category, category_rule)
            ticket.updated_at = self._now()

    def save_category(self, ticket_id: int, category: str, rule: str | None) -> None:
        """The bridge's category for a ticket that has none yet; a category already there (support's
        above all) stays."""
        with self.session() as session:
            ticket = _get(session, ticket_id)
            if ticket.category is None:
                _decide_category(ticket, category, rule)
                ticket.updated_at = self._now()

    def save_plan(self, ticket_id: int, plan: Plan) -> None:
        with self.session() as session:
            ticket = _get(session, ticket_id)
            apply_plan(ticket, plan)
            ticket.updated_at = self._now()

    def set_status(self, ticket_id: int, status: Status, *, reason: str | None = None) -> bool:
        """Move the ticket to ``status`` (with the decline reason); False if it already was there."""
        with self.session() as session:
            ticket = _get(session, ticket_id)
            reason = reason if status is Status.DECLINED else None
            if ticket.status == status.value and ticket.status_reason == reason:
                return False
            now = self._now()
            ticket.status_reason = reason
            if status in (Status.RESOLVED, Status.DECLINED):
                ticket.resolved_at = now
            self.add_status(session, ticket, status, now)
            return True

    def tracker_event(self, event_id: int) -> TrackerEvent:
        with self.session() as session:
            event = session.get(TrackerEvent, event_id)
            if event is None:
                raise LookupError(f"tracker event {event_id} does not exist")
            return event

    def update_ticket(self, ticket_id: int, change: Callable[[Session, Ticket, datetime], None]) -> None:
        """Apply ``change`` to the ticket in one transaction (for multi-field pipeline updates)."""
        with self.session() as session:
            ticket = _get(session, ticket_id)
            change(session, ticket, self._now())
            ticket.updated_at = self._now()

    # --- jobs -----------------------------------------------------------------------------

    def claim(self, job_id: int, *, lease: timedelta) -> Job | None:
        """Atomically take a due job (or one whose worker died) for this worker, under a fresh
        ``claim_token`` (on the returned job) that renewals and the outcome must show."""
        now, due_clock = self._now(), self._due_now_sql()
        with self.session() as session:
            claimed = session.execute(
                update(Job)
                .where(
                    Job.id == job_id,
                    or_(
                        and_(Job.state == PENDING, Job.next_attempt_at <= due_clock),
                        and_(Job.state == RUNNING, Job.lease_until < due_clock),
                    ),
                )
                .values(
                    state=RUNNING,
                    lease_until=due_clock + lease,
                    claim_token=secrets.token_hex(16),
                    attempts=Job.attempts + 1,
                    updated_at=now,
                )
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return None
            return session.get(Job, job_id)

    def renew_leases(self, held: Mapping[int, str], *, lease: timedelta) -> set[int]:
        """Extend the leases of the jobs a worker process runs (job id -> claim token), in one
        UPDATE; returns the ids renewed. A job missing from the answer is no longer held under that
        token: its lease ran out and it was taken back, or it has ended."""
        if not held:
            return set()
        due_clock = self._due_now_sql()
        with self.session() as session:
            renewed = session.execute(
                update(Job)
                # Tokens are unique, so "id in ids and token in tokens" only matches the held pairs;
                # the ids keep it on the primary key.
                .where(Job.id.in_(list(held)), Job.claim_token.in_(list(held.values())), Job.state == RUNNING)
                .values(lease_until=due_clock + lease)
                .returning(Job.id)
                .execution_options(synchronize_session=False)
            )
            return set(renewed.scalars())

    def release_expired_leases(self) -> list[int]:
        """Make the running jobs whose lease ran out (their worker died or stopped renewing)
        pending and due now, without a holder; returns their ids, for the caller to queue.

        Only running jobs are looked at (a few per worker thread), through ``ix_jobs_state_due``.
        Released once: a job waiting in a long queue is not queued again on every call."""
        now, due_clock = self._now(), self._due_now_sql()
        with self.session() as session:
            released = session.execute(
                update(Job)
                .where(Job.state == RUNNING, Job.lease_until < due_clock)
                .values(state=PENDING, next_attempt_at=due_clock, lease_until=None, claim_token=None, updated_at=now)
                .returning(Job.id)
                .execution_options(synchronize_session=False)
            )
            return sorted(released.scalars())

    def blocking_job(self, job: Job) -> int | None:
        """An older unfinished job of the same ticket and lane, which must go first."""
        with self.session() as session:
            return session.scalar(
                select(Job.id)
                .where(
                    Job.ticket_id == job.ticket_id,
                    Job.lane == job.lane,
                    Job.id < job.id,
                    Job.state.in_((PENDING, RUNNING)),
                )
                .limit(1)
            )

    def reschedule(
        self,
        job_id: int,
        *,
        error: str | None,
        delay: float | None = None,
        at: datetime | None = None,
        count_attempt: bool = True,
        claim_token: str | None = None,
    ) -> None:
        """Make the job pending again: due ``delay`` seconds from now (on the clock that decides
        "due") or at ``at`` (a due time read from the job itself).

        A worker gives its ``claim_token``: LeaseLost when the job is no longer held under it, and
        nothing changes. Without one (an operator, a test) the job is rescheduled as it is."""
        if (delay is None) == (at is None):
            raise ValueError("give delay or at")
        now = self._now()
        values: dict[str, Any] = {
            "state": PENDING,
            "next_attempt_at": at if at is not None else self._due_now_sql() + timedelta(seconds=delay or 0),
            "lease_until": None,
            "claim_token": None,
            "updated_at": now,
        }
        if error is not None:
            values["last_error"] = error
        if not count_attempt:
            values["attempts"] = Job.attempts - 1
        with self.session() as session:
            changed = session.execute(update(Job).where(*_held_by(job_id, claim_token)).values(**values))
            held = changed.rowcount == 1  # type: ignore[attr-defined]
        if claim_token is not None and not held:
            raise LeaseLost(job_id)

    def finish(self, job_id: int, *, dead_reason: str | None = None, claim_token: str | None = None) -> int | None:
        """Mark the job done (or dead with its reason); return the ticket's next pending job.

        A worker gives its ``claim_token``: LeaseLost when the job is no longer held under it (it was
        taken over after its lease ran out), and nothing changes. Without one (an operator, a test)
        the job is finished as it is."""
        now = self._now()
        values: dict[str, Any] = {
            "state": DEAD if dead_reason else DONE,
            "lease_until": None,
            "claim_token": None,
            "finished_at": now,
            "updated_at": now,
        }
        if dead_reason:
            values["last_error"] = dead_reason
        with self.session() as session:
            finished = session.execute(
                update(Job)
                .where(*_held_by(job_id, claim_token))
                .values(**values)
                .returning(Job.ticket_id, Job.lane)
                .execution_options(synchronize_session=False)
            ).one_or_none()
            if finished is not None:
                ticket_id, lane = finished
                return session.scalar(
                    select(Job.id)
                    .where(Job.ticket_id == ticket_id, Job.lane == lane, Job.id > job_id, Job.state == PENDING)
                    .order_by(Job.id)
                    .limit(1)
                )
        if claim_token is not None:
            raise LeaseLost(job_id)
        return None

    def job(self, job_id: int) -> Job | None:
        with self.session() as session:
            return session.get(Job, job_id)

    def jobs_to_sweep(self, *, grace: timedelta, limit: int = 500) -> list[int]:
        """Due jobs the queue should have run by now (lost enqueue, killed worker)."""
        with self.session() as session:
            now = due_now(session, fallback=self._now())
            return list(
                session.scalars(
                    select(Job.id)
                    .where(
                        or_(
                            and_(Job.state == PENDING, Job.next_attempt_at <= now - grace),
                            and_(Job.state == RUNNING, Job.lease_until < now),
                        )
                    )
                    .order_by(Job.id)
                    .limit(limit)
                )
            )

    def jobs(self, *, state: str | None = None, limit: int = 100) -> Sequence[Job]:
        with self.session() as session:
            query = select(Job).order_by(Job.id.desc()).limit(limit)
            if state:
                query = query.where(Job.state == state)
            return session.scalars(query).all()

    def replay(self, job_id: int) -> bool:
        """Give a dead job a fresh retry horizon and queue it; True if it was dead."""
        return self.replay_dead([job_id]) == [job_id]

    def replay_dead(self, job_ids: Iterable[int] | None = None) -> list[int]:
        """Give the named dead jobs (None: every dead job) a fresh retry horizon and queue them; the
        ids replayed, oldest first. Jobs that are not dead are left alone.

        One transaction, oldest first, queued once it commits: a worker never sees a replayed job
        while an older dead job of its lane is still waiting to be replayed, so the lane keeps its order.
        """
        now = self._now()
        with self.session() as session:
            due = due_now(session, fallback=now)
            query = select(Job.id).where(Job.state == DEAD).order_by(Job.id).with_for_update()
            wanted = None if job_ids is None else set(job_ids)
            if wanted is not None and len(wanted) <= _IN_CHUNK:
                query = query.where(Job.id.in_(sorted(wanted)))
            found = [job_id for job_id in session.scalars(query) if wanted is None or job_id in wanted]
            for start in range(0, len(found), _IN_CHUNK):
                session.execute(
                    update(Job)
                    .where(Job.id.in_(found[start : start + _IN_CHUNK]))
                    .values(
                        state=PENDING,
                        attempts=0,
                        next_attempt_at=due,
                        retry_from=due,
                        finished_at=None,
                        updated_at=now,
                    )
                )
            session.info["new_jobs"].extend((job_id, 0.0) for job_id in found)
            return found

    def queue_job_once(self, ticket_id: int, *, kind: str) -> bool:
        """Add a job unless one of that kind is already waiting for the ticket; True if added."""
        with self.session() as session:
            waiting = session.scalar(
                select(Job.id).where(Job.ticket_id == ticket_id, Job.kind == kind, Job.state == PENDING).limit(1)
            )
            if waiting is not None:
                return False
            self.new_job(session, kind=kind, ticket_id=ticket_id, now=self._now())
            return True

    def cursor(self, name: str) -> datetime | None:
        with self.session() as session:
            row = session.get(SyncCursor, name)
            return row.synced_at if row else None

    def set_cursor(self, name: str, at: datetime) -> None:
        with self.session() as session:
            row = session.get(SyncCursor, name)
            if row is None:
                session.add(SyncCursor(name=name, synced_at=at))
            else:
                row.synced_at = at

    def count_jobs(self) -> dict[str, int]:
        with self.session() as session:
            rows = session.execute(select(Job.state, func.count()).group_by(Job.state)).all()
            return dict(rows)

    def queue_stats(self) -> QueueStats:
        """Pending jobs by lane, how long the oldest due one has waited, and the dead letters (for /metrics)."""
        with self.session() as session:
            now = due_now(session, fallback=self._now())
            pending = session.execute(select(Job.lane, func.count()).where(Job.state == PENDING).group_by(Job.lane))
            oldest = session.scalar(
                select(func.min(Job.next_attempt_at)).where(Job.state == PENDING, Job.next_attempt_at <= now)
            )
            dead = session.scalar(select(func.count()).select_from(Job).where(Job.state == DEAD)) or 0
            by_lane = {str(lane): int(count) for lane, count in pending.all()}
        # min() over the UTC column comes back naive from SQLite (the type decorator is not applied).
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=now.tzinfo)
        age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
        return QueueStats(pending_by_lane=by_lane, oldest_due_age_seconds=age, dead=int(dead))

    # --- operator views -----------------------------------------------------------------------

    def tickets(self, *, status: str | None = None, limit: int = 50) -> Sequence[Ticket]:
        """Tickets newest first, optionally of one status."""
        with self.session() as session:
            query = select(Ticket).order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit)
            if status:
                query = query.where(Ticket.status == status)
            return session.scalars(query).all()

    def ticket_jobs(self, ticket_id: int) -> Sequence[Job]:
        with self.session() as session:
            return session.scalars(select(Job).where(Job.ticket_id == ticket_id).order_by(Job.id)).all()

    def ticket_notifications(self, ticket_id: int) -> Sequence[Notification]:
        with self.session() as session:
            return session.scalars(
                select(Notification).where(Notification.ticket_id == ticket_id).order_by(Notification.id)
            ).all()

    def ticket_followups(self, ticket_id: int) -> Sequence[Followup]:
        with self.session() as session:
            return session.scalars(select(Followup).where(Followup.ticket_id == ticket_id).order_by(Followup.id)).all()

    def dead_letters(self, *, limit: int = 100) -> list[tuple[Job, str | None]]:
        """Dead jobs, newest first, each with its ticket's tracking ID (None for a job without a ticket)."""
        with self.session() as session:
            rows = session.execute(
                select(Job, Ticket.tracking_id)
                .outerjoin(Ticket, Ticket.id == Job.ticket_id)
                .where(Job.state == DEAD)
                .order_by(Job.id.desc())
                .limit(limit)
            ).all()
            return [(job, tracking_id) for job, tracking_id in rows]

    # --- personal data audit ----------------------------------------------------------------------

    def erasures(self, *, limit: int = 100) -> Sequence[Erasure]:
        """The audit log of exports, erasures and retention purges, newest first."""
        with self.session() as session:
            return session.scalars(select(Erasure).order_by(Erasure.id.desc()).limit(limit)).all()

    def count_redaction(self, erasure_id: int) -> None:
        """One more ``redact_issue`` job of the erasure finished."""
        with self.session() as session:
            session.execute(
                update(Erasure)
                .where(Erasure.id == erasure_id)
                .values(tracker_redactions_done=Erasure.tracker_redactions_done + 1)
            )


def _held_by(job_id: int, claim_token: str | None) -> list[Any]:
    """The job, and with a claim token only while it is still running under that token."""
    if claim_token is None:
        return [Job.id == job_id]
    return [Job.id == job_id, Job.state == RUNNING, Job.claim_token == claim_token]


_TICKET_LOCKS = 0x6A6F6273
"""Advisory-lock namespace of the tickets' job lanes (the ticket id is the second key)."""
_LANE_LOCKS = 0x6C616E65
"""Advisory-lock namespace of lanes without a ticket (the email lane), keyed by the lane's name."""


def lock_lane(session: Session, *, ticket_id: int | None, lane: str) -> None:
    """Make this transaction the only one adding jobs to the ticket (or ticket-less lane) until it ends.

    A job id is drawn at INSERT but seen by others only at COMMIT. Without this, two transactions
    adding jobs to one ticket on PostgreSQL could commit in the opposite order of their ids, and
    the worker would run the newer job with the older one still invisible: nothing blocks it.
    With the transaction-level advisory lock the second transaction draws its id only after the
    first has committed, so ids commit in order. One lock per ticket covers all its lanes (so two
    transactions never take two of a ticket's locks in opposite orders). SQLite needs nothing:
    ``BEGIN IMMEDIATE`` already serialises every writer.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    key = (_TICKET_LOCKS, ticket_id) if ticket_id is not None else (_LANE_LOCKS, zlib.crc32(lane.encode()) >> 1)
    held: set[tuple[int, int]] = session.info.setdefault("lane_locks", set())
    if key in held:
        return
    session.execute(select(func.pg_advisory_xact_lock(*key)))
    held.add(key)


_DATABASE_NOW = func.timezone("UTC", func.now(), type_=DateTime())
"""PostgreSQL's clock as the naive UTC the columns hold (``now()`` is the transaction's start)."""


def due_now(session: Session, *, fallback: datetime) -> datetime:
    """The "now" of due times in this transaction: with ``database_time`` the database's clock (the
    transaction's start, so a job added now is due to every claim made after the commit), read once
    per transaction; otherwise ``fallback``, the caller's clock."""
    if not session.info.get("database_time"):
        return fallback
    cached: datetime | None = session.info.get("database_now")
    if cached is None:
        moment = session.scalar(select(_DATABASE_NOW))
        if moment is None:
            raise RuntimeError("the database did not say what time it is")
        cached = moment.replace(tzinfo=UTC)
        session.info["database_now"] = cached
    return cached


def bounded_key(key: str) -> str:
    """A delivery key that fits its column: callers choose keys (Idempotency-Key), so a long one
    is replaced by its hash, still unique per key, instead of failing the insert."""
    if len(key) <= 200:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def apply_plan(ticket: Ticket, plan: Plan) -> None:
    sprint = plan.sprint
    ticket.planned = True
    ticket.sprint_slot = plan.slot.value if plan.slot else None
    ticket.sprint_id = sprint.id if sprint else None
    ticket.sprint_name = sprint.name if sprint else None
    ticket.sprint_start = sprint.start_date if sprint else None
    ticket.sprint_due = sprint.due_date if sprint else None


CATEGORY_BY_BRIDGE, CATEGORY_BY_SUPPORT = "bridge", "support"
"""``Ticket.category_source``: decided by the bridge, or changed by support in the tracker."""


def _decide_category(ticket: Ticket, category: str, rule: str | None) -> None:
    if ticket.category_source == CATEGORY_BY_SUPPORT:
        return  # support has the last word
    ticket.category, ticket.category_rule, ticket.category_source = category, rule, CATEGORY_BY_BRIDGE


def _get(session: Session, ticket_id: int) -> Ticket:
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        raise LookupError(f"ticket {ticket_id} does not exist")
    return ticket
