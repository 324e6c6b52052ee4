"""The worker process: ``python -m bridge.worker`` runs the huey consumer.

It runs filing and follow-up jobs and, every minute, the sweep that re-queues
work the queue lost. Stop it any time: a killed job is taken again after its lease.

Its metrics go into the same multi-process directory as the web process's on this machine
(``PROMETHEUS_MULTIPROC_DIR``, else ``instance/prometheus``), so the web's ``GET /metrics`` shows
them. On a machine without a web process, ``WORKER_METRICS_PORT`` serves them itself.
"""

from __future__ import annotations

import os
import sys

from bridge import metrics
from bridge.bootstrap import Deps, build_deps, load_configuration
from bridge.errors import ConfigError
from bridge.logs import configure_logging


def run_consumer(deps: Deps) -> None:
    deps.runner.sweep()  # pick up whatever an earlier crash left behind, right away
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
    consumer.run()


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
