"""Fixtures: a real sandbox server on a free loopback port, a webhook receiver, the real client libraries."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import gitlab
import jira
import pytest
import requests

from sandbox.config import SandboxConfig
from sandbox.server import SandboxServer

GITLAB_TOKEN = "glpat-test-token"
JIRA_USER = "bridge@example.com"
JIRA_TOKEN = "jira-test-token"
GITLAB_SECRET = "gitlab-hook-secret"
JIRA_SECRET = "jira-hook-secret"
TODAY = date(2026, 11, 25)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A loopback HTTP server recording every POST; ``fail_next`` statuses are answered first."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 5.0) -> list[Received]:
        deadline = time.time() + timeout
        with self.cond:
            while not predicate(self.received):
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError(f"receiver timed out; got {[r.path for r in self.received]}")
                self.cond.wait(left)
            return list(self.received)

    def wait_count(self, count: int, path: str | None = None, timeout: float = 5.0) -> list[Received]:
        def matching(items: list[Received]) -> list[Received]:
            return [r for r in items if path is None or r.path == path]

        self.wait_for(lambda items: len(matching(items)) >= count, timeout)
        with self.cond:
            return matching(self.received)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with state.cond:
                status = state.fail_next.pop(0) if state.fail_next else 200
                state.received.append(Received(self.path, dict(self.headers.items()), body))
                state.cond.notify_all()
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def sandbox_config(receiver: Receiver) -> SandboxConfig:
    return SandboxConfig(
        gitlab_token=GITLAB_TOKEN,
        jira_user=JIRA_USER,
        jira_token=JIRA_TOKEN,
        gitlab_webhook_url=f"{receiver.url}/gitlab",
        gitlab_webhook_secret=GITLAB_SECRET,
        jira_webhook_url=f"{receiver.url}/jira",
        jira_webhook_secret=JIRA_SECRET,
        webhook_retry_base_s=0.05,
        webhook_timeout_s=2.0,
        seed=7,
        seed_today=TODAY,
    )


@pytest.fixture
def sandbox_server(sandbox_config: SandboxConfig) -> Iterator[SandboxServer]:
    server = SandboxServer(sandbox_config, quiet=True).start()
    yield server
    server.stop()


@pytest.fixture
def url(sandbox_server: SandboxServer) -> str:
    return sandbox_server.url


@pytest.fixture
def http(url: str) -> Iterator[requests.Session]:
    """A raw session authenticated for both trackers (GitLab token header plus Jira basic auth)."""
    with requests.Session() as session:
        session.headers["PRIVATE-TOKEN"] = GITLAB_TOKEN
        session.auth = (JIRA_USER, JIRA_TOKEN)
        yield session


@pytest.fixture
def gl(url: str) -> Iterator[gitlab.Gitlab]:
    with gitlab.Gitlab(url, private_token=GITLAB_TOKEN) as client:
        yield client


@pytest.fixture
def jr(url: str) -> Iterator[jira.JIRA]:
    client = jira.JIRA(url, basic_auth=(JIRA_USER, JIRA_TOKEN), max_retries=0)
    yield client
    client.close()  # type: ignore[no-untyped-call]


def set_faults(url: str, *rules: dict[str, Any]) -> None:
    response = requests.post(f"{url}/_sandbox/faults", json={"rules": list(rules)}, timeout=5)
    response.raise_for_status()


def new_jira_issue(session: requests.Session, url: str, summary: str, **fields: Any) -> dict[str, Any]:
    body = {"fields": {"project": {"key": "SUP"}, "issuetype": {"name": "Bug"}, "summary": summary, **fields}}
    response = session.post(f"{url}/rest/api/2/issue", json=body, timeout=5)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data
