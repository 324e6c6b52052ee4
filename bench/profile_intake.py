"""Profile the intake hot path (``POST /webhooks/chatbot``) in-process with pyinstrument.

    .venv/bin/python -m bench.profile_intake [N] [--postgres] [--html out.html]

Builds the real app from ``config.yaml`` (SQLite database and SQLite queue in a temporary
instance directory, or PostgreSQL + Redis with ``--postgres``), sends N signed reports through
Flask's test client (no sockets, no gunicorn), and prints pyinstrument's wall-clock tree and the
time per request. Wall clock, not CPU: waiting for a disk flush or a lock shows up too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.load import report_event, signed
from bench.stack import PG_BASE, REDIS_URL
from harness.databases import drop_pg_schema, flush_redis, new_pg_schema
from harness.stack import SECRET_KEY, SIGNING_SECRET, write_config


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", nargs="?", type=int, default=2000)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--html", type=Path)
    parser.add_argument("--no-profile", action="store_true", help="only time the requests")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    schema = None
    os.environ.update(
        {
            "BRIDGE_CONFIG": str(write_config(root / "config.yaml", instance_dir=root / "instance")),
            "CHATBOT_SIGNING_SECRET": SIGNING_SECRET,
            "BRIDGE_SECRET_KEY": SECRET_KEY,
            "GITLAB_URL": "http://127.0.0.1:9",
            "GITLAB_TOKEN": "x",
            "GITLAB_PROJECT": "acme/support",
            "JIRA_URL": "http://127.0.0.1:9",
            "JIRA_USER": "x@example.com",
            "JIRA_API_TOKEN": "x",
            "JIRA_PROJECT": "SUP",
            "JIRA_BOARD_ID": "1",
            "LOG_FORMAT": "json",
        }
    )
    if args.postgres:
        url, schema = new_pg_schema(PG_BASE, prefix="bench")
        os.environ["DATABASE_URL"] = url
        os.environ["REDIS_URL"] = REDIS_URL
        flush_redis(REDIS_URL)
    else:
        os.environ["DATABASE_URL"] = f"sqlite:///{root / 'bridge.db'}"

    from bridge import create_app
    from bridge.adapters.store.db import upgrade
    from bridge.logs import configure_logging

    configure_logging()
    upgrade(os.environ["DATABASE_URL"])
    # Log lines go to a file, as they would to a collector; not to this terminal.
    import logging

    handler = logging.FileHandler(root / "app.log")
    root_logger = logging.getLogger()
    for old in list(root_logger.handlers):
        handler.setFormatter(old.formatter)
        root_logger.removeHandler(old)
    root_logger.addHandler(handler)

    app = create_app()
    client = app.test_client()
    bodies = [json.dumps(report_event(i, run="prof")).encode() for i in range(args.n + 50)]
    for body in bodies[:50]:  # warm up
        client.post(
            "/webhooks/chatbot",
            data=body,
            headers={"Content-Type": "application/json", "X-Smarttalk-Signature": signed(body)},
        )

    profiler = None
    if not args.no_profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
    started, cpu_started = time.perf_counter(), time.process_time()
    for body in bodies[50:]:
        response = client.post(
            "/webhooks/chatbot",
            data=body,
            headers={"Content-Type": "application/json", "X-Smarttalk-Signature": signed(body)},
        )
        if response.status_code != 202:
            print(response.status_code, response.data[:300], file=sys.stderr)
            return 1
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    if profiler is not None:
        profiler.stop()
        print(profiler.output_text(unicode=True, color=False, show_all=False))
        if args.html:
            args.html.write_text(profiler.output_html())
    print(
        f"{args.n} reports in {elapsed:.2f} s: {1000 * elapsed / args.n:.2f} ms wall, "
        f"{1000 * cpu / args.n:.2f} ms CPU per report, one thread"
    )
    if schema:
        drop_pg_schema(PG_BASE, schema)
    return 0


if __name__ == "__main__":
    sys.exit(main())
