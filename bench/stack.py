"""The processes a benchmark phase runs: tracker sandbox, SMTP sink, gunicorn (bridge or a
comparison app) and bridge workers, all on loopback and configured only through the environment.

Every phase builds a fresh ``Stack`` (fresh database, queue and sandbox) so that one phase's
backlog never steals CPU from the next. Processes write their output to files in the run's
directory; ``Stack.stop()`` ends exactly the processes it started (their process groups).
"""

from __future__ import annotations

import contextlib
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
from pathlib import Path
from typing import IO, Any

import requests
from aiosmtpd.controller import Controller

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

SIGNING_SECRET = "bench-signing-secret"  # noqa: S105 - a loopback test credential
API_TOKEN = "bench-api-token"  # noqa: S105 - a loopback test credential
GITLAB_TOKEN = "bench-gitlab-token"  # noqa: S105 - a loopback test credential
GITLAB_WEBHOOK_SECRET = "bench-gitlab-webhook-secret"  # noqa: S105 - a loopback test credential
JIRA_USER = "bridge@example.com"
JIRA_TOKEN = "bench-jira-token"  # noqa: S105 - a loopback test credential
JIRA_WEBHOOK_SECRET = "bench-jira-webhook-secret"  # noqa: S105 - a loopback test credential
MAIL_FROM = "support@bridge.example"

PG_BASE = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")

# Variables the bridge, config.yaml or gunicorn.conf.py read: never inherited from the caller.
_OWN_VARS = frozenset(
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
    }
)


LIVE: set[Stack] = set()
"""Stacks started and not yet stopped: ``stop_all()`` ends them if the run is interrupted."""


def stop_all() -> None:
    for stack in list(LIVE):
        stack.stop()


class BenchError(RuntimeError):
    """A process did not start or a wait ran out."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float, *, alive: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise BenchError(f"process for {url} exited during start-up")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise BenchError(f"timed out waiting for {url}")


# --- processes --------------------------------------------------------------------------------------


class Process:
    """One child in a session of its own (so its children, e.g. gunicorn's workers, stop with it)."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str], log_dir: Path) -> None:
        self.name, self.argv, self.env = name, argv, env
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> Process:
        self._log = self.log_path.open("ab")
        self.popen = subprocess.Popen(  # noqa: S603 - our own interpreter and fixed arguments
            self.argv,
            cwd=REPO,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 15) -> None:
        if self.popen is None:
            return
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)  # the group we created: leftovers of this process only
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def tree_pids(self) -> list[int]:
        """This process and its descendants (gunicorn master + workers)."""
        if not self.alive():
            return []
        return [self.pid, *descendants(self.pid)]


def descendants(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            children += [int(c) for c in (task / "children").read_text().split()]
    found = list(children)
    for child in children:
        found += descendants(child)
    return found


def rss_mib(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the given processes (from /proc/<pid>/stat), in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / ticks


# --- mail ---------------------------------------------------------------------------------------------


class MailSink:
    """aiosmtpd in this process: keeps (arrival time, recipients, subject) of every message."""

    def __init__(self) -> None:
        self.port = free_port()
        self._lock = threading.Lock()
        self.received: list[tuple[float, tuple[str, ...], str]] = []
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd's hook name
        arrived = time.time()
        subject = ""
        content: bytes = envelope.original_content or envelope.content or b""
        match = re.search(rb"^Subject: (.*)$", content, re.MULTILINE)
        if match:
            subject = match.group(1).decode(errors="replace").strip()
        with self._lock:
            self.received.append((arrived, tuple(r.lower() for r in envelope.rcpt_tos), subject))
        return "250 Message accepted for delivery"

    def start(self) -> MailSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._controller.stop()

    def to(self, address: str) -> list[tuple[float, str]]:
        address = address.lower()
        with self._lock:
            return [(t, subject) for t, rcpts, subject in self.received if address in rcpts]

    def count(self) -> int:
        with self._lock:
            return len(self.received)


# --- databases ----------------------------------------------------------------------------------------


def new_pg_schema() -> tuple[str, str]:
    """A fresh schema in the bench PostgreSQL; returns (DATABASE_URL, schema)."""
    from sqlalchemy import create_engine, text

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_BASE)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    admin.dispose()
    sep = "&" if "?" in PG_BASE else "?"
    return f"{PG_BASE}{sep}options=-csearch_path%3D{schema}", schema


def drop_pg_schema(schema: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_BASE)
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    admin.dispose()


def flush_redis() -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    client.close()


# --- the stack ----------------------------------------------------------------------------------------


def write_config(path: Path, *, instance_dir: Path) -> Path:
    """config.yaml with the instance directory (embedded SQLite queue) and mappings made absolute."""
    text = (REPO / "config.yaml").read_text()
    for key, value in {"instance_dir": str(instance_dir), "mappings_dir": str(REPO / "mappings")}.items():
        replacement = json.dumps(value).replace("\\", "\\\\")
        text, count = re.subn(rf"(?m)^(\s*{key}:\s*)[^\s#]+", rf"\g<1>{replacement}", text)
        if count != 1:
            raise BenchError(f"config.yaml: expected one {key!r} line, found {count}")
    path.write_text(text)
    return path


class Stack:
    """Sandbox + SMTP sink + gunicorn serving ``app`` + ``workers`` bridge worker processes."""

    def __init__(
        self,
        root: Path,
        *,
        app: str = "wsgi:app",
        tracker_latency_ms: int = 0,
        workers: int = 1,
        postgres: bool = False,
        extra_env: dict[str, str] | None = None,
        sandbox: bool = True,
        mail: bool = True,
    ) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.app = app
        self.n_workers = workers
        self.sandbox_port, self.web_port = free_port(), free_port()
        self.sandbox_url = f"http://127.0.0.1:{self.sandbox_port}"
        self.web_url = f"http://127.0.0.1:{self.web_port}"
        self.mail = MailSink() if mail else None
        self.schema: str | None = None
        if postgres:
            self.database_url, self.schema = new_pg_schema()
            flush_redis()
        else:
            self.database_url = f"sqlite:///{root / 'bridge.db'}"
        self.postgres = postgres
        self.http = requests.Session()
        env = {k: v for k, v in os.environ.items() if k not in _OWN_VARS}
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "BRIDGE_CONFIG": str(write_config(root / "config.yaml", instance_dir=root / "instance")),
                "DATABASE_URL": self.database_url,
                "BRIDGE_TRACKER": "gitlab",
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
                "MAIL_FROM": MAIL_FROM,
                "NOTIFY_DEBOUNCE_SECONDS": "0",
                "CHATBOT_SIGNING_SECRET": SIGNING_SECRET,
                "CHATBOT_API_TOKEN": API_TOKEN,
                "BRIDGE_PUBLIC_URL": self.web_url,
                "BRIDGE_SECRET_KEY": "bench-secret-key",
                "LOG_FORMAT": "json",
                "PORT": str(self.web_port),
                "BIND": f"127.0.0.1:{self.web_port}",
                "SANDBOX_URL": self.sandbox_url,  # the naive comparison app's tracker
            }
        )
        if self.mail is not None:
            env.update({"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(self.mail.port), "SMTP_STARTTLS": "false"})
        if postgres:
            env["REDIS_URL"] = REDIS_URL
        # Experiments with the gunicorn settings apply to every app alike (bridge, baseline, naive).
        for knob, variable in (("BENCH_WEB_CONCURRENCY", "WEB_CONCURRENCY"), ("BENCH_WEB_THREADS", "WEB_THREADS")):
            if os.environ.get(knob):
                env[variable] = os.environ[knob]
        env.update(extra_env or {})
        self.env = env
        logs = root / "logs"
        logs.mkdir(exist_ok=True)
        self.logs = logs
        self.sandbox = (
            Process("sandbox", self._sandbox_argv(tracker_latency_ms), env=env, log_dir=logs) if sandbox else None
        )
        web_argv = [PYTHON, "-m", "gunicorn", "-c", str(REPO / "gunicorn.conf.py")]
        web_argv += ["--control-socket", str(root / "gunicorn.ctl"), app]
        self.web = Process("web", web_argv, env=env, log_dir=logs)
        self.workers: list[Process] = []

    def _sandbox_argv(self, latency_ms: int) -> list[str]:
        return [
            PYTHON, "-m", "sandbox", "serve", "--host", "127.0.0.1", "--port", str(self.sandbox_port),
            "--gitlab-token", GITLAB_TOKEN, "--jira-user", JIRA_USER, "--jira-token", JIRA_TOKEN,
            "--gitlab-webhook-url", f"{self.web_url}/webhooks/gitlab", "--gitlab-webhook-secret", GITLAB_WEBHOOK_SECRET,
            "--jira-webhook-url", f"{self.web_url}/webhooks/jira", "--jira-webhook-secret", JIRA_WEBHOOK_SECRET,
            "--webhook-retry-base", "0.2", "--latency-ms", str(latency_ms), "--quiet",
        ]  # fmt: skip

    @property
    def is_bridge(self) -> bool:
        return self.app == "wsgi:app"

    def start(self, *, with_workers: bool = True) -> Stack:
        LIVE.add(self)
        try:
            if self.mail is not None:
                self.mail.start()
            if self.sandbox is not None:
                self.sandbox.start()
                wait_http(f"{self.sandbox_url}/_sandbox/state", 30, alive=self.sandbox.alive)
            if self.is_bridge:
                migrate = subprocess.run(  # noqa: S603 - our own interpreter and fixed arguments
                    [PYTHON, "-m", "bridge", "migrate"], cwd=REPO, env=self.env, capture_output=True, check=False
                )
                if migrate.returncode != 0:
                    raise BenchError(f"migrate failed: {(migrate.stdout + migrate.stderr).decode()[-2000:]}")
            self.web.start()
            wait_http(f"{self.web_url}/healthz", 30, alive=self.web.alive)
            for _ in range(8):  # both gunicorn workers build their app before anything is timed
                with contextlib.suppress(requests.RequestException):
                    self.http.get(f"{self.web_url}/healthz", timeout=5)
            if with_workers and self.is_bridge:
                self.start_workers()
        except BaseException:
            self.stop()
            raise
        return self

    def start_workers(self, count: int | None = None) -> None:
        for _ in range(self.n_workers if count is None else count):
            name = f"worker{len(self.workers) + 1}"
            self.workers.append(Process(name, [PYTHON, "-m", "bridge.worker"], env=self.env, log_dir=self.logs).start())

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers = []

    def stop(self) -> None:
        LIVE.discard(self)
        for process in [*self.workers, self.web, *([self.sandbox] if self.sandbox else [])]:
            try:
                process.stop()
            except Exception as exc:  # keep stopping the others
                print(f"stopping {process.name} failed: {exc!r}", file=sys.stderr)
        self.workers = []
        if self.mail is not None:
            self.mail.stop()
        self.http.close()
        if self.schema is not None:
            with contextlib.suppress(Exception):
                drop_pg_schema(self.schema)

    # -- observations ----------------------------------------------------------------------------------

    def memory(self) -> dict[str, float]:
        """RSS in MiB: gunicorn master and each web worker, each bridge worker process."""
        out: dict[str, float] = {}
        pids = self.web.tree_pids()
        if pids:
            out["web_master"] = round(rss_mib(pids[0]), 1)
            for i, pid in enumerate(pids[1:], 1):
                out[f"web_worker{i}"] = round(rss_mib(pid), 1)
        for worker in self.workers:
            for i, pid in enumerate(worker.tree_pids()):
                out[worker.name + (f".{i}" if i else "")] = round(rss_mib(pid), 1)
        return out

    def web_pids(self) -> list[int]:
        return self.web.tree_pids()

    def sandbox_get(self, path: str, **params: Any) -> Any:
        response = self.http.get(f"{self.sandbox_url}{path}", params=params, timeout=60)
        response.raise_for_status()
        return response.json()

    def set_faults(self, rules: list[dict[str, Any]]) -> None:
        self.http.post(f"{self.sandbox_url}/_sandbox/faults", json={"rules": rules}, timeout=10).raise_for_status()

    def last_request_id(self) -> int:
        entries = self.sandbox_get("/_sandbox/requests")["requests"]
        return max((int(e["id"]) for e in entries), default=0)
