"""The soak's stack: the e2e harness's ``Stack`` plus what a soak needs on top of it.

Reused from ``tests/e2e/harness.py`` by import: process start/stop, the sandbox, gunicorn and worker
command lines, the environment and the config copy. Added here:

- config edits for a quick soak (backoff 1..10 s, lease 5 s, reconciliation every few minutes, worker
  threads) and a copy
  of ``mappings/`` whose routing sends product ``billing`` and the organisation of
  ``@jira-kunde.dk`` senders to Jira, and product ``legacy-archive`` to a GitLab project that does not
  exist (every filing there is refused with 404: the designed permanent failure);
- ``EMAIL_INBOUND_TOKEN`` for the raw email endpoint, and PostgreSQL + Redis on request;
- web kill/restart (SIGKILL of gunicorn's whole process group, or of one gunicorn worker);
- an SMTP sink that can go down and come back on the same port, indexing mail by tracking ID.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import logging
import os
import re
import shutil
import signal
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, text

from tests.e2e.harness import REPO, HarnessError, MailSink, Stack, wait_until

EMAIL_TOKEN = "soak-email-inbound-token"  # noqa: S105 - a loopback test credential
JIRA_PRODUCT = "billing"
JIRA_DOMAIN = "jira-kunde.dk"
JIRA_ORGANIZATION = "Jira Kunde ApS"
PERMANENT_PRODUCT = "legacy-archive"
MISSING_PROJECT = "acme/archived"
"""A GitLab project the sandbox does not have: filing there is answered 404, a permanent refusal."""

SUBJECT_ID = re.compile(r"\[(ST-[0-9A-Z]{8})\]")
MESSAGE_ID = re.compile(r"<st-([0-9a-z]{8})\.n(\d+)@", re.IGNORECASE)

# delivery.* of the soak's config copy: quick retries, so that a soak settles in minutes.
DELIVERY = {
    "backoff_base_seconds": "1",
    "backoff_max_seconds": "10",
    "lease_seconds": "5",
}


def edit_yaml_scalars(path: Path, edits: dict[str, str]) -> None:
    """Replace ``key: value`` lines (each key exactly once) in a YAML file, keeping comments."""
    content = path.read_text()
    for key, value in edits.items():
        pattern = rf"(?m)^(\s*{re.escape(key)}:\s*)[^\s#]+"
        content, count = re.subn(pattern, lambda m: m.group(1) + value, content)  # noqa: B023 - used at once
        if count != 1:
            raise HarnessError(f"{path}: expected exactly one {key!r} line to edit, found {count}")
    path.write_text(content)


def soak_mappings(target: Path) -> Path:
    """A copy of ``mappings/`` with the soak's routes and sender domain; returns its path."""
    shutil.copytree(REPO / "mappings", target)
    routing = target / "routing.yaml"
    routes = (
        "routes:\n"
        "  - name: soak-billing-in-jira\n"
        "    when:\n"
        f"      product: [{JIRA_PRODUCT}]\n"
        "    tracker: jira\n"
        "  - name: soak-jira-customer\n"
        "    when:\n"
        f"      organization: [{json.dumps(JIRA_ORGANIZATION)}]\n"
        "    tracker: jira\n"
        "  - name: soak-archived-project\n"
        "    when:\n"
        f"      product: [{PERMANENT_PRODUCT}]\n"
        "    tracker: gitlab\n"
        f"    project: {MISSING_PROJECT}\n"
    )
    content, count = re.subn(r"(?m)^routes: \[\]\n", routes, routing.read_text())
    if count != 1:
        raise HarnessError("mappings/routing.yaml: expected the line 'routes: []'")
    routing.write_text(content)
    email_rules = target / "email.yaml"
    content, count = re.subn(
        r"(?m)^domains:\n",
        f"domains:\n  {json.dumps(JIRA_DOMAIN)}: {json.dumps(JIRA_ORGANIZATION)}\n",
        email_rules.read_text(),
    )
    if count != 1:
        raise HarnessError("mappings/email.yaml: expected a 'domains:' line")
    email_rules.write_text(content)
    return target


# --- mail -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeenMail:
    tracking_id: str | None
    message_id: str
    notification_id: int | None
    """From the bridge's deterministic Message-ID ``<st-xxxxxxxx.n<id>@domain>``."""
    subject: str
    to: str
    at: float


class _DroppedSessions(logging.Filter):
    """Stopping the SMTP server cancels the sessions in flight (the point of the exercise); asyncio then
    logs each cancelled session task as "destroyed but pending" when it is collected. Not news."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Task was destroyed but it is pending")


logging.getLogger("asyncio").addFilter(_DroppedSessions())


class SoakMailSink(MailSink):
    """The harness's SMTP sink, indexed by tracking ID, and able to go down and come back on its port."""

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self._index_lock = threading.Lock()
        self.seen: list[SeenMail] = []
        self._by_ticket: dict[str, set[str]] = defaultdict(set)
        self.up = False
        self.downtimes: list[tuple[float, float]] = []
        self._down_since: float | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd's hook name
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        subject = str(message.get("Subject", ""))
        message_id = str(message.get("Message-ID", "")).strip()
        found = SUBJECT_ID.search(subject)
        numbered = MESSAGE_ID.search(message_id)
        seen = SeenMail(
            tracking_id=found.group(1) if found else None,
            message_id=message_id,
            notification_id=int(numbered.group(2)) if numbered else None,
            subject=subject,
            to=",".join(envelope.rcpt_tos),
            at=time.time(),
        )
        with self._index_lock:
            self.seen.append(seen)
            if seen.tracking_id:
                self._by_ticket[seen.tracking_id].add(message_id)
        return "250 Message accepted for delivery"

    def distinct_count(self, tracking_id: str) -> int:
        """Distinct messages (by Message-ID) mailed about ``tracking_id`` so far."""
        with self._index_lock:
            return len(self._by_ticket.get(tracking_id, ()))

    def snapshot(self) -> list[SeenMail]:
        with self._index_lock:
            return list(self.seen)

    def start(self) -> None:
        self.controller.start()
        self.up = True
        if self._down_since is not None:
            self.downtimes.append((self._down_since, time.time()))
            self._down_since = None

    def stop(self) -> None:
        if self.up:
            self.controller.stop()
            self.up = False
            self._down_since = time.time()

    def go_down(self) -> None:
        """Stop the SMTP server: the bridge's connections are refused until :meth:`come_back`."""
        self.stop()

    def come_back(self) -> None:
        """Start the SMTP server again on the same port (a new aiosmtpd controller: a stopped one has
        closed its event loop)."""
        if not self.up:
            self.controller = Controller(self, hostname="127.0.0.1", port=self.port, enable_SMTPUTF8=True)
            self.start()


# --- the stack --------------------------------------------------------------------------------------


class SoakStack(Stack):
    """The e2e ``Stack`` with the soak's configuration, backends, web kills and a restartable SMTP sink."""

    def __init__(
        self,
        root: Path,
        *,
        tracker: str = "gitlab",
        database_url: str | None = None,
        redis_url: str | None = None,
        debounce_seconds: float = 1,
        sandbox_seed: int = 0,
        reconcile_minutes: int = 2,
        worker_threads: int = 4,
    ) -> None:
        self._sandbox_seed = sandbox_seed
        super().__init__(tracker, root)
        self.mail.controller.loop.close()  # the harness's sink, never started: replaced by ours
        self.smtp = SoakMailSink(self.smtp_port)
        self.mail = self.smtp
        mappings_dir = soak_mappings(root / "mappings")
        edit_yaml_scalars(
            self.config_path,
            {
                **DELIVERY,
                "reconcile_minutes": str(reconcile_minutes),
                "worker_threads": str(worker_threads),
                "mappings_dir": json.dumps(str(mappings_dir)),
            },
        )
        self.database_url = database_url or self.env["DATABASE_URL"]
        # The processes share this dict (the harness hands it to each Process): edit it in place.
        self.env.update(
            {
                "DATABASE_URL": self.database_url,
                "EMAIL_INBOUND_TOKEN": EMAIL_TOKEN,
                "NOTIFY_DEBOUNCE_SECONDS": str(debounce_seconds),
                "LOG_LEVEL": "INFO",
            }
        )
        if redis_url:
            self.env["REDIS_URL"] = redis_url
        self.web_restarts = 0
        self.worker_restarts = 0

    def _sandbox_argv(self) -> list[str]:
        return [*super()._sandbox_argv(), "--seed", str(self._sandbox_seed)]

    def engine(self) -> Any:
        """A SQLAlchemy engine on the bridge's database (read-only use: counting and checking)."""
        return create_engine(self.database_url, pool_pre_ping=True)

    # -- the web process ----------------------------------------------------------------------------

    def web_worker_pids(self) -> list[int]:
        """gunicorn's worker processes (children of the master)."""
        if not self.web.alive():
            return []
        found: list[int] = []
        for task in Path(f"/proc/{self.web.pid}/task").glob("*"):
            with contextlib.suppress(OSError):
                found += [int(pid) for pid in (task / "children").read_text().split()]
        return found

    def kill_web(self) -> None:
        """SIGKILL gunicorn's master and its workers at once (the whole process group): the web is gone."""
        if self.web.popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.web.pid, signal.SIGKILL)
        self.web.popen.wait(timeout=10)

    def kill_web_worker(self, rng_pick: int) -> int | None:
        """SIGKILL one gunicorn worker (the master forks a new one); returns its pid."""
        pids = self.web_worker_pids()
        if not pids:
            return None
        pid = pids[rng_pick % len(pids)]
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        return pid

    def start_web(self, timeout: float = 40) -> None:
        """Start gunicorn again and wait until it answers ``/readyz``."""
        self.web.start()
        self.web_restarts += 1
        self._wait_http(self.web, f"{self.web_url}/readyz", timeout)

    def start_worker(self) -> None:
        super().start_worker()
        self.worker_restarts += 1

    def ensure_running(self) -> None:
        """After the chaos: every process up again (restarting any that died on their own)."""
        if not self.worker.alive():
            self.start_worker()
        if not self.web.alive():
            self.start_web()
        self.smtp.come_back()
        if not self.sandbox.alive():
            raise HarnessError("the tracker sandbox died")


# --- PostgreSQL and Redis ------------------------------------------------------------------------------


def new_pg_schema(base_url: str) -> tuple[str, str]:
    """A fresh schema in the PostgreSQL at ``base_url``; returns (DATABASE_URL with search_path, schema)."""
    schema = f"soak_{uuid.uuid4().hex[:10]}"
    engine = create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    finally:
        engine.dispose()
    separator = "&" if "?" in base_url else "?"
    return f"{base_url}{separator}options=-csearch_path%3D{schema}", schema


def drop_pg_schema(base_url: str, schema: str) -> None:
    engine = create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    finally:
        engine.dispose()


def flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    """``wait_until`` of the harness (re-exported for the soak's modules)."""
    return wait_until(predicate, timeout, what=what, interval=interval)


def sleep_until(moment: float, stop: threading.Event | None = None) -> bool:
    """Sleep until ``time.time() >= moment``; False if ``stop`` was set first."""
    while True:
        left = moment - time.time()
        if left <= 0:
            return True
        if stop is not None:
            if stop.wait(min(left, 0.5)):
                return False
        else:
            time.sleep(min(left, 0.5))
