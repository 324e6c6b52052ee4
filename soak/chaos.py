"""What goes wrong during a soak, planned from a seeded RNG and carried out on a timeline.

Three lanes run side by side, each a thread working through its own sorted events:

- **tracker and mail**: sandbox fault rules (latency, 429 rate limit with Retry-After, 5xx windows,
  a full outage, "created but answered 502", duplicate and late webhooks) and SMTP downtime; Jira's
  current sprint is closed in the middle of the outage (reports are queued then, some already
  planned into it), and once the outage ends the next Jira create closes the sprint again while its
  answer is on the way (``close_sprint_after_create``);
- **worker**: SIGKILL of one worker process (of two on PostgreSQL), then a restart after a random pause;
- **web**: SIGKILL of gunicorn's whole process group and a restart, or SIGKILL of one gunicorn
  worker (the master forks a new one).

Fault rules are replaced as a whole on every change (``POST /_sandbox/faults {"rules": [...]}``),
with the remaining seconds of running windows and the unspent create-then-502 budget carried over.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import requests

from soak.stack import SoakStack, sleep_until


@dataclass(frozen=True)
class ChaosPlan:
    duration: float
    latency_ms: int
    webhook_delay_ms: int
    windows_5xx: list[tuple[float, float, int]]
    """(start, seconds, status)"""
    outage: tuple[float, float, int]
    """(start, seconds, Retry-After seconds)"""
    rate_limit: tuple[float, float, int]
    """(start, seconds, creates per minute)"""
    create_then_502: tuple[float, int]
    """(start, how many creates succeed but are answered 502)"""
    jira_sprint_close: float
    """When Jira's current sprint is closed (and the next started): inside the outage."""
    jira_close_after_create: tuple[float, int]
    """(armed at, how many Jira creates close the current sprint before they are answered)"""
    smtp_down: list[tuple[float, float]]
    worker_kills: list[tuple[float, float]]
    """(kill at, restart after seconds)"""
    web_kills: list[tuple[float, float, bool]]
    """(kill at, restart after seconds, whole web: False kills one gunicorn worker only)"""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _kills(
    rng: random.Random, duration: float, *, first: float, gap: tuple[float, float], down: tuple[float, float]
) -> list[tuple[float, float]]:
    kills, t = [], first
    while t < duration:
        pause = round(rng.uniform(*down), 2)
        kills.append((round(t, 2), pause))
        t += pause + rng.uniform(*gap)
    return kills


def plan_chaos(rng: random.Random, duration: float, *, small: bool, create_rate: float) -> ChaosPlan:
    """The faults and kills of one run. ``small`` packs one of each into a short run."""
    d = duration
    if small:
        return _small_plan(rng, d)
    windows = sorted(
        (round(rng.uniform(0.1, 0.9) * d, 2), round(rng.uniform(5, 10), 2), rng.choice([500, 502, 503, 504]))
        for _ in range(3)
    )
    web = [
        (t, pause, rng.random() < 0.7)
        for t, pause in _kills(rng, d, first=rng.uniform(8, 20), gap=(15, 35), down=(0.3, 3))
    ]
    outage = (round(rng.uniform(0.3, 0.6) * d, 2), round(rng.uniform(15, 25), 2), rng.randint(2, 5))
    return ChaosPlan(
        duration=d,
        latency_ms=rng.randint(15, 40),
        webhook_delay_ms=rng.randint(300, 1200),
        windows_5xx=windows,
        outage=outage,
        rate_limit=(
            round(rng.uniform(0.05, 0.3) * d, 2),
            round(rng.uniform(30, 45), 2),
            max(20, int(create_rate * 6)),
        ),
        create_then_502=(round(rng.uniform(0.05, 0.5) * d, 2), rng.randint(8, 12)),
        jira_sprint_close=round(outage[0] + outage[1] * 0.4, 2),
        jira_close_after_create=(round(outage[0] + outage[1], 2), 1),
        smtp_down=sorted((round(rng.uniform(0.1, 0.8) * d, 2), round(rng.uniform(15, 30), 2)) for _ in range(2)),
        worker_kills=_kills(rng, d, first=rng.uniform(5, 15), gap=(12, 30), down=(0.5, 8)),
        web_kills=web,
    )


def _small_plan(rng: random.Random, d: float) -> ChaosPlan:
    """One of each, at fixed moments (a little jitter) of a ``d`` >= 45 s run.

    Placed so that no fault hides behind another (the 5xx window and the outage fall where the
    worker runs; the rate limit starts before the first worker restart, so the backlog runs into it)
    and so that the run stays short. What decides the length is the bridge's own recovery: a 429's
    Retry-After (up to 60 s: the sandbox's window is a sliding minute) and the sweep, which runs when
    a worker starts and every 60 s after, re-queueing jobs whose lease ran out or that are 30 s
    overdue (a job the queue lost in a kill, or one parked by a lost wake-up: see soak/README.md). So
    the second worker kill comes late, with a restart after the 5 s lease: its start sweeps what the
    kill left, and its sweep a minute later falls after the Retry-After refilings and their actions.
    """

    def at(second: float) -> float:
        return round(second * d / 45 + rng.uniform(-0.3, 0.3), 2)

    outage = (at(18), 4.0, 2)
    return ChaosPlan(
        duration=d,
        latency_ms=rng.randint(10, 30),
        webhook_delay_ms=rng.randint(200, 600),
        windows_5xx=[(at(12), 3.0, rng.choice([500, 502, 503, 504]))],
        outage=outage,
        rate_limit=(at(4.5), 8.0, 8),
        create_then_502=(at(1), 3),
        jira_sprint_close=round(outage[0] + 1.6, 2),
        jira_close_after_create=(round(outage[0] + outage[1], 2), 1),
        smtp_down=[(at(26), 6.0)],
        worker_kills=[(at(3), 6.0), (at(39), 6.0)],
        web_kills=[(at(7), round(rng.uniform(0.5, 1.5), 2), True), (at(14), 0.0, False), (at(24), 1.0, True)],
    )


# --- carrying it out ---------------------------------------------------------------------------------------


_BUDGETS = ("create_then_502", "close_sprint_after_create")
"""Rule keys the sandbox counts down: a re-post must not give back what was spent."""


@dataclass
class _Rule:
    rule: dict[str, Any]
    window_until: float | None = None
    window_status: int = 503


class FaultRules:
    """The sandbox's fault rules as named entries; every change re-posts the whole list."""

    def __init__(self, sandbox_url: str) -> None:
        self.url = sandbox_url
        self._rules: dict[str, _Rule] = {}
        self._posted: list[str] = []
        self._lock = threading.Lock()
        self._http = requests.Session()

    def set(self, name: str, rule: dict[str, Any], *, window: tuple[float, int] | None = None) -> None:
        with self._lock:
            entry = _Rule(rule=dict(rule))
            if window is not None:
                entry.window_until, entry.window_status = time.time() + window[0], window[1]
            self._rules[name] = entry
            self._post()

    def remove(self, name: str) -> None:
        with self._lock:
            if self._rules.pop(name, None) is not None:
                self._post()

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self._http.delete(f"{self.url}/_sandbox/faults", timeout=10).raise_for_status()
            self._posted = []

    def _post(self) -> None:
        # Carry over the unspent budgets (rules come back in the order posted).
        current = self._http.get(f"{self.url}/_sandbox/faults", timeout=10).json()["rules"]
        for name, server_rule in zip(self._posted, current, strict=False):
            entry = self._rules.get(name)
            for budget in _BUDGETS:
                if entry is not None and budget in entry.rule:
                    entry.rule[budget] = int(server_rule.get(budget, 0))
        now = time.time()
        names, rules = [], []
        for name, entry in self._rules.items():
            rule = dict(entry.rule)
            if entry.window_until is not None:
                left = entry.window_until - now
                if left <= 0:
                    continue
                rule["status_window"] = {"seconds": round(left, 3), "status": entry.window_status}
            names.append(name)
            rules.append(rule)
        response = self._http.post(f"{self.url}/_sandbox/faults", json={"rules": rules}, timeout=10)
        response.raise_for_status()
        self._posted = names


@dataclass
class ChaosLog:
    started: float = 0.0
    events: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, lane: str, what: str, **details: Any) -> None:
        with self.lock:
            self.events.append({"t": round(time.time() - self.started, 2), "lane": lane, "event": what, **details})

    def count(self, what: str) -> int:
        with self.lock:
            return sum(1 for e in self.events if e["event"] == what)


Event = tuple[float, str, Callable[[], Any], dict[str, Any]]


class Chaos:
    def __init__(self, stack: SoakStack, plan: ChaosPlan, *, seed: int) -> None:
        self.stack = stack
        self.plan = plan
        self.faults = FaultRules(stack.sandbox_url)
        self.log = ChaosLog()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._rng = random.Random(seed)

    def start(self) -> None:
        self.log.started = time.time()
        lanes = {"tracker+mail": self._fault_events(), "worker": self._worker_events(), "web": self._web_events()}
        for lane, events in lanes.items():
            thread = threading.Thread(
                target=self._run_lane, args=(lane, events), name=f"soak-chaos-{lane}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def wait(self) -> None:
        for thread in self._threads:
            thread.join()

    def stop(self) -> None:
        """End the chaos early (on an error): the lanes stop at their next event."""
        self._stop.set()
        self.wait()

    def _run_lane(self, lane: str, events: list[Event]) -> None:
        for at, what, action, details in sorted(events, key=lambda e: e[0]):
            if not sleep_until(self.log.started + at, self._stop):
                return
            try:
                result = action()
            except Exception as exc:
                self.log.errors.append(f"{lane}: {what}: {type(exc).__name__}: {exc}")
                self.log.add(lane, f"{what} FAILED", error=str(exc))
                continue
            extra = {"result": result} if result is not None else {}
            self.log.add(lane, what, **details, **extra)

    # -- the lanes' events -------------------------------------------------------------------------------

    def _fault_events(self) -> list[Event]:
        p, f = self.plan, self.faults
        events: list[Event] = [
            (
                0.0,
                "latency on",
                lambda: f.set("latency", {"tracker": "both", "latency_ms": p.latency_ms}),
                {"ms": p.latency_ms},
            ),
            (
                0.0,
                "webhooks duplicated and late",
                lambda: f.set(
                    "webhooks", {"tracker": "both", "webhook_duplicate": True, "webhook_delay_ms": p.webhook_delay_ms}
                ),
                {"delay_ms": p.webhook_delay_ms},
            ),
            (p.duration, "latency off", lambda: f.remove("latency"), {}),
            (p.duration, "webhook faults off", lambda: f.remove("webhooks"), {}),
        ]
        for i, (start, seconds, status) in enumerate(p.windows_5xx):
            name = f"5xx-{i}"
            events.append(
                (
                    start,
                    "5xx window",
                    partial(f.set, name, {"tracker": "both"}, window=(seconds, status)),
                    {"seconds": seconds, "status": status},
                )
            )
        start, seconds, retry_after = p.outage
        events += [
            (
                start,
                "outage on",
                lambda: f.set("outage", {"tracker": "both", "outage": True, "retry_after_s": retry_after}),
                {"seconds": seconds},
            ),
            (start + seconds, "outage off", lambda: f.remove("outage"), {}),
        ]
        start, seconds, per_minute = p.rate_limit
        limit = {"tracker": "both", "rate_limit": {"endpoint": "create_issue", "per_minute": per_minute}}
        events += [
            (
                start,
                "rate limit on",
                lambda: f.set("rate", limit),
                {"seconds": seconds, "creates_per_minute": per_minute},
            ),
            (start + seconds, "rate limit off", lambda: f.remove("rate"), {}),
        ]
        start, budget = p.create_then_502
        events.append(
            (
                start,
                "create then 502 armed",
                lambda: f.set("create502", {"tracker": "both", "endpoint": "create_issue", "create_then_502": budget}),
                {"budget": budget},
            )
        )
        events.append((p.duration, "create then 502 disarmed", lambda: f.remove("create502"), {}))
        events.append((p.jira_sprint_close, "jira sprint closed", self._close_jira_sprint, {}))
        armed_at, closes = p.jira_close_after_create
        close_rule = {"tracker": "jira", "endpoint": "create_issue", "close_sprint_after_create": closes}
        events += [
            (
                armed_at,
                "jira sprint closes after the next create",
                lambda: f.set("sprintclose", close_rule),
                {"creates": closes},
            ),
            (p.duration, "jira sprint close disarmed", lambda: f.remove("sprintclose"), {}),
        ]
        for start, seconds in p.smtp_down:
            events += [
                (start, "smtp down", self.stack.smtp.stop, {"seconds": seconds}),
                (start + seconds, "smtp up", self.stack.smtp.start, {}),
            ]
        return events

    def _close_jira_sprint(self) -> dict[str, Any]:
        url = f"{self.stack.sandbox_url}/_sandbox/sprints/close"
        response = requests.post(url, json={"tracker": "jira"}, timeout=10)
        response.raise_for_status()
        closed: dict[str, Any] = response.json()
        return closed

    def _worker_events(self) -> list[Event]:
        events: list[Event] = []
        for at, pause in self.plan.worker_kills:
            index = self._rng.randrange(len(self.stack.workers))
            kill, restart = partial(self.stack.kill_worker, index), partial(self.stack.start_worker, index)
            events += [
                (at, "worker SIGKILL", kill, {"worker": index, "restart_after_s": pause}),
                (at + pause, "worker restart", restart, {"worker": index}),
            ]
        return events

    def _web_events(self) -> list[Event]:
        events: list[Event] = []
        for at, pause, whole in self.plan.web_kills:
            if whole:
                events += [
                    (at, "web SIGKILL (master and workers)", self.stack.kill_web, {"restart_after_s": pause}),
                    (at + pause, "web restart", self.stack.start_web, {}),
                ]
            else:
                pick = self._rng.randrange(1000)
                events.append((at, "web worker SIGKILL", partial(self.stack.kill_web_worker, pick), {}))
        return events
