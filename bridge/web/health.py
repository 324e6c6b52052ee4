"""``/healthz`` (the process answers), ``/readyz`` (it can do its work) and ``/metrics`` (Prometheus).

``/readyz`` answers 503 only when the database or the queue is unreachable: without them no report
can be accepted. A tracker that is down is reported (the web process never calls trackers, and a
report accepted meanwhile is filed later), but it does not take the web process out of rotation.
Each tracker is probed with one cheap authenticated call at most every ``TRACKER_CHECK_SECONDS``,
in the background, so a burst of probes neither hammers the tracker nor waits for its timeout.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, jsonify
from sqlalchemy import text

from bridge import metrics
from bridge.adapters.store.reporting import ReportingQueries
from bridge.adapters.trackers.base import Tracker
from bridge.bootstrap import Deps, current_deps
from bridge.pipeline.following import support
from bridge.pipeline.reporting import stats

bp = Blueprint("health", __name__)

TRACKER_CHECK_SECONDS = 30.0
"""How long a tracker's probe result is reused."""
TRACKER_CHECK_WAIT = 2.0
"""How long /readyz waits for a tracker's very first probe before answering without it."""

_HTTP_STATUS = re.compile(r"\bHTTP (\d{3})\b")


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    deps = current_deps()
    checks: dict[str, str] = {}
    try:
        with deps.store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        deps.queue.depth()
        checks["queue"] = "ok"
    except Exception as exc:
        checks["queue"] = f"error: {type(exc).__name__}"
    checks["configuration"] = "ok"  # the app exists, so config.yaml and mappings/ were loaded and valid
    ready = checks["database"] == "ok" and checks["queue"] == "ok"
    trackers = {name: _probe(deps, name, tracker).result() for name, tracker in sorted(deps.trackers.items())}
    body = jsonify(status="ready" if ready else "unavailable", checks=checks, trackers=trackers)
    return body, 200 if ready else 503


@bp.get("/metrics")
def prometheus_metrics() -> Response:
    deps = current_deps()
    queries, categories = ReportingQueries(deps.store), deps.mappings.categories.names
    payload, content_type = metrics.exposition(
        metrics.QueueCollector(deps.store.queue_stats),
        metrics.SupportCollector(lambda: support.count_needing_support(deps.store), reasons=support.ISSUE_GONE),
        metrics.TicketCollector(
            lambda: stats.ticket_counts(queries.ticket_groups(), categories),
            lambda: stats.status_change_counts(queries.status_changes()),
        ),
    )
    return Response(payload, content_type=content_type)


class TrackerProbe:
    """One tracker's reachability: an authenticated call, its result reused for a while."""

    def __init__(self, call: Callable[[], object], *, ttl: float = TRACKER_CHECK_SECONDS) -> None:
        self._call = call
        self._ttl = ttl
        self._lock = threading.Lock()
        self._result: dict[str, Any] | None = None
        self._checked = float("-inf")
        self._running: threading.Thread | None = None

    def result(self, wait: float = TRACKER_CHECK_WAIT) -> dict[str, Any]:
        with self._lock:
            stale = time.monotonic() - self._checked >= self._ttl
            if stale and (self._running is None or not self._running.is_alive()):
                self._running = threading.Thread(target=self._check, name="readyz-tracker-probe", daemon=True)
                self._running.start()
            running, result = self._running, self._result
        if result is None and running is not None:
            running.join(wait)
            with self._lock:
                result = self._result
        return result or {"status": "unknown", "detail": "first check still running"}

    def _check(self) -> None:
        started = time.monotonic()
        try:
            self._call()
            result: dict[str, Any] = {"status": "ok"}
        except Exception as exc:
            result = {"status": "error", "error": type(exc).__name__}
            status = _HTTP_STATUS.search(str(exc))
            if status:
                result["http_status"] = int(status.group(1))
        result["latency_ms"] = round((time.monotonic() - started) * 1000)
        result["checked_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        with self._lock:
            self._result = result
            self._checked = time.monotonic()


_PROBES_LOCK = threading.Lock()


def _probe(deps: Deps, name: str, tracker: Tracker) -> TrackerProbe:
    with _PROBES_LOCK:
        probes: dict[str, TrackerProbe] = deps.extras.setdefault("readyz.trackers", {})
        if name not in probes:
            # ``probe`` makes a fresh call each time; ``account`` (every tracker has it) may be cached.
            call = getattr(tracker, "probe", None)
            probes[name] = TrackerProbe(call if callable(call) else tracker.account)
        return probes[name]
