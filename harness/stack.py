"""The stack: tracker sandbox, SMTP sink, migrations, bridge web (gunicorn) and worker(s), on loopback.

The processes are configured only through CONTRACT section 7's environment variables (what the
shipped ``config.yaml`` reads), set on top of the caller's environment with every such variable
taken out first, and through a copy of ``config.yaml`` with a few scalar edits (``write_config``):
its instance directory (the embedded SQLite queue, the metrics) is the stack's own, and
``mappings_dir`` is made absolute. gunicorn's address and sizes are command-line options, so no
variable of ``gunicorn.conf.py`` is set either.

Each process writes its stdout and stderr to files under ``<root>/logs`` (``Stack.tails()`` shows
their ends). Waiting is always polling against a deadline, never a long fixed sleep. ``stop()`` ends
every process the stack started, with its process group; a stack that was started and not stopped
is stopped when this process exits (``stop_all``).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from harness.mail import MailSink
from harness.process import PYTHON, REPO, HarnessError, Process, descendants, free_port, wait_until

BRIDGE_APP = "wsgi:app"
"""The Procfile's WSGI app; any other app (a benchmark's yardstick) runs without migrations or worker."""

# Loopback test credentials, shared by the stack's processes and whoever drives them.
SIGNING_SECRET = "harness-signing-secret"  # noqa: S105
API_TOKEN = "harness-api-token"  # noqa: S105
GITLAB_TOKEN = "harness-gitlab-token"  # noqa: S105
GITLAB_WEBHOOK_SECRET = "harness-gitlab-webhook-secret"  # noqa: S105
JIRA_USER = "bridge@example.com"
JIRA_TOKEN = "harness-jira-token"  # noqa: S105
JIRA_WEBHOOK_SECRET = "harness-jira-webhook-secret"  # noqa: S105
SECRET_KEY = "harness-secret-key"  # noqa: S105
MAIL_FROM = "support@bridge.example"

CONTRACT_VARIABLES = frozenset(
    {
        "BRIDGE_CONFIG",
        "PORT",
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
        "MAIL_FROM",
        "NOTIFY_DEBOUNCE_SECONDS",
        "CHATBOT_SIGNING_SECRET",
        "CHATBOT_API_TOKEN",
        "EMAIL_INBOUND_TOKEN",
        "MAILGUN_SIGNING_KEY",
        "BRIDGE_PUBLIC_URL",
        "BRIDGE_SECRET_KEY",
        "BRIDGE_ADMIN_TOKEN",
        "CHATBOT_CALLBACK_URL",
        "MAIL_REPLY_TO",
        "SMTP_TLS",
        "SMTP_CA_FILE",
        "IMAP_ENABLED",
        "IMAP_HOST",
        "IMAP_PORT",
        "IMAP_TLS",
        "IMAP_STARTTLS",
        "IMAP_CA_FILE",
        "IMAP_USER",
        "IMAP_PASSWORD",
        "IMAP_FOLDER",
        "IMAP_PROCESSED_FOLDER",
        "RETENTION_DAYS",
        "ATTACHMENTS_ALLOWED_HOSTS",
        "PROMETHEUS_MULTIPROC_DIR",
        "WORKER_METRICS_PORT",
        "LOG_FORMAT",
        "LOG_LEVEL",
    }
)
"""CONTRACT section 7: every environment variable the shipped config.yaml and the processes read."""

GUNICORN_VARIABLES = frozenset(
    {"BIND", "WEB_CONCURRENCY", "WEB_CONNECTIONS", "GUNICORN_CMD_ARGS", "ACCESS_LOG", "FORWARDED_ALLOW_IPS"}
)
"""What gunicorn and ``gunicorn.conf.py`` read besides PORT: never passed on (see ``Stack.web_argv``)."""


def _keeping_key(value: str) -> Callable[[re.Match[str]], str]:
    """A ``re.sub`` replacement: the matched ``key:`` prefix, then ``value`` taken literally."""
    return lambda match: match.group(1) + value


def edit_yaml_scalars(path: Path, edits: Mapping[str, str]) -> None:
    """Replace the value of ``key: value`` lines (each key exactly once) in a YAML file, keeping comments."""
    content = path.read_text()
    for key, value in edits.items():
        pattern = rf"(?m)^(\s*{re.escape(key)}:\s*)[^\s#]+"
        content, count = re.subn(pattern, _keeping_key(value), content)
        if count != 1:
            raise HarnessError(f"{path}: expected exactly one {key!r} line to edit, found {count}")
    path.write_text(content)


def write_config(path: Path, *, instance_dir: Path, edits: Mapping[str, str] | None = None) -> Path:
    """A copy of the shipped ``config.yaml`` at ``path`` with scalar edits, nothing else.

    Always ``server.instance_dir`` (config.yaml reads no environment variable for it) and
    ``mappings_dir`` (relative paths are resolved against the config file's directory, so the
    repository's ``mappings/`` as an absolute path); then ``edits`` (values as YAML scalars).
    """
    path.write_text((REPO / "config.yaml").read_text())
    base = {"instance_dir": json.dumps(str(instance_dir)), "mappings_dir": json.dumps(str(REPO / "mappings"))}
    edit_yaml_scalars(path, {**base, **(edits or {})})
    return path


def inherited_environment() -> dict[str, str]:
    """This process's environment without anything the bridge, its config or gunicorn would read."""
    ignored = CONTRACT_VARIABLES | GUNICORN_VARIABLES
    return {key: value for key, value in os.environ.items() if key not in ignored}


LIVE: set[Stack] = set()
"""Stacks started and not yet stopped."""


def stop_all() -> None:
    """Stop every stack still running (at exit, or when a run is interrupted)."""
    for stack in list(LIVE):
        stack.stop()


atexit.register(stop_all)


class Stack:
    """Sandbox + SMTP sink + gunicorn serving ``app`` + ``workers`` bridge worker processes, under ``root``.

    ``config``: scalar edits of the config copy (``write_config``). ``env``: CONTRACT section 7
    variables to set or override. ``sandbox_args`` and ``gunicorn_args`` are added to those command
    lines. ``mail``: the SMTP sink to use (a subclass that indexes what it receives), else a plain one.
    """

    def __init__(
        self,
        root: Path,
        *,
        tracker: str = "gitlab",
        app: str = BRIDGE_APP,
        workers: int = 1,
        sandbox: bool = True,
        database_url: str | None = None,
        redis_url: str | None = None,
        config: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        sandbox_args: Sequence[str] = (),
        gunicorn_args: Sequence[str] = (),
        mail: MailSink | None = None,
    ) -> None:
        unknown = sorted(set(env or {}) - CONTRACT_VARIABLES)
        if unknown:
            raise HarnessError(f"not CONTRACT section 7 variables: {unknown}")
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.tracker = tracker
        self.app = app
        self.sandbox_port, self.web_port = free_port(), free_port()
        self.sandbox_url = f"http://127.0.0.1:{self.sandbox_port}"
        self.web_url = f"http://127.0.0.1:{self.web_port}"
        self.mail = mail if mail is not None else MailSink()
        self.config_path = write_config(root / "config.yaml", instance_dir=root / "instance", edits=config)
        self.database_url = database_url or f"sqlite:///{root / 'bridge.db'}"
        self.http = requests.Session()
        # Polling GETs may meet a keep-alive connection the server closed at that instant (gunicorn's
        # keepalive, a restart): retry those transport errors. POSTs are never retried here.
        transport_only = Retry(total=2, connect=2, read=2, status=0, allowed_methods={"GET"}, backoff_factor=0.1)
        self.http.mount("http://", HTTPAdapter(max_retries=transport_only))

        # One dict, shared by every process of the stack.
        self.env = {**inherited_environment(), "PYTHONUNBUFFERED": "1", **self._bridge_environment(redis_url)}
        self.env.update(env or {})
        self.logs = root / "logs"
        self.logs.mkdir(exist_ok=True)
        self.sandbox = self._process("sandbox", [*self.sandbox_argv(), *sandbox_args]) if sandbox else None
        self.web = self._process("web", [*self.web_argv(), *gunicorn_args, app])
        count = workers if self.is_bridge else 0
        self.workers = [
            self._process("worker" if count == 1 else f"worker{n}", [PYTHON, "-m", "bridge.worker"])
            for n in range(1, count + 1)
        ]

    def _process(self, name: str, argv: list[str]) -> Process:
        return Process(name, argv, env=self.env, log_dir=self.logs)

    def _bridge_environment(self, redis_url: str | None) -> dict[str, str]:
        env = {
            "BRIDGE_CONFIG": str(self.config_path),
            "PORT": str(self.web_port),
            "DATABASE_URL": self.database_url,
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
            "SMTP_PORT": str(self.mail.port),
            "SMTP_STARTTLS": "false",
            "MAIL_FROM": MAIL_FROM,
            "NOTIFY_DEBOUNCE_SECONDS": "1",
            "CHATBOT_SIGNING_SECRET": SIGNING_SECRET,
            "CHATBOT_API_TOKEN": API_TOKEN,
            "BRIDGE_PUBLIC_URL": self.web_url,
            # Set, so the web workers and the worker never race to generate instance/secret_key.
            "BRIDGE_SECRET_KEY": SECRET_KEY,
            "LOG_FORMAT": "json",
        }
        if redis_url:
            env["REDIS_URL"] = redis_url
        return env

    def sandbox_argv(self) -> list[str]:
        return [
            PYTHON, "-m", "sandbox", "serve",
            "--host", "127.0.0.1", "--port", str(self.sandbox_port),
            "--gitlab-token", GITLAB_TOKEN, "--jira-user", JIRA_USER, "--jira-token", JIRA_TOKEN,
            "--gitlab-webhook-url", f"{self.web_url}/webhooks/gitlab", "--gitlab-webhook-secret", GITLAB_WEBHOOK_SECRET,
            "--jira-webhook-url", f"{self.web_url}/webhooks/jira", "--jira-webhook-secret", JIRA_WEBHOOK_SECRET,
            "--webhook-retry-base", "0.2", "--quiet",
        ]  # fmt: skip

    def web_argv(self) -> list[str]:
        """The Procfile's gunicorn, on loopback: ``--bind`` overrides the config file's all-interfaces bind."""
        return [PYTHON, "-m", "gunicorn", "-c", str(REPO / "gunicorn.conf.py"), "--bind", f"127.0.0.1:{self.web_port}"]

    @property
    def is_bridge(self) -> bool:
        return self.app == BRIDGE_APP

    @property
    def processes(self) -> list[Process]:
        return [*([self.sandbox] if self.sandbox else []), self.web, *self.workers]

    @property
    def worker(self) -> Process:
        """The first (in most stacks the only) worker process."""
        if not self.workers:
            raise HarnessError(f"{self.app} runs without a bridge worker")
        return self.workers[0]

    # -- life cycle --------------------------------------------------------------------------------

    def start(self, *, with_workers: bool = True) -> Self:
        """Start everything and wait until it answers; on any failure stop what started and say why."""
        LIVE.add(self)
        try:
            self.mail.start()
            if self.sandbox is not None:
                self.sandbox.start()
                self.wait_http(self.sandbox, f"{self.sandbox_url}/_sandbox/state", 30)
            if self.is_bridge:
                self.migrate()
            self.web.start()
            if with_workers:
                self.start_workers()
            self.wait_web()
            for _ in range(8):  # let every gunicorn worker build its app before anything is timed
                with contextlib.suppress(requests.RequestException):
                    self.http.get(f"{self.web_url}{self.ready_path}", timeout=5)
            for worker in self.workers if with_workers else []:
                if not worker.alive():
                    raise HarnessError(f"{worker.name} exited with {worker.exit_code()} during start-up")
        except BaseException as exc:
            message = f"the stack in {self.root} did not start: {exc}\n\n{self.tails()}"
            self.stop()
            if isinstance(exc, Exception):
                raise HarnessError(message) from exc
            raise
        return self

    def migrate(self) -> None:
        """``python -m bridge migrate`` (the Procfile's release step)."""
        done = subprocess.run(  # noqa: S603 - our own interpreter and fixed arguments
            [PYTHON, "-m", "bridge", "migrate"], cwd=REPO, env=self.env, capture_output=True, timeout=120, check=False
        )
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace")
            raise HarnessError(f"python -m bridge migrate exited {done.returncode}:\n{output[-4000:]}")

    @property
    def ready_path(self) -> str:
        return "/readyz" if self.is_bridge else "/healthz"

    def wait_http(self, process: Process, url: str, timeout: float) -> None:
        """Wait until ``url`` answers 200; fail at once if ``process`` exits."""

        def up() -> bool:
            if not process.alive():
                raise HarnessError(f"{process.name} exited with {process.exit_code()}")
            return self.http.get(url, timeout=5).status_code == 200

        wait_until(
            up,
            timeout,
            what=f"{process.name} at {url}",
            interval=0.1,
            ignore=(requests.ConnectionError, requests.Timeout),
        )

    def wait_web(self, timeout: float = 40) -> None:
        self.wait_http(self.web, f"{self.web_url}{self.ready_path}", timeout)

    def stop(self) -> None:
        """Stop every process (workers first, the sandbox last) and the SMTP sink; never raises."""
        LIVE.discard(self)
        for process in reversed(self.processes):
            try:
                process.stop()
            except Exception as exc:  # keep stopping the others
                print(f"stopping {process.name} failed: {exc!r}", file=sys.stderr)
        try:
            self.mail.stop()
        except Exception as exc:
            print(f"stopping the SMTP sink failed: {exc!r}", file=sys.stderr)
        self.http.close()

    # -- kills and restarts ------------------------------------------------------------------------

    def start_workers(self) -> None:
        for worker in self.workers:
            if not worker.alive():
                worker.start()

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop()

    def kill_worker(self, index: int = 0) -> None:
        """SIGKILL a worker mid-whatever (its jobs are taken again once their lease runs out)."""
        self.workers[index].kill()

    def start_worker(self, index: int = 0) -> None:
        self.workers[index].start()

    def kill_web(self) -> None:
        """SIGKILL gunicorn's master and its workers at once: the web is gone."""
        self.web.kill()

    def start_web(self, timeout: float = 40) -> None:
        """Start gunicorn again and wait until it answers."""
        self.web.start()
        self.wait_web(timeout)

    def web_worker_pids(self) -> list[int]:
        """gunicorn's worker processes (the master's descendants)."""
        return descendants(self.web.pid) if self.web.alive() else []

    def kill_web_worker(self, pick: int) -> int | None:
        """SIGKILL one gunicorn worker, number ``pick`` modulo their count (the master forks a new one);
        returns its pid, or None when there was none."""
        pids = self.web_worker_pids()
        if not pids:
            return None
        pid = pids[pick % len(pids)]
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        return pid

    def tails(self, lines: int = 40) -> str:
        return "\n\n".join(process.tail(lines) for process in self.processes)

    # -- the tracker sandbox -----------------------------------------------------------------------

    def sandbox_get(self, path: str, **params: Any) -> Any:
        response = self.http.get(f"{self.sandbox_url}{path}", params=params, timeout=60)
        response.raise_for_status()
        return response.json()

    def state(self) -> dict[str, Any]:
        return dict(self.sandbox_get("/_sandbox/state"))

    def last_request_id(self) -> int:
        entries = self.sandbox_get("/_sandbox/requests")["requests"]
        return max((int(entry["id"]) for entry in entries), default=0)
