"""End-to-end harness: the real processes on loopback ports, driven only over HTTP and SMTP.

``Stack`` starts, in a temporary directory,

- the tracker sandbox (``python -m sandbox serve``), whose webhooks point at the bridge,
- an SMTP server (``aiosmtpd``) in this process that keeps every message it is given,
- ``python -m bridge migrate``, then the bridge web (gunicorn, ``gunicorn.conf.py``) and the
  worker (``python -m bridge.worker``),

all configured only through environment variables (CONTRACT section 7), except for a copy of
``config.yaml`` with three harness-only edits (see ``write_config``). Each process writes its
stdout and stderr to files in the temporary directory; ``Stack.tails()`` shows their ends.
Waiting is always polling against a deadline (``wait_until``), never a long fixed sleep.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import IO, Any, TypeVar

import requests
from aiosmtpd.controller import Controller
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from bridge.tracking import TRACKING_ID
from bridge.web.signatures import sign

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable

SIGNING_SECRET = "e2e-signing-secret"
API_TOKEN = "e2e-api-token"
GITLAB_TOKEN = "e2e-gitlab-token"
GITLAB_WEBHOOK_SECRET = "e2e-gitlab-webhook-secret"
JIRA_USER = "bridge@example.com"
JIRA_TOKEN = "e2e-jira-token"
JIRA_WEBHOOK_SECRET = "e2e-jira-webhook-secret"
MAIL_FROM = "support@bridge.example"

# The job lease of the harness's config copy. A SIGKILLed worker's jobs are taken again once their
# lease has run out; the shipped 300 s would make the worker-kill test take five minutes.
LEASE_SECONDS = 5

# Everything the shipped config.yaml, gunicorn.conf.py or the bridge read from the environment:
# removed from the inherited environment so that only what the harness sets reaches the processes.
_BRIDGE_VARS = frozenset(
    {
        "BRIDGE_CONFIG",
        "PORT",
        "BIND",
        "WEB_CONCURRENCY",
        "WEB_THREADS",
        "GUNICORN_CMD_ARGS",
        "ACCESS_LOG",
        "FORWARDED_ALLOW_IPS",
        "DATABASE_URL",
        "REDIS_URL",
        "BRIDGE_TRACKER",
        "GITLAB_URL",
        "GITLAB_TOKEN",
        "GITLAB_PROJECT",
        "GITLAB_WEBHOOK_SECRET",
        "JIRA_URL",
        "JIRA_USER",
        "JIRA_API_TOKEN",
        "JIRA_PROJECT",
        "JIRA_BOARD_ID",
        "JIRA_WEBHOOK_SECRET",
        "SMTP_HOST",
        "SMTP_PORT",
        "SMTP_USERNAME",
        "SMTP_PASSWORD",
        "SMTP_STARTTLS",
        "SMTP_TLS",
        "SMTP_CA_FILE",
        "MAIL_FROM",
        "MAIL_REPLY_TO",
        "NOTIFY_DEBOUNCE_SECONDS",
        "CHATBOT_SIGNING_SECRET",
        "CHATBOT_API_TOKEN",
        "CHATBOT_CALLBACK_URL",
        "EMAIL_INBOUND_TOKEN",
        "MAILGUN_SIGNING_KEY",
        "BRIDGE_PUBLIC_URL",
        "BRIDGE_SECRET_KEY",
        "BRIDGE_ADMIN_TOKEN",
        "LOG_FORMAT",
        "LOG_LEVEL",
        "SANDBOX_PORT",
        ").split(",
    }
)

T = TypeVar("T")


class HarnessError(AssertionError):
    """The harness could not do its part (a process did not start, a wait timed out)."""


def wait_until(
    predicate: Callable[[], T | None],
    timeout: float,
    *,
    what: str = "condition",
    interval: float = 0.1,
    ignore: tuple[type[BaseException], ...] = (requests.ConnectionError,),
) -> T:
    """Poll ``predicate`` until it returns something truthy (returned), or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = predicate()
        except ignore as exc:
            last = exc
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise HarnessError(f"timed out after {timeout:.0f} s waiting for {what}; last value: {last!r}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def new_event_id() -> str:
    return f"evt_e2e_{uuid.uuid4().hex[:16]}"


# --- processes ------------------------------------------------------------------------------------


class Process:
    """One child process with its stdout and stderr in files; restartable."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str], cwd: Path, log_dir: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.stdout_path = log_dir / f"{name}.stdout.log"
        self.stderr_path = log_dir / f"{name}.stderr.log"
        self.popen: subprocess.Popen[bytes] | None = None
        self._files: list[IO[bytes]] = []
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        self._close_files()
        marker = f"\n----- start #{self.starts} of {self.name} at {time.strftime('%H:%M:%S')} -----\n".encode()
        out, err = self.stdout_path.open("ab"), self.stderr_path.open("ab")
        out.write(marker)
        err.write(marker)
        out.flush()
        err.flush()
        self._files = [out, err]
        # A session of its own, so that stopping it can also reach its children (gunicorn's workers).
        self.popen = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL, no goodbye: what an OOM kill or a pulled plug does to a worker."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            assert self.popen is not None
            self.popen.wait(timeout=10)

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM, then SIGKILL (of its whole process group) if it has not gone after ``timeout`` s."""
        if self.popen is None:
            return
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._kill_group()
                self.popen.wait(timeout=10)
        self._kill_group()  # leftovers of the group (a gunicorn worker whose master died)
        self._close_files()

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def _close_files(self) -> None:
        for handle in self._files:
            handle.close()
        self._files = []

    def tail(self, lines: int = 40) -> str:
        parts = []
        for path in (self.stdout_path, self.stderr_path):
            text = path.read_text(errors="replace") if path.exists() else ""
            kept = text.strip().splitlines()[-lines:]
            parts.append(f"--- {path.name} (last {len(kept)} lines) ---\n" + "\n".join(kept))
        state = "running" if self.alive() else f"exited {self.popen.returncode if self.popen else '-'}"
        return f"=== {self.name} [{state}] ===\n" + "\n".join(parts)


# --- mail -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content() if isinstance(part, EmailMessage) else ""

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        return part.get_content() if isinstance(part, EmailMessage) else ""

    def __repr__(self) -> str:
        return f"Mail(to={self.rcpt_tos}, subject={self.subject!r})"


class MailSink:
    """An SMTP server in this process that keeps every message (aiosmtpd handler)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._lock = threading.Lock()
        self._messages: list[Mail] = []
        self.controller = Controller(self, hostname="127.0.0.1", port=port, enable_SMTPUTF8=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd's hook name
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self._messages.append(Mail(str(envelope.mail_from), tuple(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()

    def messages(self) -> list[Mail]:
        with self._lock:
            return list(self._messages)

    def to(self, address: str, *, containing: str | None = None) -> list[Mail]:
        """Messages to ``address`` (envelope or To:), optionally with ``containing`` in the subject or a body."""
        found = []
        for mail in self.messages():
            recipients = [r.lower() for r in mail.rcpt_tos] + [str(mail.message.get("To", "")).lower()]
            if not any(address.lower() in r for r in recipients):
                continue
            if containing is not None and not any(containing in s for s in (mail.subject, mail.text, mail.html)):
                continue
            found.append(mail)
        return found


# --- tracker issues as the sandbox shows them -----------------------------------------------------


@dataclass(frozen=True)
class Issue:
    """A sandbox issue of either tracker, in the few terms the tests need."""

    tracker: str
    key: str
    """What ``/_sandbox/act`` takes: the GitLab iid or the Jira key."""
    title: str
    labels: tuple[str, ...]
    sprints: tuple[str, ...]
    """GitLab: the milestone's title; Jira: the names in the Sprint field."""
    priority: str | None
    closed: bool
    comments: tuple[str, ...]
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def gitlab(cls, data: dict[str, Any]) -> Issue:
        milestone = data.get("milestone") or {}
        return cls(
            tracker="gitlab",
            key=str(data["iid"]),
            title=data["title"],
            labels=tuple(data.get("labels") or ()),
            sprints=(milestone["title"],) if milestone else (),
            priority=None,
            closed=data["state"] == "closed",
            comments=tuple(note.get("body", "") for note in data.get("notes") or () if not note.get("system")),
            raw=data,
        )

    @classmethod
    def jira(cls, data: dict[str, Any]) -> Issue:
        fields = data["fields"]
        sprints = fields.get("customfield_10020") or []
        return cls(
            tracker="jira",
            key=data["key"],
            title=fields["summary"],
            labels=tuple(fields.get("labels") or ()),
            sprints=tuple(s["name"] for s in sprints),
            priority=(fields.get("priority") or {}).get("name"),
            closed=fields["status"]["statusCategory"]["key"] == "done",
            comments=tuple(c.get("body", "") for c in (fields.get("comment") or {}).get("comments") or ()),
            raw=data,
        )

    @property
    def tracking_id(self) -> str | None:
        match = re.match(r"\[(" + TRACKING_ID.pattern + r")\]", self.title)
        return match.group(1) if match else None


# --- the stack ------------------------------------------------------------------------------------


def _escape_group(value: str) -> str:
    return value.replace("\\", "\\\\")


def write_config(path: Path, *, instance_dir: Path) -> Path:
    """A copy of the shipped ``config.yaml`` with three harness-only edits, nothing else.

    - ``server.instance_dir``: a temporary directory. The embedded SQLite queue lives there
      (``instance/queue.db``) and config.yaml reads no environment variable for it.
    - ``mappings_dir``: the repository's ``mappings/`` as an absolute path, because relative paths
      are resolved against the config file's directory.
    - ``delivery.lease_seconds``: ``LEASE_SECONDS`` instead of 300, so that a SIGKILLed worker's
      jobs are taken again within seconds (see ``test_worker_killed_mid_create_loses_and_duplicates_nothing``).
    """
    text = (REPO / "config.yaml").read_text()
    edits = {
        "instance_dir": json.dumps(str(instance_dir)),
        "mappings_dir": json.dumps(str(REPO / "mappings")),
        "lease_seconds": str(LEASE_SECONDS),
    }
    for key, value in edits.items():
        text, count = re.subn(rf"(?m)^(\s*{key}:\s*)[^\s#]+", rf"\g<1>{_escape_group(value)}", text)
        if count != 1:
            raise HarnessError(f"config.yaml: expected exactly one {key!r} line to edit, found {count}")
    path.write_text(text)
    return path


class Stack:
    """Sandbox + SMTP sink + bridge web + bridge worker for one default tracker (``BRIDGE_TRACKER``)."""

    def __init__(self, tracker: str, root: Path) -> None:
        self.tracker = tracker
        self.root = root
        self.sandbox_port, self.web_port, self.smtp_port = free_port(), free_port(), free_port()
        self.sandbox_url = f"http://127.0.0.1:{self.sandbox_port}"
        self.web_url = f"http://127.0.0.1:{self.web_port}"
        self.config_path = write_config(root / "config.yaml", instance_dir=root / "instance")
        self.mail = MailSink(self.smtp_port)
        self.http = requests.Session()
        # Polling GETs may meet a keep-alive connection the server closed at that instant (gunicorn's
        # keepalive is 5 s): retry those transport errors. POSTs are never retried by the harness.
        transport_only = Retry(total=2, connect=2, read=2, status=0, allowed_methods={"GET"}, backoff_factor=0.1)
        self.http.mount("http://", HTTPAdapter(max_retries=transport_only))
        self.env = self._environment()
        logs = root / "logs"
        logs.mkdir(exist_ok=True)
        self.sandbox = Process("sandbox", self._sandbox_argv(), env=self.env, cwd=REPO, log_dir=logs)
        # The Procfile's command. gunicorn 27 also opens a control socket, by default one shared path
        # per user (~/.gunicorn/gunicorn.ctl): give this stack its own so parallel servers do not collide.
        web_argv = [PYTHON, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--control-socket", str(root / "gunicorn.ctl")]
        self.web = Process("web", [*web_argv, "wsgi:app"], env=self.env, cwd=REPO, log_dir=logs)
        self.worker = Process("worker", [PYTHON, "-m", "bridge.worker"], env=self.env, cwd=REPO, log_dir=logs)
        self.processes = (self.sandbox, self.web, self.worker)
        self.migrate_output = ""

    def _environment(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if key not in _BRIDGE_VARS}
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "BRIDGE_CONFIG": str(self.config_path),
                "DATABASE_URL": f"sqlite:///{self.root / 'bridge.db'}",
                "BRIDGE_TRACKER": self.tracker,
                "GITLAB_URL": self.sandbox_url,
                "GITLAB_TOKEN": GITLAB_TOKEN,
                "GITLAB_PROJECT": "acme/support",
                "GITLAB_WEBHOOK_SECRET": GITLAB_WEBHOOK_SECRET,
                "JIRA_URL": self.sandbox_url,
                "JIRA_USER": JIRA_USER,
                "JIRA_API_TOKEN": JIRA_TOKEN,
                "JIRA_PROJECT": "SUP",
                "JIRA_BOARD_ID": "1",
                "JIRA_WEBHOOK_SECRET": JIRA_WEBHOOK_SECRET,
                "SMTP_HOST": "127.0.0.1",
                "SMTP_PORT": str(self.smtp_port),
                "SMTP_STARTTLS": "false",
                "MAIL_FROM": MAIL_FROM,
                "NOTIFY_DEBOUNCE_SECONDS": "1",
                "CHATBOT_SIGNING_SECRET": SIGNING_SECRET,
                "CHATBOT_API_TOKEN": API_TOKEN,
                "BRIDGE_PUBLIC_URL": self.web_url,
                # Set, so the web workers and the worker never race to generate instance/secret_key.
                "BRIDGE_SECRET_KEY": "e2e-secret-key",
                "LOG_FORMAT": "json",
                "PORT": str(self.web_port),
                "BIND": f"127.0.0.1:{self.web_port}",
                "WEB_CONCURRENCY": "2",
            }
        )
        return env

    def _sandbox_argv(self) -> list[str]:
        return [
            PYTHON, "-m", "sandbox", "serve",
            "--host", "127.0.0.1", "--port", str(self.sandbox_port),
            "--gitlab-token", GITLAB_TOKEN, "--jira-user", JIRA_USER, "--jira-token", JIRA_TOKEN,
            "--gitlab-webhook-url", f"{self.web_url}/webhooks/gitlab", "--gitlab-webhook-secret", GITLAB_WEBHOOK_SECRET,
            "--jira-webhook-url", f"{self.web_url}/webhooks/jira", "--jira-webhook-secret", JIRA_WEBHOOK_SECRET,
            "--webhook-retry-base", "0.2", "--quiet",
        ]  # fmt: skip

    # -- life cycle --------------------------------------------------------------------------------

    def start(self) -> Stack:
        try:
            self.mail.start()
            self.sandbox.start()
            self._wait_http(self.sandbox, f"{self.sandbox_url}/_sandbox/state", 20)
            migrate = subprocess.run(
                [PYTHON, "-m", "bridge", "migrate"],
                cwd=REPO,
                env=self.env,
                capture_output=True,
                timeout=90,
                check=False,
            )
            self.migrate_output = (migrate.stdout + migrate.stderr).decode(errors="replace")
            if migrate.returncode != 0:
                raise HarnessError(f"python -m bridge migrate exited {migrate.returncode}:\n{self.migrate_output}")
            self.web.start()
            self.worker.start()
            self._wait_http(self.web, f"{self.web_url}/readyz", 30)
            for _ in range(4):  # let both gunicorn workers build their app before anything is timed
                self.http.get(f"{self.web_url}/readyz", timeout=5)
            if not self.worker.alive():
                raise HarnessError("the worker exited during start-up")
        except BaseException as exc:
            message = f"the e2e stack ({self.tracker}) did not start: {exc}\n\n{self.tails()}"
            self.stop()
            raise HarnessError(message) from exc
        return self

    def _wait_http(self, process: Process, url: str, timeout: float) -> None:
        def up() -> bool:
            if not process.alive():
                raise HarnessError(f"{process.name} exited with {process.popen.returncode if process.popen else '?'}")
            return self.http.get(url, timeout=5).status_code == 200

        wait_until(
            up,
            timeout,
            what=f"{process.name} at {url}",
            interval=0.2,
            ignore=(requests.ConnectionError, requests.Timeout),
        )

    def stop(self) -> None:
        for process in (self.worker, self.web, self.sandbox):
            try:
                process.stop()
            except Exception as exc:  # keep stopping the others
                print(f"stopping {process.name} failed: {exc!r}", file=sys.stderr)
        try:
            self.mail.stop()
        except Exception as exc:  # never started, or already stopped
            print(f"stopping the SMTP sink failed: {exc!r}", file=sys.stderr)
        self.http.close()

    def kill_worker(self) -> None:
        self.worker.kill()

    def start_worker(self) -> None:
        self.worker.start()

    def tails(self, lines: int = 40) -> str:
        return "\n\n".join(process.tail(lines) for process in self.processes)

    # -- the chatbot's side ------------------------------------------------------------------------

    def signed_headers(self, body: bytes, *, at: int | None = None, secret: str = SIGNING_SECRET) -> dict[str, str]:
        t = int(time.time()) if at is None else at
        return {"Content-Type": "application/json", "X-Smarttalk-Signature": f"t={t},v1={sign(secret, t, body)}"}

    def post_raw(self, body: bytes, headers: dict[str, str]) -> requests.Response:
        return self.http.post(f"{self.web_url}/webhooks/chatbot", data=body, headers=headers, timeout=10)

    def post_on_new_connection(self, body: bytes, headers: dict[str, str]) -> requests.Response:
        """POST on a connection of its own. For bodies the server refuses unread (413): urllib3 sometimes
        reuses such a connection after the refusal although the answer said ``Connection: close``."""
        return requests.post(f"{self.web_url}/webhooks/chatbot", data=body, headers=headers, timeout=10)

    def post_event(self, event: dict[str, Any], **headers: str) -> requests.Response:
        body = json.dumps(event).encode()
        return self.post_raw(body, {**self.signed_headers(body), **headers})

    def file_report(self, event: dict[str, Any]) -> str:
        """Send a report; it must be accepted with 202. Returns its tracking ID."""
        response = self.post_event(event)
        assert response.status_code == 202, f"report not accepted: {response.status_code} {response.text}"
        tracking_id = response.json()["tracking_id"]
        assert TRACKING_ID.fullmatch(tracking_id), tracking_id
        return str(tracking_id)

    def api_ticket(self, tracking_id: str) -> requests.Response:
        return self.http.get(
            f"{self.web_url}/api/v1/tickets/{tracking_id}",
            headers={"Authorization": f"Bearer {API_TOKEN}"},
            timeout=10,
        )

    def api_status(self, tracking_id: str) -> str | None:
        response = self.api_ticket(tracking_id)
        return str(response.json().get("status")) if response.status_code == 200 else None

    def wait_status(self, tracking_id: str, status: str, timeout: float = 20) -> dict[str, Any]:
        """Poll the status API until the ticket has ``status``; returns the API's body."""
        seen: list[str | None] = []

        def reached() -> dict[str, Any] | None:
            response = self.api_ticket(tracking_id)
            body = response.json() if response.headers.get("Content-Type", "").endswith("json") else {}
            current = body.get("status") if response.status_code == 200 else f"HTTP {response.status_code}"
            if not seen or seen[-1] != current:
                seen.append(current)
            return body if current == status else None

        try:
            return wait_until(reached, timeout, what=f"{tracking_id} to be {status!r} in the status API")
        except HarnessError as exc:
            raise HarnessError(f"{exc}; statuses seen: {seen}") from None

    def wait_filed(self, tracking_ids: Iterable[str], timeout: float = 30) -> None:
        """Barrier: every ticket has left ``received`` (its filing job saved the issue and finished)."""
        ids = list(tracking_ids)

        def all_filed() -> bool:
            return all(self.api_status(tid) not in (None, "received") for tid in ids)

        wait_until(all_filed, timeout, what=f"the status API to show {ids} as filed")

    # -- the tracker sandbox -----------------------------------------------------------------------

    def sandbox_get(self, path: str, **params: Any) -> Any:
        response = self.http.get(f"{self.sandbox_url}{path}", params=params, timeout=10)
        response.raise_for_status()
        return response.json()

    def state(self) -> dict[str, Any]:
        return dict(self.sandbox_get("/_sandbox/state"))

    def issues(self, state: dict[str, Any] | None = None) -> list[Issue]:
        """All issues of this stack's tracker."""
        state = state or self.state()
        if self.tracker == "gitlab":
            return [Issue.gitlab(i) for i in state["gitlab"]["issues"]]
        return [Issue.jira(i) for i in state["jira"]["issues"]]

    def issues_for(self, tracking_id: str) -> list[Issue]:
        return [issue for issue in self.issues() if issue.tracking_id == tracking_id]

    def wait_issue(self, tracking_id: str, timeout: float = 20) -> Issue:
        found = wait_until(lambda: self.issues_for(tracking_id), timeout, what=f"an issue for {tracking_id}")
        return found[0]

    def current_and_next_sprint(self) -> tuple[str, str]:
        """The names of the sandbox's current and next sprint, as README's "Connecting" sections define them."""
        state = self.state()
        if self.tracker == "gitlab":
            today = state["today"]
            active = [m for m in state["gitlab"]["milestones"] if m["state"] == "active" and m.get("start_date")]
            current = next(m for m in active if m["start_date"] <= today <= m["due_date"])
            later = sorted((m for m in active if m["start_date"] > current["due_date"]), key=lambda m: m["start_date"])
            return current["title"], later[0]["title"]
        sprints = state["jira"]["sprints"]
        current = next(s for s in sprints if s["state"] == "active")
        future = next(s for s in sprints if s["state"] == "future")
        return current["name"], future["name"]

    def requests_log(self, **filters: Any) -> list[dict[str, Any]]:
        return list(self.sandbox_get("/_sandbox/requests", tracker=self.tracker, **filters)["requests"])

    def last_request_id(self) -> int:
        entries = self.sandbox_get("/_sandbox/requests")["requests"]
        return max((int(e["id"]) for e in entries), default=0)

    def add_fault(self, **rule: Any) -> None:
        response = self.http.post(
            f"{self.sandbox_url}/_sandbox/faults", json={"tracker": self.tracker, **rule}, timeout=10
        )
        assert response.status_code == 200, response.text

    def clear_faults(self) -> None:
        self.http.delete(f"{self.sandbox_url}/_sandbox/faults", timeout=10).raise_for_status()

    def act(self, issue: Issue | str, action: str, text: str = "", *, internal: bool = False, **extra: Any) -> str:
        """Act as the developer in the sandbox (what ``python -m sandbox act`` does); fires webhooks."""
        key = issue.key if isinstance(issue, Issue) else issue
        body = {"tracker": self.tracker, "issue": key, "action": action, "text": text, "internal": internal, **extra}
        response = self.http.post(f"{self.sandbox_url}/_sandbox/act", json=body, timeout=10)
        assert response.status_code == 200, f"act {action} on {key}: {response.status_code} {response.text}"
        return str(response.json()["message"])
