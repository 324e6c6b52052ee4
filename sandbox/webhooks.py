"""Webhook delivery: vendor headers and signatures, a background sender with retries, a delivery log.

Deliveries are planned under the sandbox lock (addresses, keys, faults) and sent by one background
thread, never while a request holds the lock. A retry reuses the delivery's ``Idempotency-Key`` /
``X-Atlassian-Webhook-Identifier``; Jira retries carry ``X-Atlassian-Webhook-Retry: n``.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import requests

from sandbox.events import HookEvent
from sandbox.faults import WebhookFaults

GITLAB_USER_AGENT = "GitLab/17.6.0"
JIRA_USER_AGENT = "Atlassian Webhook HTTP Client"
JIRA_RETRY_STATUSES = frozenset({408, 409, 425, 429})
LOG_LIMIT = 5000


@dataclass(frozen=True)
class Target:
    """Where one tracker's hook posts: the CLI/runtime target or one registered through the API."""

    tracker: str
    url: str
    secret: str | None
    hook: str
    """``default`` or the registered hook's id."""
    uuid: str


@dataclass
class Attempt:
    at: float
    status: int | None
    error: str | None
    duration_ms: int


@dataclass
class Delivery:
    id: int
    tracker: str
    event: str
    subject: str
    hook: str
    url: str
    key: str
    headers: dict[str, str]
    body: bytes
    copy: int
    created: float
    due: float
    attempts: list[Attempt] = field(default_factory=list)
    outcome: str = "pending"
    """``pending``, ``delivered``, ``failed``, ``dropped`` or ``cancelled``."""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tracker": self.tracker,
            "event": self.event,
            "subject": self.subject,
            "hook": self.hook,
            "url": self.url,
            "key": self.key,
            "copy": self.copy,
            "outcome": self.outcome,
            "created": self.created,
            "attempts": [a.__dict__ for a in self.attempts],
            "headers": self.headers,
            "body": json.loads(self.body),
        }


def sign(secret: str, body: bytes) -> str:
    """Jira's ``X-Hub-Signature`` value: ``sha256=<hex HMAC-SHA256(secret, raw body)>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def plan(
    event: HookEvent,
    targets: list[Target],
    faults: WebhookFaults,
    *,
    instance_url: str,
    ids: itertools.count[int],
) -> list[Delivery]:
    """The deliveries of ``event`` to every target, with the duplicate/delay/drop faults applied."""
    body = json.dumps(event.payload, ensure_ascii=False, separators=(",", ":")).encode()
    event_uuid = str(uuid.uuid4())
    now = time.time()
    deliveries = []
    for target in targets:
        key = str(uuid.uuid4())
        headers = {"Content-Type": "application/json"}
        if event.tracker == "gitlab":
            headers.update(
                {
                    "User-Agent": GITLAB_USER_AGENT,
                    "X-Gitlab-Event": event.name,
                    "X-Gitlab-Instance": instance_url,
                    "X-Gitlab-Webhook-UUID": target.uuid,
                    "X-Gitlab-Event-UUID": event_uuid,
                    "Idempotency-Key": key,
                }
            )
            if target.secret:
                headers["X-Gitlab-Token"] = target.secret
        else:
            headers.update({"User-Agent": JIRA_USER_AGENT, "X-Atlassian-Webhook-Identifier": key})
            if target.secret:
                headers["X-Hub-Signature"] = sign(target.secret, body)
        for copy in range(1, faults.copies + 1):
            delivery = Delivery(
                id=next(ids),
                tracker=event.tracker,
                event=event.name,
                subject=event.subject,
                hook=target.hook,
                url=target.url,
                key=key,
                headers=headers,
                body=body,
                copy=copy,
                created=now,
                due=now + faults.delay_s,
            )
            if faults.dropped:
                delivery.outcome = "dropped"
            deliveries.append(delivery)
    return deliveries


class Dispatcher:
    """One background thread sending due deliveries; failed ones are retried with doubling back-off."""

    def __init__(self, *, retry_base_s: float, max_attempts: int, timeout_s: float) -> None:
        self.retry_base_s = retry_base_s
        self.max_attempts = max_attempts
        self.timeout_s = timeout_s
        self._cond = threading.Condition()
        self._queue: list[tuple[float, int, Delivery]] = []
        self._log: deque[Delivery] = deque(maxlen=LOG_LIMIT)
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._busy = False

    def start(self) -> None:
        with self._cond:
            if self._thread is None:
                self._stopping = False
                self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=self.timeout_s + 1)

    def submit(self, deliveries: list[Delivery]) -> None:
        with self._cond:
            for delivery in deliveries:
                self._log.append(delivery)
                if delivery.outcome == "pending":
                    heapq.heappush(self._queue, (delivery.due, delivery.id, delivery))
            self._cond.notify_all()

    def reset(self) -> None:
        """Cancel pending deliveries and forget the log."""
        with self._cond:
            for _, _, delivery in self._queue:
                delivery.outcome = "cancelled"
            self._queue.clear()
            self._log.clear()

    def deliveries(self) -> list[dict[str, Any]]:
        with self._cond:
            return [d.to_json() for d in self._log]

    def idle(self) -> bool:
        with self._cond:
            return not self._queue and not self._busy

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (not self._queue or self._queue[0][0] > time.time()):
                    wait = self._queue[0][0] - time.time() if self._queue else None
                    self._cond.wait(timeout=wait)
                if self._stopping:
                    return
                _, _, delivery = heapq.heappop(self._queue)
                if delivery.outcome != "pending":
                    continue
                self._busy = True
            attempt = self._send(delivery)
            with self._cond:
                self._busy = False
                delivery.attempts.append(attempt)
                if attempt.status is not None and 200 <= attempt.status < 300:
                    delivery.outcome = "delivered"
                elif delivery.outcome != "pending":
                    pass
                elif self._retryable(delivery.tracker, attempt) and len(delivery.attempts) < self.max_attempts:
                    delivery.due = time.time() + self.retry_base_s * 2 ** (len(delivery.attempts) - 1)
                    heapq.heappush(self._queue, (delivery.due, delivery.id, delivery))
                else:
                    delivery.outcome = "failed"

    def _send(self, delivery: Delivery) -> Attempt:
        headers = dict(delivery.headers)
        retry = len(delivery.attempts)
        if retry and delivery.tracker == "jira":
            headers["X-Atlassian-Webhook-Retry"] = str(retry)
        started = time.time()
        try:
            response = requests.post(
                delivery.url,
                data=delivery.body,
                headers=headers,
                timeout=self.timeout_s,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            return Attempt(started, None, f"{type(exc).__name__}: {exc}", _ms(started))
        return Attempt(started, response.status_code, None, _ms(started))

    @staticmethod
    def _retryable(tracker: str, attempt: Attempt) -> bool:
        if attempt.status is None or tracker == "gitlab":
            return True
        return attempt.status in JIRA_RETRY_STATUSES or attempt.status >= 500


def _ms(started: float) -> int:
    return int((time.time() - started) * 1000)
