"""The soak's stack: the shared stack (``harness/``) with the soak's configuration and mail index.

On top of ``harness.stack.Stack`` (processes, environment, config copy, kills and restarts, the
restartable SMTP sink):

- config edits for a quick soak (backoff 1..10 s, lease 5 s, reconciliation every few minutes, worker
  threads) and a copy of ``mappings/`` whose routing sends product ``billing`` and the organisation of
  ``@jira-kunde.dk`` senders to Jira, and product ``legacy-archive`` to a GitLab project that does not
  exist (every filing there is refused with 404: the designed permanent failure);
- ``EMAIL_INBOUND_TOKEN`` for the email endpoints, PostgreSQL + Redis on request, one or more worker
  processes, a seeded sandbox;
- an SMTP sink that indexes mail by tracking ID, ``ensure_running`` after the chaos, and the bridge's
  command line (``bridge_cli``) for what an operator would look at.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine

from harness.mail import Mail, MailSink
from harness.process import PYTHON, REPO, HarnessError
from harness.stack import Stack

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

    @classmethod
    def of(cls, mail: Mail) -> SeenMail:
        found = SUBJECT_ID.search(mail.subject)
        numbered = MESSAGE_ID.search(mail.message_id)
        return cls(
            tracking_id=found.group(1) if found else None,
            message_id=mail.message_id,
            notification_id=int(numbered.group(2)) if numbered else None,
            subject=mail.subject,
            to=",".join(mail.rcpt_tos),
            at=mail.at,
        )


class SoakMailSink(MailSink):
    """The harness's SMTP sink, with every message also indexed by tracking ID."""

    def __init__(self) -> None:
        super().__init__()
        self._index_lock = threading.Lock()
        self.seen: list[SeenMail] = []
        self._by_ticket: dict[str, set[str]] = defaultdict(set)

    def received(self, mail: Mail) -> None:
        super().received(mail)
        seen = SeenMail.of(mail)
        with self._index_lock:
            self.seen.append(seen)
            if seen.tracking_id:
                self._by_ticket[seen.tracking_id].add(seen.message_id)

    def distinct_count(self, tracking_id: str) -> int:
        """Distinct messages (by Message-ID) mailed about ``tracking_id`` so far."""
        with self._index_lock:
            return len(self._by_ticket.get(tracking_id, ()))

    def snapshot(self) -> list[SeenMail]:
        with self._index_lock:
            return list(self.seen)


# --- the stack --------------------------------------------------------------------------------------


class SoakStack(Stack):
    """The shared stack with the soak's configuration, backends, seeded sandbox and indexed SMTP sink."""

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
        workers: int = 1,
    ) -> None:
        self.smtp = SoakMailSink()
        root.mkdir(parents=True, exist_ok=True)
        mappings_dir = soak_mappings(root / "mappings")
        super().__init__(
            root,
            tracker=tracker,
            workers=workers,
            database_url=database_url,
            redis_url=redis_url,
            mail=self.smtp,
            config={
                **DELIVERY,
                "reconcile_minutes": str(reconcile_minutes),
                "worker_threads": str(worker_threads),
                "mappings_dir": json.dumps(str(mappings_dir)),
            },
            env={
                "EMAIL_INBOUND_TOKEN": EMAIL_TOKEN,
                "NOTIFY_DEBOUNCE_SECONDS": str(debounce_seconds),
                "LOG_LEVEL": "INFO",
            },
            sandbox_args=["--seed", str(sandbox_seed)],
        )

    def engine(self) -> Engine:
        """A SQLAlchemy engine on the bridge's database (read-only use: counting and checking)."""
        return create_engine(self.database_url, pool_pre_ping=True)

    def ensure_running(self) -> None:
        """After the chaos: every process up again (restarting any that died on their own)."""
        self.start_workers()
        if not self.web.alive():
            self.start_web()
        self.smtp.start()
        if self.sandbox is None or not self.sandbox.alive():
            raise HarnessError("the tracker sandbox died")

    def workers_alive(self) -> bool:
        return all(worker.alive() for worker in self.workers)

    def bridge_cli(self, *args: str, timeout: float = 60) -> str:
        """``python -m bridge <args>`` with the stack's environment; its output (raises if it fails)."""
        done = subprocess.run(  # noqa: S603 - our own interpreter and fixed arguments
            [PYTHON, "-m", "bridge", *args], cwd=REPO, env=self.env, capture_output=True, timeout=timeout, check=False
        )
        output = (done.stdout + done.stderr).decode(errors="replace")
        if done.returncode != 0:
            raise HarnessError(f"python -m bridge {' '.join(args)} exited {done.returncode}:\n{output[-2000:]}")
        return done.stdout.decode(errors="replace")


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
