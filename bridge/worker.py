"""The worker process: ``python -m bridge.worker`` runs the huey consumer.

It runs filing and follow-up jobs and, every minute, the sweep that re-queues
work the queue lost. A heartbeat thread renews the leases of the jobs this process runs every
``lease_seconds / 8`` (2.5 s shipped) and takes back the jobs of workers that stopped renewing
theirs. Stop it any time: a killed worker's jobs run again once their (20 s) lease has run out.

Its metrics go into the same multi-process directory as the web process's on this machine
(``PROMETHEUS_MULTIPROC_DIR``, else ``instance/prometheus``), so the web's ``GET /metrics`` shows
them. On a machine without a web process, ``WORKER_METRICS_PORT`` serves them itself.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

from bridge import metrics
from bridge.bootstrap import Deps, build_deps, load_configuration
from bridge.errors import ConfigError
from bridge.jobs import JobRunner
from bridge.logs import configure_logging

log = logging.getLogger(__name__)


class Heartbeat(threading.Thread):
    """Calls ``runner.heartbeat()`` every ``runner.heartbeat_seconds`` until stopped. A failed beat
    (the database unreachable for a moment) is logged and the next one tries again: the lease
    outlasts several missed beats."""

    def __init__(self, runner: JobRunner) -> None:
        super().__init__(name="lease-heartbeat", daemon=True)
        self._runner = runner
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(self._runner.heartbeat_seconds):
            try:
                self._runner.heartbeat()
            except Exception:
                log.warning("worker.heartbeat_failed", exc_info=True)

    def stop(self) -> None:
        self._stopped.set()
        self.join(timeout=10)


def run_consumer(deps: Deps) -> None:
    deps.runner.sweep()  # pick up whatever an earlier crash left behind, right away
    heartbeat = Heartbeat(deps.runner)
    heartbeat.start()
    consumer = deps.queue.huey.create_consumer(
        workers=deps.settings.queue.worker_threads,
        worker_type="thread",
        periodic=True,
        # The embedded SQLite queue is polled: keep an idle worker quick to notice new jobs.
        initial_delay=0.05,
        backoff=1.5,
        max_delay=0.1,
        check_worker_health=True,
    )
    try:
        consumer.run()  # returns once a graceful stop has let the running jobs finish
    finally:
        heartbeat.stop()


def main() -> int:
    configure_logging()
    try:
        settings, mappings = load_configuration()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 3
    metrics.use_multiprocess_dir(metrics.multiprocess_dir(settings.path(settings.server.instance_dir)))
    port = os.environ.get("WORKER_METRICS_PORT")
    if port:
        metrics.serve(int(port))
    run_consumer(build_deps(settings, mappings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
