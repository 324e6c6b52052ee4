"""What the tracker sandbox saw: its request log and webhook deliveries, read incrementally.

The sandbox keeps the last 20,000 requests and 5,000 webhook deliveries; a soak makes more, so a
thread reads the request log every few seconds (``?since=<last id>``) and the delivery log often
enough that nothing scrolls out unseen, and keeps counts.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import requests


@dataclass
class Observed:
    requests: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    by_fault: Counter[str] = field(default_factory=Counter)
    """``outage``, ``status_window``, ``rate_limit``, ``create_then_502`` (answers the faults produced)."""
    by_tracker: Counter[str] = field(default_factory=Counter)
    creates: Counter[str] = field(default_factory=Counter)
    """create_issue POSTs by answer: ``201``, ``502`` (create_then_502: created!), ``429``, ..."""
    missing_project_404: int = 0
    sprint_calls: Counter[int] = field(default_factory=Counter)
    """Jira "add issues to sprint" calls by answer (400: the sprint had closed)."""
    last_request_id: int = 0
    deliveries: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Webhook delivery id -> {tracker, event, copy, outcome, attempts, delay_s} (last seen)."""


class SandboxObserver:
    def __init__(self, sandbox_url: str, *, missing_project: str, interval: float = 2.0) -> None:
        self.url = sandbox_url
        self.missing_project = (missing_project, missing_project.replace("/", "%2F"))
        self.data = Observed()
        self.interval = interval
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-observer", daemon=True)
        self._http = requests.Session()
        self._polls = 0
        self.webhooks_idle = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        try:
            self.poll(webhooks=True)
        except requests.RequestException:
            pass  # the counts so far stand
        finally:
            self._http.close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._polls += 1
            try:
                # The delivery log is big (bodies included): read it every tenth time (it holds the
                # last 5,000 deliveries, minutes of a soak).
                self.poll(webhooks=self._polls % 10 == 0)
            except requests.RequestException:
                continue  # the sandbox is busy; the next poll reads from the same id

    def poll(self, *, webhooks: bool) -> None:
        with self._lock:
            since = self.data.last_request_id
        entries = self._http.get(f"{self.url}/_sandbox/requests", params={"since": since}, timeout=30).json()
        with self._lock:
            for entry in entries["requests"]:
                if entry["id"] <= self.data.last_request_id:
                    continue
                self.data.last_request_id = entry["id"]
                self.data.requests += 1
                status = int(entry["status"])
                self.data.by_status[status] += 1
                self.data.by_tracker[str(entry.get("tracker"))] += 1
                if entry.get("fault"):
                    self.data.by_fault[str(entry["fault"])] += 1
                if entry.get("endpoint") == "create_issue" and entry.get("method") == "POST":
                    self.data.creates[str(status)] += 1
                if status == 404 and any(m in str(entry.get("path", "")) for m in self.missing_project):
                    self.data.missing_project_404 += 1
                if entry.get("endpoint") == "add_sprint_issues" and not entry.get("fault"):
                    self.data.sprint_calls[status] += 1
        if webhooks:
            self.poll_webhooks()

    def poll_webhooks(self) -> bool:
        """Read the delivery log; True when the sandbox has nothing left to send."""
        body = self._http.get(f"{self.url}/_sandbox/webhooks", timeout=60).json()
        with self._lock:
            for d in body["deliveries"]:
                attempts = d.get("attempts") or []
                first = attempts[0]["at"] if attempts else None
                self.data.deliveries[int(d["id"])] = {
                    "tracker": d["tracker"],
                    "event": d["event"],
                    "copy": d["copy"],
                    "outcome": d["outcome"],
                    "attempts": len(attempts),
                    "delay_s": None if first is None else round(first - float(d["created"]), 3),
                }
            self.webhooks_idle = bool(body.get("idle"))
        return self.webhooks_idle

    def summary(self) -> dict[str, Any]:
        with self._lock:
            data = self.data
            deliveries = list(data.deliveries.values())
            status_5xx = sum(n for status, n in data.by_status.items() if status >= 500)
            return {
                "tracker_requests": data.requests,
                "tracker_requests_by_tracker": dict(data.by_tracker),
                "answers_429": data.by_status.get(429, 0),
                "answers_5xx": status_5xx,
                "answers_by_fault": dict(data.by_fault),
                "creates_by_answer": dict(data.creates),
                "created_but_answered_502": data.by_fault.get("create_then_502", 0),
                "missing_project_404": data.missing_project_404,
                "jira_sprint_calls": sum(data.sprint_calls.values()),
                "jira_sprint_calls_refused": data.sprint_calls.get(400, 0),
                "webhook_deliveries": len(deliveries),
                "webhook_duplicate_copies": sum(1 for d in deliveries if d["copy"] > 1),
                "webhook_delayed": sum(1 for d in deliveries if (d["delay_s"] or 0) >= 0.2),
                "webhook_retried": sum(1 for d in deliveries if d["attempts"] > 1),
                "webhook_failed": sum(1 for d in deliveries if d["outcome"] == "failed"),
                "webhook_outcomes": dict(Counter(d["outcome"] for d in deliveries)),
            }
