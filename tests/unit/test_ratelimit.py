"""The arithmetic of the tracker gate and pacing (``bridge.adapters.trackers.ratelimit``), on an
injected clock and the in-memory store."""

from __future__ import annotations

import pytest

from bridge.adapters.trackers.ratelimit import (
    Quota,
    TrackerRateLimit,
    TrackerState,
    configured_quotas,
    scope_key,
)
from bridge.adapters.trackers.ratelimit_stores import MemoryStore
from bridge.errors import RetryableError

GITLAB_429 = {
    "Retry-After": "42",
    "RateLimit-Name": "throttle_authenticated_api",
    "RateLimit-Limit": "300",
    "RateLimit-Remaining": "0",
}


def nothing(scope: str, since: float) -> list[float]:
    return []


def admit(state: TrackerState, endpoint: str, now: float, **kwargs: object) -> tuple[float, bool]:
    decision = state.admit(endpoint, now=now, configured=kwargs.pop("configured", {}), member="m1", recent=nothing)  # type: ignore[arg-type]
    return round(decision.wait, 3), decision.admitted


def test_unknown_limits_admit_every_call_and_write_nothing() -> None:
    """With no quota and no 429, every call goes at once and the shared state is not written."""
    state = TrackerState()
    assert [admit(state, "create_issue", now=float(t)) for t in range(100)] == [(0.0, True)] * 100
    assert state.dirty is False
    assert state.paces == {}


def test_sliding_window_admits_the_burst_then_one_call_per_expired_slot() -> None:
    """A quota of 3 per 10 s lets 3 calls go at once; the 4th goes when the first leaves the window
    (plus the margin for the tracker's clock), waiting in its thread when that is soon."""
    quotas = {scope_key("create_issue", 10): Quota(3, 10.0)}
    state = TrackerState()
    assert [admit(state, "create_issue", now=t, configured=quotas) for t in (0.0, 1.0, 2.0)] == [(0.0, True)] * 3
    # The first slot expires at 0 + 10 + 0.5 (margin 0.1 x window, at most 0.5 s): 1.5 s after 9.0.
    assert admit(state, "create_issue", now=9.0, configured=quotas) == (1.5, True)
    # That call holds its slot from 10.5: the next one waits for the second slot (1 + 10.5).
    assert admit(state, "create_issue", now=11.0, configured=quotas) == (0.5, True)
    # Other endpoints are not in this scope.
    assert admit(state, "list_issues", now=11.0, configured=quotas) == (0.0, True)


def test_refused_callers_are_promised_successive_slots() -> None:
    """Callers that would wait longer than the short wait are told to come back at distinct slots,
    in the order the window frees them, instead of all at the first one."""
    quotas = {scope_key(ALL_KEY, 60): Quota(3, 60.0)}
    state = TrackerState()
    for t in (0.0, 5.0, 10.0):
        admit(state, "get_issue", now=t, configured=quotas)
    waits = [admit(state, "get_issue", now=20.0, configured=quotas) for _ in range(4)]
    # Slots free at 60.5, 65.5, 70.5; the fourth refused caller gets the first slot again + 60.5.
    assert waits == [(40.5, False), (45.5, False), (50.5, False), (101.0, False)]


ALL_KEY = "*"


def test_a_promised_caller_coming_back_takes_its_slot_and_its_promise() -> None:
    """A caller that comes back at its promised time is admitted and uses up one promise."""
    quotas = {scope_key("*", 60): Quota(1, 60.0)}
    state = TrackerState()
    admit(state, "get_issue", now=0.0, configured=quotas)
    assert admit(state, "get_issue", now=1.0, configured=quotas) == (59.5, False)
    pace = state.paces[scope_key("*", 60)]
    assert pace.promised == [60.5]
    assert admit(state, "get_issue", now=60.5, configured=quotas) == (0.0, True)
    assert pace.promised == []


def test_a_429_blocks_every_endpoint_until_retry_after() -> None:
    """After a 429 with Retry-After, every call (any endpoint) is refused until that instant."""
    state = TrackerState()
    state.learn("create_issue", now=100.0, status=429, headers={"Retry-After": "30"}, member="m1", recent=nothing)
    assert admit(state, "list_issues", now=101.0) == (29.0, False)
    assert admit(state, "create_issue", now=128.5) == (1.5, True)
    assert admit(state, "create_issue", now=130.0) == (0.0, True)


def test_a_429_naming_its_quota_holds_back_only_that_endpoint() -> None:
    """A 429 with RateLimit-Limit holds back the endpoint it refused (which that quota then paces);
    the tracker's other calls go on."""
    state = TrackerState()
    state.learn("create_issue", now=100.0, status=429, headers=GITLAB_429, member="m1", recent=nothing)
    assert state.blocked == {"create_issue": 142.0}
    assert state.paces[scope_key("create_issue", 60)].learned == 300
    assert admit(state, "list_issues", now=101.0) == (0.0, True)
    assert admit(state, "get_user", now=101.0) == (0.0, True)
    assert admit(state, "create_issue", now=101.0) == (41.0, False)


def test_a_later_429_never_shortens_the_gate() -> None:
    """Two 429s: the gate lasts until the later of the two instants."""
    state = TrackerState()
    state.learn("create_issue", now=0.0, status=429, headers={"Retry-After": "30"}, member="m1", recent=nothing)
    state.learn("create_issue", now=1.0, status=429, headers={"Retry-After": "5"}, member="m1", recent=nothing)
    assert state.blocked == {"*": 30.0}


def test_ratelimit_reset_sets_the_gate_without_retry_after() -> None:
    """A 429 with only GitLab's RateLimit-Reset (epoch seconds) blocks until that time."""
    state = TrackerState()
    now = 1_767_225_600.0
    state.learn(
        "create_issue", now=now, status=429, headers={"RateLimit-Reset": str(int(now) + 20)}, member="m", recent=nothing
    )
    assert state.blocked == {"*": now + 20}


def test_jira_burst_429_blocks_only_that_endpoint_and_paces_it_per_second() -> None:
    """Jira's burst limit is per endpoint and method: searches go on while creations wait, and the
    X-RateLimit-Limit it names is a per-second quota of that endpoint."""
    state = TrackerState()
    headers = {"Retry-After": "3", "X-RateLimit-Limit": "10", "RateLimit-Reason": "jira-burst-based"}
    state.learn("create_issue", now=0.0, status=429, headers=headers, member="m1", recent=nothing)
    assert state.blocked == {"create_issue": 3.0}
    assert state.paces[scope_key("create_issue", 1)].learned == 10
    assert admit(state, "search_jql", now=0.5) == (0.0, True)
    assert admit(state, "create_issue", now=0.5) == (2.5, False)


def test_jira_per_issue_limit_blocks_nothing_shared() -> None:
    """Jira's per-issue write limit concerns one issue: other calls are not held back."""
    state = TrackerState()
    headers = {"Retry-After": "5", "RateLimit-Reason": "jira-per-issue-on-write", "X-RateLimit-Limit": "20"}
    state.learn("add_comment", now=0.0, status=429, headers=headers, member="m1", recent=nothing)
    assert state.blocked == {}
    assert state.paces == {}
    assert admit(state, "add_comment", now=0.1) == (0.0, True)


def test_jira_data_center_quota_uses_fill_rate_and_interval() -> None:
    """Jira Data Center's token bucket: FillRate tokens every Interval-Seconds, for all calls."""
    state = TrackerState()
    headers = {
        "Retry-After": "1",
        "X-RateLimit-Limit": "100",
        "X-RateLimit-FillRate": "10",
        "X-RateLimit-Interval-Seconds": "2",
    }
    state.learn("get_issue", now=0.0, status=429, headers=headers, member="m1", recent=nothing)
    # The user's bucket covers every call: the pace and the gate are tracker-wide.
    assert state.paces[scope_key("*", 2)].learned == 10
    assert state.blocked == {"*": 1.0}


def test_a_429_quota_counts_the_calls_made_before_it_was_known() -> None:
    """The quota a 429 names paces the refused endpoint, counting this process's earlier calls: after
    the gate, slots come free at the pace those calls were made, not all at once."""
    calls = [float(t) for t in range(300)]  # creations at 1/s, then a 429 at t=300 naming 60 per minute

    def recent(scope: str, since: float) -> list[float]:
        assert scope == "create_issue"
        return [t for t in calls if t >= since]

    state = TrackerState()
    headers = {**GITLAB_429, "RateLimit-Limit": "60", "Retry-After": "1"}
    state.learn("create_issue", now=300.0, status=429, headers=headers, member="m1", recent=recent)
    pace = state.paces[scope_key("create_issue", 60)]
    assert pace.learned == 60
    # The calls of the last minute (t = 240 ... 299) fill the window; they expire at 300.5 ... 359.5.
    assert pace.slots[0] == 300.5
    assert len(pace.slots) == 60
    # After the gate, one slot comes free per second, as the calls were made.
    assert admit(state, "create_issue", now=301.0) == (0.0, True)
    assert admit(state, "create_issue", now=301.0) == (0.5, True)
    assert admit(state, "create_issue", now=301.0) == (1.5, True)


def test_a_second_process_adds_its_own_calls_when_it_meets_the_quota() -> None:
    """Another process that learns of the quota through the shared state adds its own calls of the
    window before deciding, so the two together stay under the quota."""
    state = TrackerState()
    headers = {**GITLAB_429, "RateLimit-Limit": "4", "Retry-After": "1"}
    state.learn("create_issue", now=10.0, status=429, headers=headers, member="a", recent=lambda s, t: [8.0, 9.0])
    other_calls = [7.0, 9.5]
    decision = state.admit("create_issue", now=11.0, configured={}, member="b", recent=lambda s, t: other_calls)
    # Four calls are in the window (two of each process): the next slot is the first to expire.
    assert decision.admitted is False
    assert round(decision.wait, 3) == round(7.0 + 60.5 - 11.0, 3)
    pace = state.paces[scope_key("create_issue", 60)]
    assert pace.members == ["a", "b"]
    # Joining happens once: b's calls are not counted twice.
    state.admit("create_issue", now=11.0, configured={}, member="b", recent=lambda s, t: other_calls)
    assert len(pace.slots) == 4


def test_gitlab_headers_on_ordinary_answers_set_the_pace_once_running_low() -> None:
    """RateLimit-Remaining below half of RateLimit-Limit on a 200 paces every call: with 2 calls
    left until the reset, two more go and the third waits for the reset."""
    now = 1_767_225_600.0
    state = TrackerState()
    headers = {"RateLimit-Limit": "10", "RateLimit-Remaining": "2", "RateLimit-Reset": str(int(now) + 30)}
    state.learn("get_issue", now=now, status=200, headers=headers, member="m1", recent=nothing)
    assert admit(state, "get_issue", now=now) == (0.0, True)
    assert admit(state, "list_issues", now=now) == (0.0, True)
    assert admit(state, "get_issue", now=now) == (30.0, False)


def test_learned_quota_lapses_one_window_after_the_last_429() -> None:
    """A quota learned from a 429 paces for one window after the tracker last named it; then the
    pace and its log are forgotten and calls go unpaced (the next 429 would teach it again)."""
    state = TrackerState()
    headers = {**GITLAB_429, "RateLimit-Limit": "2", "Retry-After": "1"}
    state.learn("create_issue", now=0.0, status=429, headers=headers, member="m1", recent=nothing)
    assert [admit(state, "create_issue", now=2.0)[1] for _ in range(3)] == [True, True, False]
    assert admit(state, "create_issue", now=60.0) == (0.0, True)
    assert state.paces == {}
    assert [admit(state, "create_issue", now=61.0)[1] for _ in range(5)] == [True] * 5


def test_a_new_429_renews_the_learned_quota() -> None:
    """Each 429 naming the quota keeps it for another window from then."""
    state = TrackerState()
    headers = {**GITLAB_429, "RateLimit-Limit": "1", "Retry-After": "1"}
    state.learn("create_issue", now=0.0, status=429, headers=headers, member="m1", recent=nothing)
    state.learn("create_issue", now=50.0, status=429, headers=headers, member="m1", recent=nothing)
    assert state.paces[scope_key("create_issue", 60)].learned_until == 110.0
    assert admit(state, "create_issue", now=100.0) == (0.0, True)
    assert admit(state, "create_issue", now=100.0)[1] is False


def test_no_slot_is_promised_beyond_the_learned_window() -> None:
    """A short limit (8 creations a minute for a few seconds, as in the soak): callers whose slot
    lies beyond the window the tracker named are not promised it; they come back when the quota
    lapses, so a limit that is gone holds nobody back for longer than one window."""
    calls = [float(t) for t in range(8)]
    state = TrackerState()
    headers = {**GITLAB_429, "RateLimit-Limit": "8", "Retry-After": "52"}
    state.learn("create_issue", now=8.0, status=429, headers=headers, member="m1", recent=lambda s, t: calls)
    waits = [admit(state, "create_issue", now=9.0) for _ in range(12)]
    # The gate ends at 60; slots free at 60.5, 61.5 ... 67.5, but the quota lapses at 68 (8 + 60):
    # eight callers get those slots, the other four come back at 68 without a promise.
    assert waits[:8] == [(51.5 + i, False) for i in range(8)]
    assert waits[8:] == [(59.0, False)] * 4
    assert len(state.paces[scope_key("create_issue", 60)].promised) == 8
    assert admit(state, "create_issue", now=68.0) == (0.0, True)  # lapsed: unpaced


def test_a_configured_quota_never_lapses_and_keeps_its_log() -> None:
    """A quota from settings paces for as long as it is configured; a learned one beside it lapses."""
    quotas = {scope_key("create_issue", 60): Quota(3, 60.0)}
    state = TrackerState()
    headers = {**GITLAB_429, "RateLimit-Limit": "2", "Retry-After": "1"}
    state.learn("create_issue", now=0.0, status=429, headers=headers, member="m1", recent=nothing)
    assert [admit(state, "create_issue", now=1.0, configured=quotas)[1] for _ in range(3)] == [True, True, False]
    # The learned 2 lapsed at 60; the configured 3 still counts the two calls of t=1 (they leave the
    # window at 61.5): one call goes at once, two more when those leave, the fourth waits a minute.
    waits = [admit(state, "create_issue", now=61.0, configured=quotas) for _ in range(4)]
    assert waits == [(0.0, True), (0.5, True), (0.5, True), (60.5, False)]


def test_state_round_trips_and_garbage_is_a_fresh_start() -> None:
    """The stored form keeps gates, quotas, slots, promises and members; an unreadable one is empty."""
    state = TrackerState()
    state.learn("create_issue", now=0.0, status=429, headers=GITLAB_429, member="m1", recent=lambda s, t: [0.25])
    admit(state, "create_issue", now=1.0)
    copy = TrackerState.decode(state.encode())
    assert copy.blocked == state.blocked
    assert copy.paces == state.paces
    assert TrackerState.decode(b'{"blocked": [') == TrackerState()
    assert TrackerState.decode(None) == TrackerState()


def test_configured_quotas_by_scope() -> None:
    """Settings become quotas: all calls per second and per minute, issue creations per minute."""
    assert configured_quotas() == {}
    assert configured_quotas(max_requests_per_second=5, max_requests_per_minute=100, max_creates_per_minute=20) == {
        "*/1": Quota(5, 1.0),
        "*/60": Quota(100, 60.0),
        "create_issue/60": Quota(20, 60.0),
    }


def test_configured_and_learned_quota_take_the_smaller() -> None:
    """When settings and the tracker both name a quota for one scope, the smaller one counts."""
    state = TrackerState()
    headers = {**GITLAB_429, "RateLimit-Limit": "2", "Retry-After": "0"}
    state.learn("create_issue", now=0.0, status=429, headers=headers, member="m1", recent=nothing)
    quotas = {scope_key("create_issue", 60): Quota(5, 60.0)}
    results = [admit(state, "create_issue", now=1.0, configured=quotas) for _ in range(3)]
    assert [admitted for _, admitted in results] == [True, True, False]


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 3))
        self.now += seconds


def test_limiter_sleeps_a_short_wait_and_raises_a_long_one_with_the_delay() -> None:
    """``before`` sleeps when the slot is within SHORT_WAIT_SECONDS, else raises RetryableError with
    the exact delay; ``after`` turns a 429 into a gate shared through the store."""
    clock = Clock()
    store = MemoryStore()
    limit = TrackerRateLimit(
        tracker="gitlab",
        url="https://gitlab.example",
        store=store,
        quotas={scope_key("*", 1): Quota(2, 1.0)},
        clock=clock,
        sleep=clock.sleep,
    )
    limit.before("get_issue")
    limit.before("get_issue")
    limit.before("get_issue")  # the third call of the second waits for the first slot: 1.1 s
    assert clock.slept == [1.1]
    limit.after("create_issue", 429, {"Retry-After": "20"})
    with pytest.raises(RetryableError) as info:
        limit.before("get_issue")
    assert info.value.retry_after == pytest.approx(20.0)
    assert "429" in str(info.value)
    # Another limiter of the same tracker URL (another process) sees the same gate.
    other = TrackerRateLimit(
        tracker="gitlab", url="https://gitlab.example/", store=store, clock=clock, sleep=clock.sleep
    )
    with pytest.raises(RetryableError):
        other.before("list_issues")
    clock.now += 20
    other.before("list_issues")


def test_limiter_ignores_ordinary_answers_without_touching_the_store() -> None:
    """A 2xx without quota headers (or with plenty left) leaves the shared state alone."""

    class CountingStore(MemoryStore):
        updates = 0

        def update(self, key, change):  # type: ignore[no-untyped-def]
            CountingStore.updates += 1
            return super().update(key, change)

    clock = Clock()
    limit = TrackerRateLimit(tracker="gitlab", url="https://g.example", store=CountingStore(), clock=clock)
    limit.after("get_issue", 200, {})
    limit.after("get_issue", 200, {"RateLimit-Limit": "100", "RateLimit-Remaining": "80", "RateLimit-Reset": "5"})
    assert CountingStore.updates == 0
    limit.after("get_issue", 200, {"ratelimit-limit": "100", "ratelimit-remaining": "3", "ratelimit-reset": "5"})
    assert CountingStore.updates == 1
