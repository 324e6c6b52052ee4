"""The job queue (huey). It carries only job ids; the database holds the truth."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from huey import Huey, RedisHuey, SqliteHuey, crontab
from huey.storage import SqliteStorage
from redis import ConnectionPool

RUN_JOB_TASK = "bridge.run_job"
SWEEP_TASK = "bridge.sweep"
RECONCILE_TASK = "bridge.reconcile"
IMAP_TASK = "bridge.imap_poll"
REDIS_CONNECT_TIMEOUT = 5.0
REDIS_READ_TIMEOUT = 10.0
RETENTION_TASK = "bridge.retention"


class _WalNormalSqliteStorage(SqliteStorage):  # type: ignore[misc]
    """huey's SQLite queue with ``synchronous=NORMAL``: in WAL mode a process crash loses nothing,
    and a power cut can lose only the last enqueues, which the sweep re-queues from the database.
    huey's default (FULL) makes every request wait for a disk flush (most of the intake time)."""

    def _create_connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection = super()._create_connection()
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn


def make_huey(*, redis_url: str | None, sqlite_path: Path, immediate: bool = False) -> Huey:
    """``RedisHuey`` when ``REDIS_URL`` is set (many machines), else an embedded SQLite queue."""
    if redis_url:
        # Finite socket timeouts (a silent Redis must not hang /readyz or a request that enqueues);
        # the read timeout stays above huey's 1 s blocking pop. Options in the URL take precedence.
        pool = ConnectionPool.from_url(
            redis_url, socket_connect_timeout=REDIS_CONNECT_TIMEOUT, socket_timeout=REDIS_READ_TIMEOUT
        )
        return RedisHuey("bridge", connection_pool=pool, results=False, immediate=immediate)
    sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(
        "bridge",
        filename=str(sqlite_path),
        results=False,
        immediate=immediate,
        storage_class=_WalNormalSqliteStorage,
    )


class JobQueue:
    """Registers the bridge's tasks on a huey instance and enqueues job ids."""

    def __init__(
        self,
        huey: Huey,
        *,
        run_job: Callable[[int], None],
        sweep: Callable[[], object],
        reconcile: Callable[[], object],
        reconcile_minutes: int,
        imap_poll: Callable[[], object] | None = None,
        imap_minutes: int = 1,
        retention: Callable[[], object] | None = None,
    ) -> None:
        self.huey = huey
        self._run_job = huey.task(name=RUN_JOB_TASK)(run_job)
        # Periodic tasks run in every consumer; all are idempotent, so several workers are fine.
        huey.periodic_task(crontab(minute="*"), name=SWEEP_TASK)(sweep)
        huey.periodic_task(crontab(minute=f"*/{reconcile_minutes}"), name=RECONCILE_TASK)(reconcile)
        if imap_poll is not None:
            # One bounded poll per run (IDLE included), not a loop: a crashed or killed poll is
            # simply the next run. Two workers polling at once store each message once (unique
            # message key) and the second MOVE of a message is a no-op.
            huey.periodic_task(crontab(minute=f"*/{imap_minutes}"), name=IMAP_TASK)(imap_poll)
        if retention is not None:
            # Hourly: each run erases what has come due (a bounded batch), so a backlog drains by itself.
            huey.periodic_task(crontab(minute="23"), name=RETENTION_TASK)(retention)

    def enqueue(self, job_id: int, *, delay: float = 0) -> None:
        if delay > 0:
            self._run_job.schedule(args=(job_id,), delay=delay)
        else:
            self._run_job(job_id)

    def depth(self) -> int:
        """Jobs waiting in the queue right now (not counting scheduled ones)."""
        return int(self.huey.pending_count())
