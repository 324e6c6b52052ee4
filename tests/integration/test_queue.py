"""The job queue on a real SQLite file and a real Redis: ids in, jobs run, delays honoured."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from huey import Huey, RedisHuey, SqliteHuey

from bridge import create_app
from bridge.adapters.store.models import Job
from bridge.bootstrap import Deps
from bridge.errors import RetryableError
from tests.conftest import post_event, report_event
from tests.fakes import FakeTracker, RecordingMailer


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def huey(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Huey]:
    if request.param == "sqlite":
        yield SqliteHuey("test", filename=str(tmp_path / "queue.db"), results=False)
        return
    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    instance = RedisHuey(f"bridge-test-{uuid.uuid4().hex[:8]}", url=url, results=False)
    yield instance
    instance.flush()


@pytest.fixture
def queued_deps(make_deps: Callable[..., Deps], huey: Huey) -> Deps:
    deps = make_deps()
    from bridge.bootstrap import build_deps

    return build_deps(
        deps.settings, deps.mappings, trackers=deps.trackers, huey=huey, mailer=RecordingMailer(), clock=deps.clock
    )


def filing_job(deps: Deps) -> Job:
    return next(job for job in deps.store.jobs() if job.kind == "file_ticket")


def drain(huey: Huey, *, at: datetime | None = None) -> int:
    """Run what the queue holds, as a consumer would (scheduled tasks due at ``at`` first)."""
    now = at or datetime.now(UTC).replace(tzinfo=None)
    for task in huey.read_schedule(now):
        huey.enqueue(task)
    ran = 0
    while (task := huey.dequeue()) is not None:
        if huey.ready_to_run(task, now):
            ran += 1
        huey.execute(task, now)  # a task not yet due goes to the schedule, as in the consumer
    return ran


def test_accepted_report_is_queued_and_run_from_the_queue(queued_deps: Deps, tracker: FakeTracker) -> None:
    """The web answer enqueues the job id; a consumer reading the real queue files the issue."""
    client: FlaskClient = create_app(deps=queued_deps).test_client()
    assert post_event(client, report_event()).status_code == 202
    assert queued_deps.queue.depth() == 2  # filing and acknowledgement
    assert drain(queued_deps.queue.huey) == 2
    assert len(tracker.issues) == 1
    assert filing_job(queued_deps).state == "done"


def test_retry_is_scheduled_with_its_delay(queued_deps: Deps, tracker: FakeTracker, huey: Huey) -> None:
    """A retryable failure goes back on the queue's schedule, not immediately."""
    client = create_app(deps=queued_deps).test_client()
    post_event(client, report_event())
    tracker.fail_next["create_issue"] = [RetryableError("429", retry_after=120)]
    drain(huey)
    assert tracker.issues == []
    assert filing_job(queued_deps).state == "pending"
    drain(huey)  # the retry is not due yet
    assert tracker.calls.count("create_issue") == 1
    later = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=135)
    queued_deps.clock.now += timedelta(seconds=135)  # type: ignore[attr-defined]
    drain(huey, at=later)
    assert len(tracker.issues) == 1
    assert filing_job(queued_deps).state == "done"


def test_queue_only_carries_the_job_id(queued_deps: Deps, huey: Huey) -> None:
    """What sits in the queue is the id; the report itself lives only in the database."""
    client = create_app(deps=queued_deps).test_client()
    post_event(client, report_event())
    queued = []
    while (task := huey.dequeue()) is not None:
        queued.append(task)
    assert sorted(task.args for task in queued) == sorted((job.id,) for job in queued_deps.store.jobs())
    assert all("Chat-widget" not in repr(task.args) + repr(task.kwargs) for task in queued)
