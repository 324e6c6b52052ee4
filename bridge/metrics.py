"""Prometheus metrics: what the bridge counts, and how ``GET /metrics`` serves it.

Every label value comes from a small fixed vocabulary: channels, outcomes, job kinds and lanes,
tracker names, endpoint names derived from the request's method and path *template*, HTTP status
codes. Never personal data, tracking IDs, issue keys, URLs or tokens; ``_label`` turns anything
that does not look like such a name into ``other``.

**Several processes.** gunicorn runs several web workers and the job worker is a process of its
own, so counters live in prometheus-client's multi-process mode: each process writes its values
into files in ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` adds up the files of every process on
the machine. ``gunicorn.conf.py`` sets the directory up (``instance/prometheus`` unless the variable
is set) and the worker writes into the same one. Queue gauges are not counted by any process: they
are read from the database at scrape time (``QueueCollector``), so every web process reports the
same, current numbers; so are the ticket counts (``TicketCollector``).
"""

from __future__ import annotations

import glob
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import requests
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    start_http_server,
    values,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

__all__ = [
    "CONTENT_TYPE_LATEST",
    "MULTIPROC_ENV",
    "QueueCollector",
    "QueueStats",
    "SupportCollector",
    "TicketCollector",
    "category_change",
    "endpoint_name",
    "exposition",
    "install_request_metrics",
    "job_run",
    "mark_process_dead",
    "multiprocess_dir",
    "notification",
    "reconcile_run",
    "remove_dead_process_files",
    "report",
    "serve",
    "use_multiprocess_dir",
    "webhook",
]

log = logging.getLogger(__name__)

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"

REGISTRY = CollectorRegistry()
"""The bridge's own metrics (not prometheus-client's global registry, so tests and tools that
import the bridge never clash with it)."""

REPORTS = Counter(
    "bridge_reports",
    "Events from reporters (reports and follow-ups) by channel and outcome: accepted, duplicate, rejected_<reason>.",
    ["channel", "outcome"],
    registry=REGISTRY,
)
WEBHOOKS = Counter(
    "bridge_webhook_deliveries",
    "Tracker webhook deliveries by source and outcome: accepted, duplicate, ignored, rejected, failed.",
    ["source", "outcome"],
    registry=REGISTRY,
)
JOB_RUNS = Counter(
    "bridge_job_runs",
    "Job runs by kind and outcome: done, retry, dead, blocked.",
    ["kind", "outcome"],
    registry=REGISTRY,
)
JOB_DURATION = Histogram(
    "bridge_job_duration_seconds",
    "Time a job's handler ran, whatever the outcome.",
    ["kind"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
TRACKER_REQUESTS = Counter(
    "bridge_tracker_requests",
    "HTTP requests to the trackers by endpoint and answer (status is the exact code for 4xx/5xx, else the class).",
    ["tracker", "endpoint", "status_class", "status"],
    registry=REGISTRY,
)
TRACKER_LATENCY = Histogram(
    "bridge_tracker_request_duration_seconds",
    "Time until a tracker's answer arrived.",
    ["tracker", "endpoint"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
NOTIFICATIONS = Counter(
    "bridge_notifications",
    "Reporter notifications by kind (ack, status, comment, plan) and outcome: sent, failed, superseded, skipped.",
    ["kind", "outcome"],
    registry=REGISTRY,
)
RECONCILE_RUNS = Counter(
    "bridge_reconcile_runs",
    "Reconciliation passes over one tracker project, by outcome: ok or failed.",
    ["tracker", "outcome"],
    registry=REGISTRY,
)
RECONCILE_SYNCS = Counter(
    "bridge_reconcile_syncs_queued",
    "Ticket syncs queued by reconciliation (changes a lost webhook would have announced).",
    ["tracker"],
    registry=REGISTRY,
)

CATEGORY_CHANGES = Counter(
    "bridge_category_changes",
    "Categories support changed in the tracker, by the category changed to (names outside categories.yaml: other).",
    ["category"],
    registry=REGISTRY,
)

_LABEL: Final = re.compile(r"[a-z0-9][a-z0-9_.:-]{0,47}")
OTHER: Final = "other"


def _label(value: str) -> str:
    """A label value from our vocabularies; anything else (an address, an id, a token) is ``other``."""
    value = value.lower()
    return value if _LABEL.fullmatch(value) and "@" not in value else OTHER


# -- recording --------------------------------------------------------------------------------------


def report(channel: str, outcome: str) -> None:
    """One event from a reporter channel (``chatbot``, ``email``): accepted, duplicate or rejected_<reason>."""
    REPORTS.labels(channel=_label(channel), outcome=_label(outcome)).inc()


def webhook(source: str, outcome: str) -> None:
    """One tracker webhook delivery (``gitlab``, ``jira``)."""
    WEBHOOKS.labels(source=_label(source), outcome=_label(outcome)).inc()


def job_run(kind: str, outcome: str, duration: float | None = None) -> None:
    """One run of a job; ``duration`` is the handler's run time (None when it did not run)."""
    JOB_RUNS.labels(kind=_label(kind), outcome=_label(outcome)).inc()
    if duration is not None:
        JOB_DURATION.labels(kind=_label(kind)).observe(duration)


def notification(kind: str, outcome: str) -> None:
    NOTIFICATIONS.labels(kind=_label(kind), outcome=_label(outcome)).inc()


def category_change(category: str) -> None:
    """Support changed a ticket's category in the tracker; ``category`` is already bounded by the
    caller (a name from the category mapping, else ``other``)."""
    CATEGORY_CHANGES.labels(category=_label(category)).inc()


def reconcile_run(tracker: str, *, ok: bool, queued: int = 0) -> None:
    RECONCILE_RUNS.labels(tracker=_label(tracker), outcome="ok" if ok else "failed").inc()
    if queued:
        RECONCILE_SYNCS.labels(tracker=_label(tracker)).inc(queued)


# -- tracker HTTP calls -----------------------------------------------------------------------------

# (method, path template after the API root, name). Names match the tracker sandbox's endpoint names.
_ID: Final = r"[^/]+"
_ROUTES: Final[tuple[tuple[str, str, str], ...]] = (
    # GitLab REST v4 (after /api/v4)
    ("GET", r"/user", "get_user"),
    ("GET", rf"/projects/{_ID}", "get_project"),
    ("GET", rf"/projects/{_ID}/issues", "list_issues"),
    ("POST", rf"/projects/{_ID}/issues", "create_issue"),
    ("GET", rf"/projects/{_ID}/issues/\d+", "get_issue"),
    ("PUT", rf"/projects/{_ID}/issues/\d+", "update_issue"),
    ("GET", rf"/projects/{_ID}/issues/\d+/notes", "list_notes"),
    ("POST", rf"/projects/{_ID}/issues/\d+/notes", "create_note"),
    ("GET", rf"/projects/{_ID}/milestones", "list_milestones"),
    ("GET", rf"/projects/{_ID}/hooks", "list_hooks"),
    ("POST", rf"/projects/{_ID}/hooks", "create_hook"),
    ("PUT", rf"/projects/{_ID}/hooks/\d+", "update_hook"),
    ("POST", rf"/projects/{_ID}/uploads", "upload_file"),
    # Jira REST v2 (after /rest/api/2)
    ("GET", r"/serverInfo", "server_info"),
    ("GET", r"/myself", "myself"),
    ("GET", rf"/project/{_ID}", "get_project"),
    ("GET", rf"/project/{_ID}/components", "list_components"),
    ("GET", r"/field", "list_fields"),
    ("POST", r"/issue", "create_issue"),
    ("GET", rf"/issue/{_ID}", "get_issue"),
    ("PUT", rf"/issue/{_ID}", "update_issue"),
    ("GET", r"/search", "search"),
    ("POST", r"/search", "search"),
    ("GET", r"/search/jql", "search_jql"),
    ("POST", r"/search/jql", "search_jql"),
    ("GET", rf"/issue/{_ID}/transitions", "get_transitions"),
    ("POST", rf"/issue/{_ID}/transitions", "do_transition"),
    ("GET", rf"/issue/{_ID}/comment", "list_comments"),
    ("POST", rf"/issue/{_ID}/comment", "add_comment"),
    ("POST", rf"/issue/{_ID}/attachments", "add_attachment"),
    # Jira Software agile 1.0 (after /rest/agile/1.0)
    ("GET", r"/board/\d+", "get_board"),
    ("GET", r"/board/\d+/sprint", "list_board_sprints"),
    ("POST", r"/sprint/\d+/issue", "add_sprint_issues"),
    # Jira admin webhooks (after /rest/webhooks/1.0)
    ("GET", r"/webhook", "list_webhooks"),
    ("POST", r"/webhook", "create_webhook"),
    ("PUT", r"/webhook/\d+", "update_webhook"),
)
_COMPILED: Final = tuple((method, re.compile(pattern), name) for method, pattern, name in _ROUTES)
_API_ROOT: Final = re.compile(r"/(?:api/v4|rest/api/2|rest/agile/1\.0|rest/webhooks/1\.0)(?=/)")


def endpoint_name(method: str, url: str) -> str:
    """A low-cardinality name for a tracker request (``create_issue``, ``search_jql``...), from its
    method and path template; ids, keys and query strings never reach the name."""
    path = urlsplit(url).path
    root = _API_ROOT.search(path)
    if root is None:
        return "other"
    rest = path[root.end() :].rstrip("/") or "/"
    method = method.upper()
    for candidate, pattern, name in _COMPILED:
        if candidate == method and pattern.fullmatch(rest):
            return name
    return "other"


def install_request_metrics(session: requests.Session, tracker: str) -> None:
    """Count and time every answer ``session`` receives (a ``requests`` response hook); idempotent.

    Requests that get no answer (timeouts, refused connections) are not counted here: they end as
    job retries with the error in ``job.retry`` and ``bridge_job_runs_total{outcome="retry"}``.
    """
    if getattr(session, "_bridge_metrics", None) == tracker:
        return
    name = _label(tracker)

    def observe(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        try:
            request = response.request
            endpoint = endpoint_name(request.method or "GET", request.url or "")
            code = int(response.status_code)
            status_class = f"{code // 100}xx"
            status = str(code) if code >= 400 else status_class
            TRACKER_REQUESTS.labels(tracker=name, endpoint=endpoint, status_class=status_class, status=status).inc()
            TRACKER_LATENCY.labels(tracker=name, endpoint=endpoint).observe(response.elapsed.total_seconds())
        except Exception:  # counting must never break a tracker call
            log.debug("metrics.tracker_hook_failed", exc_info=True)

    session.hooks["response"].append(observe)
    session._bridge_metrics = tracker  # type: ignore[attr-defined]


# -- queue gauges, read at scrape time --------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class QueueStats:
    pending_by_lane: dict[str, int] = field(default_factory=dict)
    oldest_due_age_seconds: float = 0.0
    """How long the oldest due pending job has been waiting (0 when none is due)."""
    dead: int = 0


class QueueCollector:
    """Queue depth, the oldest due job's age and the dead letters, from the database at each scrape."""

    def __init__(self, stats: Callable[[], QueueStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("bridge_database_up", "Whether /metrics could read the queue state from the database.")
        try:
            stats = self._stats()
        except Exception as exc:
            log.warning("metrics.database_unavailable", extra={"error": type(exc).__name__})
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        pending = GaugeMetricFamily("bridge_jobs_pending", "Jobs waiting to run, by lane.", labels=["lane"])
        for lane, count in sorted(stats.pending_by_lane.items()):
            pending.add_metric([_label(lane)], count)
        oldest = GaugeMetricFamily(
            "bridge_jobs_oldest_due_age_seconds", "How long the oldest due pending job has waited (0: none due)."
        )
        oldest.add_metric([], stats.oldest_due_age_seconds)
        dead = GaugeMetricFamily("bridge_jobs_dead", "Dead letters: jobs that gave up, waiting for a replay.")
        dead.add_metric([], stats.dead)
        return [up, pending, oldest, dead]


class SupportCollector:
    """Tickets set aside for support (their issue deleted or unreadable), by reason, from the
    database at each scrape; every one of ``reasons`` is reported, 0 when no ticket has it."""

    def __init__(self, counts: Callable[[], dict[str, int]], *, reasons: Iterable[str] = ()) -> None:
        self._counts = counts
        self._reasons = frozenset(reasons)

    def collect(self) -> Iterable[Metric]:
        try:
            counts = self._counts()
        except Exception as exc:  # bridge_database_up already says the database is away
            log.warning("metrics.database_unavailable", extra={"error": type(exc).__name__})
            return []
        gauge = GaugeMetricFamily(
            "bridge_tickets_needing_support",
            "Tickets set aside for support because their tracker issue was deleted or can no longer be read.",
            labels=["reason"],
        )
        for reason in sorted({*self._reasons, *counts}):
            gauge.add_metric([_label(reason)], counts.get(reason, 0))
        return [gauge]


class TicketCollector:
    """Tickets by category, severity, channel and current status, and status changes by status, from
    the database at each scrape (grouped counts, as ``python -m bridge stats`` counts them).

    ``counts`` must give bounded labels (categories from the mapping, the rest from their enums:
    ``bridge.pipeline.reporting.stats.ticket_counts``); ``_label`` guards them once more.
    """

    def __init__(
        self,
        counts: Callable[[], Mapping[tuple[str, str, str, str], int]],
        status_changes: Callable[[], Mapping[str, int]],
    ) -> None:
        self._counts = counts
        self._status_changes = status_changes

    def collect(self) -> Iterable[Metric]:
        try:
            counts, changes = self._counts(), self._status_changes()
        except Exception as exc:  # bridge_database_up already says the database is away
            log.warning("metrics.database_unavailable", extra={"error": type(exc).__name__})
            return []
        tickets = GaugeMetricFamily(
            "bridge_tickets",
            "Tickets by category, severity, channel and current status (severity unclassified: not filed yet).",
            labels=["category", "severity", "channel", "status"],
        )
        for (category, severity, channel, status), count in sorted(counts.items()):
            tickets.add_metric([_label(category), _label(severity), _label(channel), _label(status)], count)
        moved = CounterMetricFamily(
            "bridge_status_changes",
            "Status changes of tickets since the first, by the status moved to (from the status history).",
            labels=["status"],
        )
        for status, count in sorted(changes.items()):
            moved.add_metric([_label(status)], count)
        return [tickets, moved]


# -- exposition and multi-process mode --------------------------------------------------------------


class _Forward:
    """Lets a scrape registry include the bridge's registry (single-process mode)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        return iter(self._registry.collect())


def multiprocess_mode() -> bool:
    path = os.environ.get(MULTIPROC_ENV)
    return bool(path) and os.path.isdir(str(path)) and bool(getattr(values.ValueClass, "_multiprocess", False))


def exposition(*collectors: Collector) -> tuple[bytes, str]:
    """The text exposition of every process's counters plus ``collectors`` (e.g. ``QueueCollector``)."""
    registry = CollectorRegistry()
    if multiprocess_mode():
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Forward(REGISTRY))
    for collector in collectors:
        registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE_LATEST


def serve(port: int, addr: str = "0.0.0.0") -> None:  # noqa: S104 - metrics carry no personal data
    """Serve this machine's counts (every process writing into the multi-process directory) on
    ``http://<addr>:<port>/`` from a background thread: for a worker on a machine without a web process."""
    registry = CollectorRegistry()
    if multiprocess_mode():
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Forward(REGISTRY))
    start_http_server(port, addr=addr, registry=registry)


def multiprocess_dir(instance_dir: Path) -> Path:
    """``PROMETHEUS_MULTIPROC_DIR`` when set, else ``<instance dir>/prometheus``."""
    configured = os.environ.get(MULTIPROC_ENV)
    return Path(configured) if configured else instance_dir / "prometheus"


def use_multiprocess_dir(path: Path) -> None:
    """Write this process's metrics into ``path`` (created) from now on.

    Call it before the process counts anything (at start-up; gunicorn's master does it before it
    forks the web workers). prometheus-client reads ``PROMETHEUS_MULTIPROC_DIR`` when it is first
    imported; the bridge is imported before its configuration says where the instance directory is,
    so the value class is switched here as well.
    """
    path.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(path)
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


def remove_dead_process_files(path: Path) -> int:
    """Delete the value files of processes that no longer run; how many.

    The web master does this when it starts: the counts of an earlier run go (Prometheus sees a
    counter reset, which ``rate()`` handles), while a job worker already running on this machine
    keeps its files (deleting a live process's file would hide its counts until it restarts).
    """
    removed = 0
    for name in glob.glob(os.path.join(str(path), "*.db")):
        pid_text = Path(name).stem.rsplit("_", 1)[-1]
        if pid_text.isdigit() and _alive(int(pid_text)):
            continue
        try:
            os.remove(name)
            removed += 1
        except FileNotFoundError:
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
