"""gunicorn settings; every value can be overridden on the command line or by GUNICORN_CMD_ARGS."""

import os
import shlex
import sys
import warnings

from gevent import monkey


def _worker_class_asked() -> str:
    """The worker class given on the command line or in GUNICORN_CMD_ARGS (they win over this file)."""
    args = [*sys.argv[1:], *shlex.split(os.environ.get("GUNICORN_CMD_ARGS", ""))]
    for index, arg in enumerate(args):
        if arg in ("-k", "--worker-class") and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith("--worker-class="):
            return arg.partition("=")[2]
    return "gevent"


# Patch before anything of the bridge is imported: the web workers are forked from this process
# with their modules already loaded, and psycopg picks its wait function when it is imported (the
# blocking one unless gevent has patched select), so patching only in the worker, as gunicorn's
# gevent worker does, would leave every database wait blocking the whole process. gunicorn itself
# imported ssl already; gevent's warning about that concerns Python 3.6, not 3.11.
if _worker_class_asked() == "gevent":
    warnings.filterwarnings("ignore", category=monkey.MonkeyPatchWarning)
    monkey.patch_all()

from pathlib import Path  # noqa: E402

from bridge import metrics  # noqa: E402

# All interfaces in production; `make run` binds loopback through BIND.
bind = os.environ.get("BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# gevent: every connection is a greenlet, so a client that sends its request slowly, or never
# finishes it, holds a few kilobytes instead of one of a handful of threads. With threads (gthread)
# twelve stalled connections stopped the whole service; the bridge is meant to face the internet
# without a buffering proxy in front. Requests are short and the database drivers cooperate
# (psycopg 3 and redis-py on gevent's patched sockets; SQLite writes are milliseconds).
worker_class = "gevent"
worker_connections = int(os.environ.get("WEB_CONNECTIONS", "1000"))
# Webhook senders give up after 10 s (GitLab); we answer in milliseconds or not at all.
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = "-" if os.environ.get("ACCESS_LOG") else None
# Trust X-Forwarded-* only from the local proxy (the default); widen via FORWARDED_ALLOW_IPS.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# gunicorn's control socket defaults to one path per user ($HOME/.gunicorn/gunicorn.ctl), which two
# services on one machine would share; the bridge does not use it.
control_socket_disable = True


# Metrics (prometheus-client multi-process mode): every web worker, and a job worker on the same
# machine, write their counts into one directory that GET /metrics adds up. PROMETHEUS_MULTIPROC_DIR,
# or instance/prometheus when unset. Set up here, in the master, before any web worker is forked.
def _instance_dir() -> Path:
    from bridge.config import load_settings
    from bridge.errors import ConfigError

    try:
        settings, _ = load_settings()
    except ConfigError:
        return Path("instance")  # the web workers report the problem when they load the app
    return settings.path(settings.server.instance_dir)


METRICS_DIR = metrics.multiprocess_dir(_instance_dir())
metrics.use_multiprocess_dir(METRICS_DIR)


def on_starting(server: object) -> None:
    """A fresh start: the counts of earlier runs go (the files of processes that no longer run)."""
    metrics.remove_dead_process_files(METRICS_DIR)


def child_exit(server: object, worker: object) -> None:
    """A web worker exited: its live gauges go; its counts stay in the totals."""
    metrics.mark_process_dead(getattr(worker, "pid", 0), str(METRICS_DIR))
