"""The shipped gunicorn settings make the web workers' database waits cooperative.

gunicorn forks its workers from the process that read ``gunicorn.conf.py``, with the bridge (and so
psycopg) already imported; psycopg chooses its wait function at import. Unless gevent patched the
standard library before that, every PostgreSQL wait blocks all the connections of a web worker.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROBE = "import runpy; runpy.run_path('gunicorn.conf.py'); import psycopg.waiting as w; print(w.wait.__name__)"


def wait_function(**env: str) -> str:
    environment = {**os.environ, "CHATBOT_SIGNING_SECRET": "conf-test", **env}
    environment.pop("GUNICORN_CMD_ARGS", None)
    environment.update(env)
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, env=environment, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_psycopg_waits_cooperatively_under_the_shipped_gevent_workers() -> None:
    assert wait_function() != "wait_c"


def test_a_threaded_worker_class_is_left_unpatched() -> None:
    assert wait_function(GUNICORN_CMD_ARGS="--worker-class gthread --threads 4") == "wait_c"
