"""Fault injection: latency, random 5xx, outages, 5xx windows, rate limits, create-then-502,
a sprint that closes right after a create, webhook faults.

A rule applies to a tracker (``gitlab``, ``jira`` or ``both``) and optionally to endpoints whose
name (``create_issue``, ``search``...) or path matches a glob. The caller holds the sandbox lock.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from fnmatch import fnmatchcase
from typing import Any, TypeVar

ERROR_STATUSES = (500, 502, 503, 504)
N = TypeVar("N", int, float)
TRACKERS = ("gitlab", "jira", "both")
_RULE_KEYS = frozenset(
    {
        "tracker",
        "endpoint",
        "method",
        "latency_ms",
        "error_rate",
        "outage",
        "retry_after_s",
        "status_window",
        "rate_limit",
        "create_then_502",
        "close_sprint_after_create",
        "webhook_duplicate",
        "webhook_delay_ms",
        "webhook_drop_rate",
    }
)


@dataclass
class RateLimit:
    per_minute: int
    endpoint: str | None = None
    hits: deque[float] = field(default_factory=deque)


@dataclass
class FaultRule:
    tracker: str = "both"
    endpoint: str | None = None
    method: str | None = None
    latency_ms: int = 0
    error_rate: float = 0.0
    outage: bool = False
    retry_after_s: int = 30
    window_until: float | None = None
    window_status: int = 503
    rate_limit: RateLimit | None = None
    create_then_502: int = 0
    close_sprint_after_create: int = 0
    """How many creates still close the current sprint (and start the next) before they are answered."""
    webhook_duplicate: bool = False
    webhook_delay_ms: int = 0
    webhook_drop_rate: float = 0.0

    @classmethod
    def from_json(cls, data: Any, *, now: float) -> FaultRule:
        """Validate one rule of ``POST /_sandbox/faults``; raises ``ValueError`` with the problem."""
        if not isinstance(data, dict):
            raise ValueError("a fault rule must be a JSON object")
        unknown = sorted(set(data) - _RULE_KEYS)
        if unknown:
            raise ValueError(f"unknown fault keys: {', '.join(unknown)}")
        tracker = data.get("tracker", "both")
        if tracker not in TRACKERS:
            raise ValueError("tracker must be gitlab, jira or both")
        rule = cls(
            tracker=tracker,
            endpoint=_opt_str(data, "endpoint"),
            method=(_opt_str(data, "method") or "").upper() or None,
            latency_ms=_number(data, "latency_ms", int, 0, 600_000),
            error_rate=_number(data, "error_rate", float, 0.0, 1.0),
            outage=bool(data.get("outage", False)),
            retry_after_s=_number(data, "retry_after_s", int, 0, 86_400, default=30),
            create_then_502=_number(data, "create_then_502", int, 0, 1_000_000),
            close_sprint_after_create=_number(data, "close_sprint_after_create", int, 0, 1_000_000),
            webhook_duplicate=bool(data.get("webhook_duplicate", False)),
            webhook_delay_ms=_number(data, "webhook_delay_ms", int, 0, 3_600_000),
            webhook_drop_rate=_number(data, "webhook_drop_rate", float, 0.0, 1.0),
        )
        window = data.get("status_window")
        if window is not None:
            if isinstance(window, int | float):
                window = {"seconds": window}
            if not isinstance(window, dict):
                raise ValueError("status_window must be a number of seconds or {seconds, status}")
            rule.window_until = now + _number(window, "seconds", float, 0.0, 86_400.0)
            rule.window_status = _number(window, "status", int, 500, 599, default=503)
        limit = data.get("rate_limit")
        if limit is not None:
            if not isinstance(limit, dict):
                raise ValueError("rate_limit must be {endpoint, per_minute}")
            rule.rate_limit = RateLimit(
                per_minute=_number(limit, "per_minute", int, 0, 1_000_000),
                endpoint=_opt_str(limit, "endpoint"),
            )
        return rule

    def to_json(self, now: float) -> dict[str, Any]:
        data: dict[str, Any] = {"tracker": self.tracker}
        for key in ("endpoint", "method"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        for key in ("latency_ms", "error_rate", "outage", "create_then_502", "close_sprint_after_create"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        for key in ("webhook_duplicate",):
            if getattr(self, key):
                data[key] = getattr(self, key)
        for key in ("webhook_delay_ms", "webhook_drop_rate"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        if self.outage or self.window_until is not None:
            data["retry_after_s"] = self.retry_after_s
        if self.window_until is not None:
            data["status_window"] = {
                "status": self.window_status,
                "seconds_left": round(max(0.0, self.window_until - now), 3),
            }
        if self.rate_limit is not None:
            data["rate_limit"] = {
                "endpoint": self.rate_limit.endpoint,
                "per_minute": self.rate_limit.per_minute,
                "used": sum(1 for t in self.rate_limit.hits if t > now - 60),
            }
        return data

    def covers(self, tracker: str, endpoint: str, path: str, method: str) -> bool:
        if self.tracker not in (tracker, "both"):
            return False
        if self.method and self.method != method:
            return False
        return _glob(self.endpoint, endpoint, path)


def _glob(pattern: str | None, endpoint: str, path: str) -> bool:
    return pattern is None or fnmatchcase(endpoint, pattern) or fnmatchcase(path, pattern)


def _opt_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{key} must be a string")
    return value or None


def _number(data: dict[str, Any], key: str, kind: type[N], low: N, high: N, *, default: N | None = None) -> N:
    value = data.get(key, low if default is None else default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} must be a number")
    if not low <= value <= high:
        raise ValueError(f"{key} must be between {low} and {high}")
    return kind(value)


@dataclass(frozen=True)
class Rejection:
    """A request answered by a fault instead of the API."""

    status: int
    reason: str
    """``outage``, ``status_window``, ``error_rate`` or ``rate_limit``."""
    headers: dict[str, str]


@dataclass(frozen=True)
class Decision:
    latency_s: float = 0.0
    rejection: Rejection | None = None
    create_then_502: FaultRule | None = None
    """The rule whose ``create_then_502`` budget a successful (201) create would use up."""
    close_sprint: FaultRule | None = None
    """The rule whose ``close_sprint_after_create`` budget a successful (201) create would use up."""


@dataclass(frozen=True)
class WebhookFaults:
    copies: int = 1
    delay_s: float = 0.0
    dropped: bool = False


class Faults:
    def __init__(self, rules: list[FaultRule], *, seed: int) -> None:
        self.rules = rules
        self.rng = random.Random(seed)

    def decide(self, tracker: str, endpoint: str, path: str, method: str, now: float) -> Decision:
        """What happens to one API request; counts it against rate limits when it gets through."""
        rules = [r for r in self.rules if r.covers(tracker, endpoint, path, method)]
        latency = sum(r.latency_ms for r in rules) / 1000
        for rule in rules:
            if rule.outage:
                return Decision(latency, Rejection(503, "outage", {"Retry-After": str(rule.retry_after_s)}))
            if rule.window_until is not None and now < rule.window_until:
                seconds = max(1, math.ceil(rule.window_until - now))
                return Decision(latency, Rejection(rule.window_status, "status_window", {"Retry-After": str(seconds)}))
        for rule in rules:
            if rule.error_rate and self.rng.random() < rule.error_rate:
                return Decision(latency, Rejection(self.rng.choice(ERROR_STATUSES), "error_rate", {}))
        limited = [
            r.rate_limit for r in rules if r.rate_limit is not None and _glob(r.rate_limit.endpoint, endpoint, path)
        ]
        for limit in limited:
            while limit.hits and limit.hits[0] <= now - 60:
                limit.hits.popleft()
            if len(limit.hits) >= limit.per_minute:
                return Decision(latency, Rejection(429, "rate_limit", _limit_headers(tracker, limit, now)))
        for limit in limited:
            limit.hits.append(now)
        create_then_502 = next(
            (r for r in rules if r.create_then_502 > 0 and (r.endpoint or endpoint == "create_issue")), None
        )
        close_sprint = next(
            (r for r in rules if r.close_sprint_after_create > 0 and (r.endpoint or endpoint == "create_issue")), None
        )
        return Decision(latency, None, create_then_502, close_sprint)

    def for_webhook(self, tracker: str, event: str) -> WebhookFaults:
        rules = [r for r in self.rules if r.tracker in (tracker, "both") and _glob(r.endpoint, event, event)]
        copies = 2 if any(r.webhook_duplicate for r in rules) else 1
        delay = sum(r.webhook_delay_ms for r in rules) / 1000
        dropped = any(r.webhook_drop_rate and self.rng.random() < r.webhook_drop_rate for r in rules)
        return WebhookFaults(copies, delay, dropped)


def _limit_headers(tracker: str, limit: RateLimit, now: float) -> dict[str, str]:
    reset = (limit.hits[0] + 60) if limit.hits else now + 60
    retry_after = max(1, math.ceil(reset - now))
    reset_at = datetime.fromtimestamp(math.ceil(reset), UTC)
    if tracker == "gitlab":
        return {
            "Retry-After": str(retry_after),
            "RateLimit-Name": "throttle_authenticated_api",
            "RateLimit-Limit": str(limit.per_minute),
            "RateLimit-Observed": str(len(limit.hits) + 1),
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(math.ceil(reset)),
            "RateLimit-ResetTime": format_datetime(reset_at, usegmt=True),
        }
    return {
        "Retry-After": str(retry_after),
        "X-RateLimit-Limit": str(limit.per_minute),
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": reset_at.strftime("%Y-%m-%dT%H:%MZ"),
        "X-RateLimit-NearLimit": "true",
        "RateLimit-Reason": "jira-burst-based",
    }
