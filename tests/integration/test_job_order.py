"""Per-ticket (and email-lane) order of jobs under concurrent transactions and replays.

A job id is drawn at INSERT but visible at COMMIT. On PostgreSQL two transactions adding jobs to
one lane could commit in the opposite order of their ids, and the worker then ran the newer job
while the older was still invisible. These tests run two real transactions side by side.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from bridge.adapters.store.models import Job, Ticket
from bridge.adapters.store.repository import Store
from bridge.bootstrap import Deps
from bridge.config import DeliverySettings
from bridge.jobs import JobRunner
from bridge.operations import replay_dead_letters

PROBE = "probe"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bridge.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


def new_ticket(store: Store, now: datetime) -> int:
    with store.session() as session:
        ticket = Ticket(
            tracking_id="ST-ORDER001",
            status="received",
            channel="chatbot",
            locale="da",
            reporter_email="anna@kunde.dk",
            title="Rækkefølge",
            description="Rækkefølge",
            created_at=now,
            updated_at=now,
        )
        session.add(ticket)
        session.flush()
        return ticket.id


def probe_runner(deps: Deps, ran: list[int]) -> JobRunner:
    """A worker whose one job kind records the order in which jobs really run."""

    def record(job: Job) -> None:
        assert job.subject_id is not None
        ran.append(job.subject_id)

    return JobRunner(
        store=deps.store,
        handlers={PROBE: record},
        delivery=DeliverySettings(),
        enqueue=lambda job_id, delay: None,
        clock=deps.clock,
    )


def run_pending(deps: Deps, runner: JobRunner) -> None:
    """Everything due, in id order, as the worker picks it up; blocked jobs are woken by their blocker."""
    for _ in range(5):
        pending = sorted(j.id for j in deps.store.jobs(state="pending", limit=100))
        if not pending:
            return
        for job_id in pending:
            runner.run(job_id)


def waiting_for_a_lock(deps: Deps, backend: list[int]) -> bool:
    """True once the PostgreSQL backend in ``backend`` waits for a lock."""
    if not backend:
        return False
    with deps.store.engine.connect() as conn:
        query = text("SELECT count(*) FROM pg_locks WHERE pid = :pid AND NOT granted")
        return bool(conn.scalar(query, {"pid": backend[0]}))


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@pytest.mark.parametrize("lane", ["tracker", "email"])
def test_jobs_of_one_lane_commit_in_the_order_of_their_ids(deps: Deps, lane: str) -> None:
    """The first transaction adds job 1 and is still open when a second one adds job 2 and commits.
    The worker must never run job 2 before job 1: the second transaction waits for the first."""
    now = deps.clock()
    ticket_id = new_ticket(deps.store, now) if lane == "tracker" else None
    ran: list[int] = []
    runner = probe_runner(deps, ran)

    backend: list[int] = []

    def add_second() -> None:
        with deps.store.session() as session:
            backend.append(int(session.scalar(text("SELECT pg_backend_pid()")) or 0))
            Store.new_job(session, kind=PROBE, ticket_id=ticket_id, subject_id=2, lane=lane, now=now)

    second = threading.Thread(target=add_second)
    with deps.store.session() as first:
        Store.new_job(first, kind=PROBE, ticket_id=ticket_id, subject_id=1, lane=lane, now=now)
        second.start()
        deadline = time.monotonic() + 10
        while second.is_alive() and not waiting_for_a_lock(deps, backend):
            assert time.monotonic() < deadline, "the second transaction neither committed nor waited"
            time.sleep(0.01)
        run_pending(deps, runner)  # the worker acts on whatever is committed now
    second.join(timeout=10)
    assert not second.is_alive()
    run_pending(deps, runner)

    assert ran == [1, 2]


def test_replay_all_replays_a_lane_oldest_first(deps: Deps) -> None:
    """Two dead jobs of one ticket are replayed together and run in their original order, even by a
    worker that takes each job the moment it is queued."""
    now = deps.clock()
    ticket_id = new_ticket(deps.store, now)
    ran: list[int] = []
    runner = probe_runner(deps, ran)
    with deps.store.session() as session:
        older = Store.new_job(session, kind=PROBE, ticket_id=ticket_id, subject_id=1, now=now).id
        newer = Store.new_job(session, kind=PROBE, ticket_id=ticket_id, subject_id=2, now=now).id
    for job_id in (older, newer):
        deps.store.finish(job_id, dead_reason="the tracker was down")

    def eager(job_id: int, delay: float = 0) -> None:
        runner.run(job_id)

    deps.store.enqueue = eager
    deps.queue.enqueue = eager  # type: ignore[method-assign]
    replayed = replay_dead_letters(deps, None)

    assert replayed == [older, newer]
    assert ran == [1, 2]


def test_replay_leaves_jobs_that_are_not_dead_alone(deps: Deps) -> None:
    """Naming a pending job replays nothing; naming a dead one replays only it."""
    now = deps.clock()
    ticket_id = new_ticket(deps.store, now)
    with deps.store.session() as session:
        pending = Store.new_job(session, kind=PROBE, ticket_id=ticket_id, now=now).id
        dead = Store.new_job(session, kind=PROBE, ticket_id=ticket_id, now=now).id
    deps.store.finish(dead, dead_reason="gone")

    assert replay_dead_letters(deps, [pending, 999_999]) == []
    assert replay_dead_letters(deps, [pending, dead]) == [dead]
    job = deps.store.job(dead)
    assert job is not None
    assert (job.state, job.attempts, job.last_error) == ("pending", 0, "gone")
