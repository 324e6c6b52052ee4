"""Keep a tracker's calls within its rate limits, across every thread and worker process.

Two mechanisms, both applied to each HTTP request before it leaves (``TrackerRateLimit.install``
wraps the session's transport, so every page of a paginated read counts too):

* **Gate.** A 429 blocks the tracker until its ``Retry-After`` / ``RateLimit-Reset``: every call
  before that instant raises ``RetryableError(retry_after=<time left>)`` without touching the
  network, so one job meets the limit and the others learn it from the shared state. A 429 that
  names its limit (``RateLimit-Limit``, Jira's per-endpoint burst limit) blocks only the endpoint it
  refused, which that limit then paces, so the tracker's other calls (searches, reads of the
  account) go on.
* **Pacing.** A sliding-window log per *scope* (all calls, or one endpoint such as
  ``create_issue``) with a quota of N requests per window: from settings
  (``trackers.<name>.max_requests_per_second`` ...), from a 429's ``RateLimit-Limit`` (the endpoint
  that was refused), or from GitLab's ``RateLimit-*`` headers on ordinary answers (all calls, once
  less than half of that quota is left). A call is admitted when fewer than N admitted calls lie in
  the window; one that has to wait up to ``SHORT_WAIT_SECONDS`` sleeps and goes, a longer wait
  raises ``RetryableError`` with the exact delay until a free slot *promised* to that caller, so
  re-queued jobs come back one slot after the other instead of all at once.
* **Learned quotas lapse.** Limits come and go (a burst limit, a throttle an operator lifts): a
  quota learned from the tracker lapses one window after the tracker last named it, and no slot is
  promised beyond that; later callers come back when it lapses, and the tracker says again whether
  it holds (at the cost of one 429 per window while it does). Quotas from settings never lapse.

A sliding log rather than a token bucket: a tracker that allows N calls per (sliding or fixed)
window lets the first N go at once; a bucket that allows that burst also lets N more through
within the same window (429s), and one that does not wastes the burst. The log holds at most N
expiry times per scope. When a scope first gets a quota, each process adds its own calls of the
last window (kept in memory), so the log also counts the calls made before anyone knew the quota.

The state is shared through a store (``ratelimit_stores``): Redis when ``REDIS_URL`` is set, else
a small locked file per tracker under the instance directory. It is disposable: losing it costs at
most one 429.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import requests
from requests.adapters import BaseAdapter

from bridge.adapters.trackers.http_errors import reset_seconds, retry_after_seconds
from bridge.errors import RetryableError
from bridge.metrics import endpoint_name

log = logging.getLogger(__name__)

_R = TypeVar("_R")

ALL = "*"
"""The scope of every call to a tracker."""
ENDPOINT = "endpoint"
"""A limit that covers only the endpoint it was met on."""
SHORT_WAIT_SECONDS = 2.0
"""A call that can go within this long waits in its thread; a later one goes back to the queue."""
MINUTE = 60.0
"""GitLab documents ``RateLimit-Limit`` as a per-minute quota."""
PROMISE_GRACE_SECONDS = 5.0
"""A promised slot stays reserved for its caller this long past its time (queue delays)."""
RECENT_SECONDS = 2 * MINUTE
"""How far back each process remembers its own calls, to count them when a quota appears."""
_RECENT_MAX = 20_000


@dataclass(frozen=True)
class Quota:
    """At most ``requests`` calls in any ``seconds``-long window."""

    requests: int
    seconds: float

    @property
    def margin(self) -> float:
        """Slack on each slot's expiry: the tracker stamps a call when it arrives, after we sent it."""
        return min(0.5, 0.1 * self.seconds)


def configured_quotas(
    *,
    max_requests_per_second: int | None = None,
    max_requests_per_minute: int | None = None,
    max_creates_per_minute: int | None = None,
) -> dict[str, Quota]:
    """The quotas of a tracker's settings, by scope key (see ``scope_key``)."""
    quotas: dict[str, Quota] = {}
    for scope, requests_, seconds in (
        (ALL, max_requests_per_second, 1.0),
        (ALL, max_requests_per_minute, MINUTE),
        ("create_issue", max_creates_per_minute, MINUTE),
    ):
        if requests_:
            quotas[scope_key(scope, seconds)] = Quota(requests_, seconds)
    return quotas


def scope_key(scope: str, seconds: float) -> str:
    return f"{scope}/{seconds:g}"


def _scope_of(key: str) -> str:
    return key.rsplit("/", 1)[0]


# -- the shared state and its arithmetic ---------------------------------------------------------


@dataclass
class Pace:
    """One scope's sliding-window log."""

    seconds: float
    learned: int | None = None
    """The tracker's quota for this scope, when it told us one."""
    learned_until: float = 0.0
    """The learned quota lapses one window after the tracker last named it: limits come and go."""
    configured: bool = False
    """The settings name a quota for this scope (it never lapses)."""
    slots: list[float] = field(default_factory=list)
    """Sorted expiry times of the calls admitted in the window (each ``start + seconds + margin``)."""
    promised: list[float] = field(default_factory=list)
    """Sorted times at which refused callers were told to come back."""
    members: list[str] = field(default_factory=list)
    """Processes whose earlier calls are already in ``slots``."""

    def quota(self, configured: Quota | None) -> Quota | None:
        requests_ = [q for q in (configured.requests if configured else None, self.learned) if q]
        return Quota(min(requests_), self.seconds) if requests_ else None

    def next_free(self, quota: Quota, now: float) -> float:
        """When a call may go: once fewer than ``quota.requests`` slots are unexpired."""
        surplus = len(self.slots) - quota.requests
        return max(now, self.slots[surplus]) if surplus >= 0 else now

    def next_promise(self, quota: Quota, now: float) -> float:
        """The first slot not yet taken or promised to an earlier refused caller."""
        held = sorted([*self.slots, *(p + quota.seconds + quota.margin for p in self.promised)])
        surplus = len(held) - quota.requests
        return max(now, held[surplus]) if surplus >= 0 else now

    def take(self, start: float, quota: Quota) -> None:
        bisect.insort(self.slots, start + quota.seconds + quota.margin)
        # The caller presumably holds the earliest promise that has come due (callers are anonymous).
        if self.promised and self.promised[0] <= start:
            self.promised.pop(0)

    def add_calls(self, starts: Sequence[float], quota: Quota, now: float) -> None:
        for start in starts:
            expiry = start + quota.seconds + quota.margin
            if expiry > now:
                bisect.insort(self.slots, expiry)

    def join(self, member: str, recent: Sequence[float], quota: Quota, now: float) -> None:
        self.add_calls(recent, quota, now)
        self.members = [*self.members[-63:], member]

    def horizon(self, configured: Quota | None) -> float:
        """How far ahead a slot may be promised: while the learned quota is the one that counts,
        no further than it is known for (after that, the tracker says again whether it holds)."""
        if self.learned is not None and (configured is None or self.learned < configured.requests):
            return self.learned_until
        return math.inf

    def purge(self, now: float) -> None:
        del self.slots[: bisect.bisect_right(self.slots, now)]
        del self.promised[: bisect.bisect_left(self.promised, now - PROMISE_GRACE_SECONDS)]

    def lapsed(self, now: float) -> bool:
        return self.learned is not None and self.learned_until <= now

    def idle(self) -> bool:
        return not self.slots and not self.promised and self.learned is None


@dataclass(frozen=True)
class Decision:
    wait: float
    """Seconds until the call may go (admitted) or until its promised slot (refused)."""
    admitted: bool
    reason: str = ""


Recent = Callable[[str, float], list[float]]
"""``recent(scope, since)``: this process's call times in ``scope`` since ``since``."""


@dataclass
class TrackerState:
    """Everything shared about one tracker: gates by scope and paces by scope key."""

    blocked: dict[str, float] = field(default_factory=dict)
    paces: dict[str, Pace] = field(default_factory=dict)
    dirty: bool = False
    """Set by every change that must be written back (purging alone need not be)."""

    def purge(self, now: float) -> None:
        self.blocked = {scope: until for scope, until in self.blocked.items() if until > now}
        for key, pace in list(self.paces.items()):
            if pace.lapsed(now):
                if not pace.configured:
                    # Forget the window too: each process adds its own calls again if the quota
                    # comes back, so nothing is counted twice or missed.
                    del self.paces[key]
                    continue
                pace.learned = None
            pace.purge(now)
            if pace.idle():
                del self.paces[key]

    def admit(
        self,
        endpoint: str,
        *,
        now: float,
        configured: Mapping[str, Quota],
        member: str,
        recent: Recent,
        short_wait: float = SHORT_WAIT_SECONDS,
    ) -> Decision:
        """Decide one call to ``endpoint``: go now, go after a short wait, or come back later."""
        self.purge(now)
        for key, named in configured.items():
            if _scope_of(key) not in (ALL, endpoint):
                continue
            pace = self.paces.setdefault(key, Pace(seconds=named.seconds))
            if not pace.configured:
                pace.configured, self.dirty = True, True
        paced: list[tuple[Pace, Quota, float]] = []
        for key, pace in self.paces.items():
            scope, setting = _scope_of(key), configured.get(key)
            quota = pace.quota(setting)
            if quota is None or scope not in (ALL, endpoint):
                continue
            if member not in pace.members:
                pace.join(member, recent(scope, now - quota.seconds - quota.margin), quota, now)
                self.dirty = True
            paced.append((pace, quota, pace.horizon(setting)))
        gate = max(self.blocked.get(ALL, 0.0), self.blocked.get(endpoint, 0.0))
        start = max([now, gate, *(pace.next_free(quota, now) for pace, quota, _ in paced)])
        if start - now <= short_wait:
            for pace, quota, _ in paced:
                pace.take(start, quota)
            self.dirty = self.dirty or bool(paced)
            return Decision(start - now, admitted=True)
        back = max([now, gate, *(pace.next_promise(quota, now) for pace, quota, _ in paced)])
        horizon = min([math.inf, *(until for _, _, until in paced)])
        if back > horizon:
            # Promise nothing beyond the window the tracker named: come back when the quota
            # lapses, and the tracker says again whether it holds.
            back = max(now, gate, horizon)
        else:
            for pace, _, _ in paced:
                bisect.insort(pace.promised, back)
            self.dirty = self.dirty or bool(paced)
        if gate >= back:
            reason = "held back after the tracker answered 429"
        else:
            limits = ", ".join(f"{q.requests} per {q.seconds:g} s" for _, q, _ in paced)
            reason = f"paced to the tracker's limit ({limits})"
        return Decision(back - now, admitted=False, reason=reason)

    def learn(
        self,
        endpoint: str,
        *,
        now: float,
        status: int,
        headers: Mapping[str, str],
        member: str,
        recent: Recent,
    ) -> None:
        """Take in what an answer says about the limits: a 429's gate and quota, or the quota
        GitLab reports on every answer once it runs low."""
        self.purge(now)
        lowered = {k.lower(): v for k, v in headers.items()}
        if status == 429:
            self._learn_429(endpoint, now=now, headers=lowered, member=member, recent=recent)
            return
        limit, remaining = _int(lowered.get("ratelimit-limit")), _int(lowered.get("ratelimit-remaining"))
        reset = reset_seconds(lowered.get("ratelimit-reset", ""), now)
        if limit is None or remaining is None or reset is None:
            return
        quota = Quota(limit, MINUTE)
        pace = self._learned(scope_key(ALL, MINUTE), quota, now=now, member=member, recent=recent(ALL, now - MINUTE))
        # The calls the tracker has counted in its window and we have not: they leave it at its reset.
        missing = (limit - remaining) - len(pace.slots)
        if missing > 0:
            pace.add_calls([now + reset - quota.seconds - quota.margin] * missing, quota, now)

    def _learn_429(self, endpoint: str, *, now: float, headers: Mapping[str, str], member: str, recent: Recent) -> None:
        reason = headers.get("ratelimit-reason", "").strip().lower()
        named = _quota_of_429(headers, reason)
        # A 429 that names its limit holds back only what that limit covers (which the limit then
        # paces); Jira's per-issue write limit concerns one issue; any other 429 holds back every
        # call to the tracker.
        scope: str | None = ALL
        if reason == "jira-per-issue-on-write":
            scope = None
        elif named is not None:
            scope = ALL if named[0] == ALL else endpoint
        elif reason == "jira-burst-based":
            scope = endpoint
        delay = retry_after_seconds(headers, now=now)
        if scope is not None and delay:
            self.blocked[scope] = max(self.blocked.get(scope, 0.0), now + delay)
            self.dirty = True
        if named is not None and scope is not None:
            quota = named[1]
            since = now - quota.seconds - quota.margin
            self._learned(scope_key(scope, quota.seconds), quota, now=now, member=member, recent=recent(scope, since))

    def _learned(self, key: str, quota: Quota, *, now: float, member: str, recent: list[float]) -> Pace:
        pace = self.paces.setdefault(key, Pace(seconds=quota.seconds))
        pace.learned, pace.learned_until = quota.requests, now + quota.seconds
        if member not in pace.members:
            pace.join(member, recent, quota, now)
        self.dirty = True
        return pace

    # -- serialisation (JSON, times rounded to the millisecond) --

    def encode(self) -> bytes:
        def times(values: list[float]) -> list[float]:
            return [round(v, 3) for v in values]

        data = {
            "blocked": {k: round(v, 3) for k, v in self.blocked.items()},
            "paces": {
                key: {
                    "seconds": p.seconds,
                    "learned": p.learned,
                    "learned_until": round(p.learned_until, 3),
                    "configured": p.configured,
                    "slots": times(p.slots),
                    "promised": times(p.promised),
                    "members": p.members,
                }
                for key, p in self.paces.items()
            },
        }
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes | None) -> TrackerState:
        """The stored state; an empty or unreadable one (a crash mid-write) is a fresh start."""
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
            return cls(
                blocked={str(k): float(v) for k, v in data["blocked"].items()},
                paces={
                    str(key): Pace(
                        seconds=float(p["seconds"]),
                        learned=int(p["learned"]) if p["learned"] else None,
                        learned_until=float(p["learned_until"]),
                        configured=bool(p.get("configured", False)),
                        slots=sorted(float(v) for v in p["slots"]),
                        promised=sorted(float(v) for v in p["promised"]),
                        members=[str(m) for m in p["members"]],
                    )
                    for key, p in data["paces"].items()
                },
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("ratelimit.state_unreadable")
            return cls()


def _int(value: str | None) -> int | None:
    """A positive whole number from a header, else None."""
    try:
        number = float((value or "").strip())
    except ValueError:
        return None
    return int(number) if math.isfinite(number) and number >= 1 else None


def _quota_of_429(headers: Mapping[str, str], reason: str) -> tuple[str, Quota] | None:
    """The limit a 429 names, and its scope (``ENDPOINT`` or ``ALL``).

    ``RateLimit-Limit`` (GitLab, per minute): the endpoint refused. GitLab's issue and note creation
    limits are per endpoint; its API-wide throttle also shows on ordinary answers, which pace all
    calls (``TrackerState.learn``). Jira Cloud's burst limit: ``X-RateLimit-Limit`` per second and
    per endpoint. Jira Data Center's token bucket: ``X-RateLimit-FillRate`` per
    ``X-RateLimit-Interval-Seconds``, for all calls. Jira's other limits name no window.
    """
    limit = _int(headers.get("ratelimit-limit"))
    if limit is not None:
        return ENDPOINT, Quota(limit, MINUTE)
    limit = _int(headers.get("x-ratelimit-limit"))
    interval = _int(headers.get("x-ratelimit-interval-seconds"))
    if interval is not None:
        fill = _int(headers.get("x-ratelimit-fillrate")) or limit
        return (ALL, Quota(fill, float(interval))) if fill else None
    if limit is not None and reason == "jira-burst-based":
        return ENDPOINT, Quota(limit, 1.0)
    return None


# -- the store interface (implementations in ratelimit_stores) ---------------------------------


class StoreError(Exception):
    """The shared state could not be read or written; the call goes ahead unpaced."""


class StateStore(Protocol):
    def update(self, key: str, change: Callable[[TrackerState], _R]) -> _R:
        """Run ``change`` on the key's state atomically; write it back when it set ``dirty``."""
        ...


# -- the tracker-facing part ---------------------------------------------------------------------


class _Recent:
    """This process's own call times by endpoint, for the last ``RECENT_SECONDS``."""

    def __init__(self) -> None:
        self._calls: dict[str, deque[float]] = {}

    def add(self, endpoint: str, at: float) -> None:
        calls = self._calls.setdefault(endpoint, deque(maxlen=_RECENT_MAX))
        calls.append(at)
        while calls and calls[0] < at - RECENT_SECONDS:
            calls.popleft()

    def since(self, scope: str, since: float) -> list[float]:
        lists = self._calls.values() if scope == ALL else [self._calls.get(scope, deque())]
        return sorted(t for calls in lists for t in calls if t >= since)


class TrackerRateLimit:
    """The gate and pacing of one tracker (one base URL), shared through ``store``."""

    def __init__(
        self,
        *,
        tracker: str,
        url: str,
        store: StateStore,
        quotas: Mapping[str, Quota] | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        short_wait: float = SHORT_WAIT_SECONDS,
    ) -> None:
        self.tracker = tracker
        digest = hashlib.sha256(url.rstrip("/").lower().encode()).hexdigest()[:16]
        self.key = f"{tracker}-{digest}"
        self._store = store
        self._quotas = dict(quotas or {})
        self._clock = clock
        self._sleep = sleep
        self._short_wait = short_wait
        self._member = uuid.uuid4().hex[:12]
        self._recent = _Recent()
        # Deciding and noting the call in ``_recent`` happen together, so a quota another
        # process just learned never misses a call of this one.
        self._lock = threading.Lock()
        self._warned_at = -math.inf

    def before(self, endpoint: str) -> None:
        """Wait briefly, or raise ``RetryableError`` with the delay, until ``endpoint`` may be called."""
        with self._lock:
            now = self._clock()
            try:
                decision = self._store.update(
                    self.key,
                    lambda state: state.admit(
                        endpoint,
                        now=now,
                        configured=self._quotas,
                        member=self._member,
                        recent=self._recent.since,
                        short_wait=self._short_wait,
                    ),
                )
            except StoreError as exc:
                self._store_failed(exc)
                decision = Decision(0.0, admitted=True)
            if decision.admitted:
                self._recent.add(endpoint, now + decision.wait)
        if not decision.admitted:
            raise RetryableError(
                f"{self.tracker} {endpoint}: {decision.reason}; next slot in {decision.wait:.1f} s",
                retry_after=decision.wait,
            )
        if decision.wait > 0:
            self._sleep(decision.wait)

    def after(self, endpoint: str, status: int, headers: Mapping[str, str]) -> None:
        """Learn from an answer; only a 429 or a quota running low touches the shared state."""
        if status != 429 and not _running_low(headers):
            return
        with self._lock:
            now = self._clock()
            try:
                self._store.update(
                    self.key,
                    lambda state: state.learn(
                        endpoint,
                        now=now,
                        status=status,
                        headers=headers,
                        member=self._member,
                        recent=self._recent.since,
                    ),
                )
            except StoreError as exc:
                self._store_failed(exc)

    def install(self, session: requests.Session) -> None:
        """Route every request of ``session`` through the gate and pacing; idempotent."""
        for prefix, adapter in list(session.adapters.items()):
            if not isinstance(adapter, _PacedAdapter):
                session.mount(prefix, _PacedAdapter(adapter, self))

    def _store_failed(self, exc: StoreError) -> None:
        # Pacing must never stop a tracker call: go ahead unpaced, and say so once a minute.
        now = time.monotonic()
        if now - self._warned_at >= MINUTE:
            self._warned_at = now
            log.warning("ratelimit.store_unavailable", extra={"tracker": self.tracker, "error": str(exc)})


def _running_low(headers: Mapping[str, str]) -> bool:
    """GitLab's quota headers on an ordinary answer, with less than half of the quota left."""
    lowered = {k.lower(): v for k, v in headers.items()}
    limit, remaining = _int(lowered.get("ratelimit-limit")), lowered.get("ratelimit-remaining")
    if limit is None or remaining is None:
        return False
    try:
        return float(remaining) < limit / 2
    except ValueError:
        return False


class _PacedAdapter(BaseAdapter):
    """A transport adapter that asks the tracker's ``TrackerRateLimit`` before sending and tells it
    what came back. It wraps the session's own adapter, which does the sending."""

    def __init__(self, inner: BaseAdapter, limit: TrackerRateLimit) -> None:
        super().__init__()
        self._inner = inner
        self._limit = limit

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        endpoint = endpoint_name(request.method or "GET", request.url or "")
        self._limit.before(endpoint)
        response = self._inner.send(request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies)
        self._limit.after(endpoint, response.status_code, response.headers)
        return response

    def close(self) -> None:
        self._inner.close()
