"""Job leases: renewed by the worker's heartbeat while a job runs, taken back promptly when a worker
dies, and a run whose job was taken over records nothing (SQLite and PostgreSQL).

Each ``JobRunner`` below stands for one worker process (it has its own set of held jobs); they share
the database, as worker processes do. The clock is the tests' (``Clock``) except where a real
heartbeat thread runs against real time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bridge.adapters.store.db import make_engine, upgrade
from bridge.adapters.store.models import Job
from bridge.adapters.store.repository import LeaseLost, Store
from bridge.bootstrap import Deps
from bridge.config import DeliverySettings
from bridge.errors import PermanentError, RetryableError
from bridge.jobs import JobRunner
from bridge.worker import Heartbeat
from tests.conftest import Clock

PROBE = "probe"
Handler = Callable[[Job], None]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bridge.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


class Worker:
    """One worker process's runner, with what it queued."""

    def __init__(self, store: Store, handler: Handler, *, delivery: DeliverySettings, clock: Callable[[], datetime]):
        self.queued: list[int] = []
        self.runner = JobRunner(
            store=store,
            handlers={PROBE: handler},
            delivery=delivery,
            enqueue=lambda job_id, delay: self.queued.append(job_id),
            clock=clock,
        )


def worker(deps: Deps, handler: Handler) -> Worker:
    return Worker(deps.store, handler, delivery=deps.settings.delivery, clock=deps.clock)


def new_job(store: Store, now: datetime) -> int:
    with store.session() as session:
        return Store.new_job(session, kind=PROBE, ticket_id=None, lane="email", now=now).id


def job(store: Store, job_id: int) -> Job:
    found = store.job(job_id)
    assert found is not None
    return found


def lease(deps: Deps) -> float:
    return deps.settings.delivery.lease_seconds


def test_the_heartbeat_extends_the_lease_of_a_running_job(deps: Deps, clock: Clock) -> None:
    """A job running longer than its lease, with a heartbeat in between, is never taken from its worker."""
    job_id = new_job(deps.store, clock())
    ran: list[str] = []
    other = worker(deps, lambda job: ran.append("other"))

    def long_job(job: Job) -> None:
        ran.append("first")
        clock.advance(lease(deps) * 0.75)
        first.runner.heartbeat()
        renewed_at = clock()
        clock.advance(lease(deps) * 0.75)  # past the claim's lease, inside the renewed one
        assert job_of_first().lease_until == renewed_at + timedelta(seconds=lease(deps))
        other.runner.heartbeat()  # takes back expired leases: this one is not
        other.runner.run(job.id)  # a stray queue message: the claim refuses
        assert other.queued == []

    def job_of_first() -> Job:
        return job(deps.store, job_id)

    first = worker(deps, long_job)
    first.runner.run(job_id)

    assert ran == ["first"]
    finished = job(deps.store, job_id)
    assert (finished.state, finished.attempts, finished.lease_until, finished.claim_token) == ("done", 1, None, None)


def test_a_dead_workers_job_is_taken_back_once_after_its_lease(deps: Deps, clock: Clock) -> None:
    """The killed worker renews nothing: another worker's heartbeat queues its job once the lease has
    run out (not before, and only once however often it beats), and runs it."""
    job_id = new_job(deps.store, clock())
    claimed = deps.store.claim(job_id, lease=timedelta(seconds=lease(deps)))  # then SIGKILL
    assert claimed is not None
    ran: list[int] = []
    other = worker(deps, lambda job: ran.append(job.id))

    clock.advance(lease(deps) - 1)
    other.runner.heartbeat()
    assert other.queued == []

    clock.advance(2)
    other.runner.heartbeat()
    other.runner.heartbeat()
    assert other.queued == [job_id]
    released = job(deps.store, job_id)
    assert (released.state, released.next_attempt_at, released.claim_token) == ("pending", clock(), None)

    other.runner.run(job_id)
    assert ran == [job_id]
    assert (job(deps.store, job_id).state, job(deps.store, job_id).attempts) == ("done", 2)


@pytest.mark.parametrize("outcome", ["done", "retry", "dead"])
def test_a_late_run_whose_job_was_taken_over_records_nothing(
    deps: Deps, clock: Clock, outcome: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The first worker stalls past its lease; another takes the job over and finishes it. The first
    run's outcome, whatever it is, then changes nothing: no second finish, no retry, no dead letter."""
    job_id = new_job(deps.store, clock())
    other = worker(deps, lambda job: None)

    def stalled(job: Job) -> None:
        clock.advance(lease(deps) + 1)  # the process stalls: no heartbeat renews the lease
        other.runner.heartbeat()
        assert other.queued == [job.id]
        other.runner.run(job.id)
        assert deps.store.job(job.id).state == "done"  # type: ignore[union-attr]
        clock.advance(5)
        if outcome == "retry":
            raise RetryableError("the tracker answered 503")
        if outcome == "dead":
            raise PermanentError("the tracker answered 403")

    first = worker(deps, stalled)
    taken_over_at = clock() + timedelta(seconds=lease(deps) + 1)
    with caplog.at_level(logging.WARNING, logger="bridge.jobs"):
        first.runner.run(job_id)

    finished = job(deps.store, job_id)
    assert (finished.state, finished.finished_at, finished.last_error) == ("done", taken_over_at, None)
    assert finished.attempts == 2
    assert first.queued == []  # no retry queued by the stale run
    assert [r for r in caplog.records if r.getMessage() == "job.lease_lost" and r.__dict__["at"] == "finish"]


def test_a_worker_that_lost_a_lease_stops_renewing_it(
    deps: Deps, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """The renewal of a job now held by another worker fails: it does not extend the other's lease."""
    job_id = new_job(deps.store, clock())
    other = worker(deps, lambda job: None)
    leases: list[datetime | None] = []

    def stalled(job: Job) -> None:
        clock.advance(lease(deps) + 1)
        other.runner.heartbeat()
        assert deps.store.claim(job.id, lease=timedelta(seconds=lease(deps))) is not None  # another worker runs it
        leases.append(deps.store.job(job.id).lease_until)  # type: ignore[union-attr]
        clock.advance(3)
        with caplog.at_level(logging.WARNING, logger="bridge.jobs"):
            first.runner.heartbeat()
            first.runner.heartbeat()
        leases.append(deps.store.job(job.id).lease_until)  # type: ignore[union-attr]

    first = worker(deps, stalled)
    first.runner.run(job_id)

    assert leases[0] is not None
    assert leases == [leases[0], leases[0]]
    lost = [r for r in caplog.records if r.getMessage() == "job.lease_lost" and r.__dict__["at"] == "renewal"]
    assert len(lost) == 1  # then no longer renewed
    assert job(deps.store, job_id).state == "running"  # still the other worker's


def test_finish_and_reschedule_need_the_current_claim(deps: Deps, clock: Clock) -> None:
    """The store refuses an outcome under a claim token that is not (or no longer) the job's."""
    job_id = new_job(deps.store, clock())
    first = deps.store.claim(job_id, lease=timedelta(seconds=20))
    assert first is not None
    assert first.claim_token is not None
    clock.advance(21)
    second = deps.store.claim(job_id, lease=timedelta(seconds=20))  # took the expired lease over
    assert second is not None
    assert second.claim_token not in (None, first.claim_token)

    with pytest.raises(LeaseLost):
        deps.store.finish(job_id, claim_token=first.claim_token)
    with pytest.raises(LeaseLost):
        deps.store.reschedule(job_id, delay=5, error="late", claim_token=first.claim_token)
    assert deps.store.renew_leases({job_id: first.claim_token}, lease=timedelta(seconds=20)) == set()
    still = job(deps.store, job_id)
    assert (still.state, still.claim_token, still.last_error) == ("running", second.claim_token, None)

    assert deps.store.renew_leases({job_id: second.claim_token}, lease=timedelta(seconds=20)) == {job_id}
    deps.store.finish(job_id, claim_token=second.claim_token)
    assert job(deps.store, job_id).state == "done"
    with pytest.raises(LeaseLost):  # finished: nobody holds it any more
        deps.store.finish(job_id, claim_token=second.claim_token)


def test_the_heartbeat_thread_keeps_a_long_job_against_other_workers_in_real_time(database_url: str) -> None:
    """Real clocks (PostgreSQL's own with ``database_time``), a short lease, the worker's heartbeat
    thread: a job running for several leases is never taken back by another worker that keeps trying."""
    upgrade(database_url)
    engine = make_engine(database_url)
    store = Store(engine, clock=lambda: datetime.now(UTC), database_time=True)
    delivery = DeliverySettings(lease_seconds=1.6)  # a heartbeat every 0.2 s
    job_id = new_job(store, datetime.now(UTC))
    took_over: list[int] = []
    other = Worker(store, lambda job: took_over.append(job.id), delivery=delivery, clock=lambda: datetime.now(UTC))
    contested = threading.Event()

    def contest() -> None:
        """The other worker beats and claims for two and a half leases' time, then lets the long job end."""
        deadline = time.monotonic() + 2.5 * delivery.lease_seconds
        while time.monotonic() < deadline:
            other.runner.heartbeat()
            other.runner.run(job_id)
            time.sleep(0.05)
        contested.set()

    def long_job(job: Job) -> None:
        threading.Thread(target=contest, daemon=True).start()
        assert contested.wait(timeout=30)

    first = Worker(store, long_job, delivery=delivery, clock=lambda: datetime.now(UTC))
    heartbeat = Heartbeat(first.runner)
    heartbeat.start()
    try:
        first.runner.run(job_id)
    finally:
        heartbeat.stop()
    try:
        assert (other.queued, took_over) == ([], [])
        finished = job(store, job_id)
        assert (finished.state, finished.attempts) == ("done", 1)
    finally:
        engine.dispose()
