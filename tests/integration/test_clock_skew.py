"""Hosts whose clocks disagree still agree on when a job is due (PostgreSQL, the database's clock).

The web process stamps a new job due "now" and the worker claims it when due. With each host's
own clock, a web host 90 s ahead of the worker made every immediate job wait 90 s (until the sweep).
In production (``database_time``) due times, claims, leases and the sweep use PostgreSQL's clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bridge.adapters.store.db import make_engine, upgrade
from bridge.adapters.store.repository import Store

pytestmark = pytest.mark.postgres

LEASE = timedelta(minutes=5)


def host_clock(offset_seconds: float) -> Callable[[], datetime]:
    """A host's wall clock that is ``offset_seconds`` away from the database's."""
    return lambda: datetime.now(UTC) + timedelta(seconds=offset_seconds)


@pytest.fixture
def stores(postgres_url: str) -> Iterator[Callable[..., Store]]:
    upgrade(postgres_url)
    engine = make_engine(postgres_url)

    def on_host(offset_seconds: float, *, database_time: bool = True) -> Store:
        return Store(engine, clock=host_clock(offset_seconds), database_time=database_time)

    yield on_host
    engine.dispose()


def new_email_job(store: Store, *, delay: float = 0) -> int:
    with store.session() as session:
        return Store.new_job(
            session, kind="process_email", ticket_id=None, lane="email", now=store_now(store), delay=delay
        ).id


def store_now(store: Store) -> datetime:
    return store._now()  # the host's clock, as the pipeline passes it


def test_an_immediate_job_is_due_at_once_for_a_worker_whose_clock_is_behind(stores: Callable[..., Store]) -> None:
    """Web host 90 s ahead, worker 90 s behind: the worker claims the new job straight away."""
    web, worker = stores(+90), stores(-90)
    job_id = new_email_job(web)

    claimed = worker.claim(job_id, lease=LEASE)

    assert claimed is not None
    assert claimed.state == "running"


def test_a_delayed_job_is_not_due_early_for_a_worker_whose_clock_is_ahead(stores: Callable[..., Store]) -> None:
    """A job due in 60 s is not taken by a worker whose clock runs 5 minutes ahead."""
    web, worker = stores(0), stores(+300)
    job_id = new_email_job(web, delay=60)

    assert worker.claim(job_id, lease=LEASE) is None
    assert worker.jobs_to_sweep(grace=timedelta(seconds=30)) == []


def test_a_lease_holds_against_a_worker_whose_clock_is_ahead(stores: Callable[..., Store]) -> None:
    """A running job's lease is the database's time too: a worker an hour ahead cannot take it over."""
    first, ahead = stores(0), stores(+3600)
    job_id = new_email_job(first)
    assert first.claim(job_id, lease=LEASE) is not None

    assert ahead.claim(job_id, lease=LEASE) is None
    assert ahead.jobs_to_sweep(grace=timedelta(seconds=30)) == []
    assert ahead.release_expired_leases() == []


def test_a_lease_renewed_from_a_host_behind_lasts_from_the_database_clock(stores: Callable[..., Store]) -> None:
    """The heartbeat of a worker an hour behind extends the lease from the database's now: a worker an
    hour ahead still takes nothing back (with its own clock it would)."""
    behind, ahead = stores(-3600), stores(+3600)
    job_id = new_email_job(behind)
    claimed = behind.claim(job_id, lease=LEASE)
    assert claimed is not None
    assert claimed.claim_token is not None

    assert behind.renew_leases({job_id: claimed.claim_token}, lease=LEASE) == {job_id}

    assert ahead.release_expired_leases() == []
    lease_until = behind.job(job_id).lease_until  # type: ignore[union-attr]
    assert lease_until is not None
    assert abs(lease_until - (datetime.now(UTC) + LEASE)) < timedelta(seconds=60)
    assert stores(+3600, database_time=False).release_expired_leases() == [job_id]


def test_a_retry_due_now_is_due_for_every_worker(stores: Callable[..., Store]) -> None:
    """A worker 90 s ahead reschedules a retry with no delay; one 90 s behind can take it at once."""
    ahead, behind = stores(+90), stores(-90)
    job_id = new_email_job(ahead)
    assert ahead.claim(job_id, lease=LEASE) is not None

    ahead.reschedule(job_id, delay=0, error="the tracker answered 503")

    assert behind.claim(job_id, lease=LEASE) is not None


def test_replayed_dead_letters_are_due_at_once_for_every_worker(stores: Callable[..., Store]) -> None:
    """An operator's host 90 s ahead replays a dead job: a worker 90 s behind runs it straight away."""
    operator, worker = stores(+90), stores(-90)
    job_id = new_email_job(operator)
    operator.finish(job_id, dead_reason="gave up")

    assert operator.replay_dead([job_id]) == [job_id]
    assert worker.claim(job_id, lease=LEASE) is not None


def test_with_database_time_off_the_given_clock_decides(stores: Callable[..., Store]) -> None:
    """Tests move time with their own clock: without ``database_time`` that clock alone says what is due."""
    web, worker = stores(+90, database_time=False), stores(-90, database_time=False)
    job_id = new_email_job(web)

    assert worker.claim(job_id, lease=LEASE) is None
    assert stores(+120, database_time=False).claim(job_id, lease=LEASE) is not None
