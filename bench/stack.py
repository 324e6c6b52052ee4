"""The benchmark's stack: the shared stack (``harness/``) with the benchmark's settings and gauges.

Every phase builds a fresh ``BenchStack`` (fresh database, queue and sandbox) so that one phase's
backlog never steals CPU from the next. On top of ``harness.stack.Stack``: the sandbox's latency on
every tracker call, reporters mailed at once (``NOTIFY_DEBOUNCE_SECONDS=0``), PostgreSQL + Redis on
request (a fresh schema, dropped on stop; Redis flushed), gunicorn's sizes from
``BENCH_WEB_CONCURRENCY``/``BENCH_WEB_CONNECTIONS`` for every app alike, and memory and CPU readings
from /proc.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from harness.databases import drop_pg_schema, flush_redis, new_pg_schema
from harness.stack import BRIDGE_APP, Stack

PG_BASE = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


def gunicorn_knobs() -> list[str]:
    """Experiments with the gunicorn settings apply to every app alike (bridge, baseline, naive)."""
    args: list[str] = []
    for knob, option in (
        ("BENCH_WEB_CONCURRENCY", "--workers"),
        ("BENCH_WEB_CONNECTIONS", "--worker-connections"),
        ("BENCH_WEB_WORKER_CLASS", "--worker-class"),
        ("BENCH_WEB_THREADS", "--threads"),
    ):
        if os.environ.get(knob):
            args += [option, os.environ[knob]]
    return args


class BenchStack(Stack):
    """Sandbox (answering after ``tracker_latency_ms``) + SMTP sink + gunicorn serving ``app`` + ``workers``
    bridge worker processes, on SQLite or (``postgres``) PostgreSQL + Redis."""

    def __init__(
        self,
        root: Path,
        *,
        app: str = BRIDGE_APP,
        tracker_latency_ms: int = 0,
        workers: int = 1,
        postgres: bool = False,
        sandbox: bool = True,
    ) -> None:
        self.schema: str | None = None
        database_url = redis_url = None
        if postgres:
            database_url, self.schema = new_pg_schema(PG_BASE, prefix="bench")
            redis_url = REDIS_URL
            flush_redis(REDIS_URL)
        try:
            super().__init__(
                root,
                app=app,
                workers=workers,
                sandbox=sandbox,
                database_url=database_url,
                redis_url=redis_url,
                env={"NOTIFY_DEBOUNCE_SECONDS": "0"},
                sandbox_args=["--latency-ms", str(tracker_latency_ms)],
                gunicorn_args=gunicorn_knobs(),
            )
        except BaseException:
            self._drop_schema()
            raise

    def stop(self) -> None:
        super().stop()
        self._drop_schema()

    def _drop_schema(self) -> None:
        if self.schema is not None:
            with contextlib.suppress(Exception):
                drop_pg_schema(PG_BASE, self.schema)
            self.schema = None

    # -- observations ----------------------------------------------------------------------------------

    def memory(self) -> dict[str, float]:
        """RSS in MiB: gunicorn master and each web worker, each bridge worker process."""
        out: dict[str, float] = {}
        pids = self.web.tree_pids()
        if pids:
            out["web_master"] = round(rss_mib(pids[0]), 1)
            for i, pid in enumerate(pids[1:], 1):
                out[f"web_worker{i}"] = round(rss_mib(pid), 1)
        for worker in self.workers:
            for i, pid in enumerate(worker.tree_pids()):
                out[worker.name + (f".{i}" if i else "")] = round(rss_mib(pid), 1)
        return out

    def set_faults(self, rules: list[dict[str, Any]]) -> None:
        """Replace the sandbox's fault rules."""
        self.http.post(f"{self.sandbox_url}/_sandbox/faults", json={"rules": rules}, timeout=10).raise_for_status()


def rss_mib(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the given processes (from /proc/<pid>/stat), in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / ticks
