"""The tracker gate and pacing through the real adapters (GitLab and Jira mocked at the HTTP boundary
with ``responses``), and shared between limiters and processes through a real file and a real Redis."""

from __future__ import annotations

import multiprocessing
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import responses

from bridge.adapters.trackers.gitlab import GitLabTracker
from bridge.adapters.trackers.jira import JiraTracker
from bridge.adapters.trackers.ratelimit import Quota, StateStore, TrackerRateLimit, scope_key
from bridge.adapters.trackers.ratelimit_stores import FileStore, MemoryStore, RedisStore
from bridge.bootstrap import build_trackers
from bridge.domain import IssueRef
from bridge.errors import RetryableError
from tests.conftest import make_settings
from tests.integration import test_gitlab_adapter as gl
from tests.integration import test_jira_adapter as jr

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
GITLAB_429 = {
    "Retry-After": "30",
    "RateLimit-Name": "throttle_authenticated_api",
    "RateLimit-Limit": "2",
    "RateLimit-Observed": "3",
    "RateLimit-Remaining": "0",
    "RateLimit-Reset": str(int(NOW) + 30),
}


class Clock:
    """Wall-clock seconds that tests move instead of sleeping."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 3))
        self.now += seconds


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def clock() -> Clock:
    return Clock()


def gitlab(clock: Clock, quotas: dict[str, Quota] | None = None) -> GitLabTracker:
    limit = TrackerRateLimit(
        tracker="gitlab", url=gl.BASE, store=MemoryStore(), quotas=quotas, clock=clock, sleep=clock.sleep
    )
    return GitLabTracker(url=gl.BASE, token=gl.TOKEN, rate_limit=limit)


def test_gitlab_429_blocks_the_next_calls_without_network(rsps: responses.RequestsMock, clock: Clock) -> None:
    """After a 429 with Retry-After that names no limit (GitLab's application limits), every call to
    that GitLab (any endpoint) raises RetryableError with the time left and sends nothing; once the
    time is up, calls go again."""
    tracker = gitlab(clock)
    body = {"message": {"error": "This endpoint has been requested too many times. Try again later."}}
    rsps.post(gl.ISSUES, status=429, json=body, headers={"Retry-After": "30"})
    with pytest.raises(RetryableError) as created:
        tracker.create_issue(gl.DEST, gl.new_issue())
    assert created.value.retry_after == 30
    clock.now += 10
    with pytest.raises(RetryableError) as found:
        tracker.find_issue(gl.DEST, tracking_id=gl.TID)
    assert found.value.retry_after == pytest.approx(20)
    with pytest.raises(RetryableError):
        tracker.issue_state(gl.DEST, IssueRef(key="14"))
    assert len(rsps.calls) == 1
    clock.now += 20
    rsps.get(gl.ISSUES, json=[])
    assert tracker.find_issue(gl.DEST, tracking_id=gl.TID) is None
    assert len(rsps.calls) == 2


def test_gitlab_429_quota_paces_creations_at_the_pace_of_the_earlier_ones(
    rsps: responses.RequestsMock, clock: Clock
) -> None:
    """The quota a 429 names (RateLimit-Limit per minute) paces issue creation after the gate: the slot
    of the oldest creation in the window comes free first. Searches are not in that scope."""
    tracker = gitlab(clock)
    rsps.post(gl.ISSUES, json=gl.issue_json(1, f"[{gl.TID}] a"), status=201)
    tracker.create_issue(gl.DEST, gl.new_issue())
    clock.now += 10
    tracker.create_issue(gl.DEST, gl.new_issue())
    clock.now += 1
    rsps.replace(responses.POST, gl.ISSUES, status=429, body="Retry later", headers={**GITLAB_429, "Retry-After": "2"})
    with pytest.raises(RetryableError):
        tracker.create_issue(gl.DEST, gl.new_issue())
    rsps.get(gl.ISSUES, json=[])
    assert tracker.find_issue(gl.DEST, tracking_id=gl.TID) is None  # searches go on meanwhile
    # Three creations are in the window (t=0, 10 and the refused one at 11: some trackers count refused
    # requests), so with a quota of 2 the one of t=10 must leave it first: at 70.5 s. That slot is
    # promised to this caller, beyond the 2 s gate. The next slot (71.5) lies beyond the minute the
    # quota is known for (until 11 + 60): the next caller comes back when it lapses, at 71.
    with pytest.raises(RetryableError) as paced:
        tracker.create_issue(gl.DEST, gl.new_issue())
    assert paced.value.retry_after == pytest.approx(70.5 - 11)
    assert "paced" in str(paced.value)
    clock.now += 2
    with pytest.raises(RetryableError) as next_one:
        tracker.create_issue(gl.DEST, gl.new_issue())
    assert next_one.value.retry_after == pytest.approx(71 - 13)
    assert [c.request.method for c in rsps.calls] == ["POST", "POST", "POST", "GET"]


def test_gitlab_ratelimit_headers_on_ordinary_answers_set_the_pace(rsps: responses.RequestsMock, clock: Clock) -> None:
    """GitLab's RateLimit-* on a 200: with 1 call left until the reset in 20 s, one more call goes and
    the next is held until the reset, without a request."""
    tracker = gitlab(clock)
    quota = {"RateLimit-Limit": "600", "RateLimit-Remaining": "1", "RateLimit-Reset": str(int(NOW) + 20)}
    rsps.get(gl.ISSUES, json=[], headers=quota)
    assert tracker.find_issue(gl.DEST, tracking_id=gl.TID) is None
    assert tracker.find_issue(gl.DEST, tracking_id=gl.TID) is None
    with pytest.raises(RetryableError) as held:
        tracker.find_issue(gl.DEST, tracking_id=gl.TID)
    assert held.value.retry_after == pytest.approx(20)
    assert len(rsps.calls) == 2


def test_configured_rate_waits_briefly_in_the_call(rsps: responses.RequestsMock, clock: Clock) -> None:
    """``max_requests_per_second``: the call over the quota that can go within 2 s waits, then goes."""
    tracker = gitlab(clock, {scope_key("*", 1): Quota(2, 1.0)})
    rsps.get(gl.ISSUES, json=[])
    for _ in range(3):
        tracker.find_issue(gl.DEST, tracking_id=gl.TID)
    assert clock.slept == [1.1]
    assert len(rsps.calls) == 3


def test_jira_burst_429_holds_back_only_that_endpoint(rsps: responses.RequestsMock, clock: Clock) -> None:
    """Jira's burst limit (RateLimit-Reason jira-burst-based) is per endpoint: creations wait for
    Retry-After without a request while searches go on."""
    limit = TrackerRateLimit(tracker="jira", url=jr.URL, store=MemoryStore(), clock=clock, sleep=clock.sleep)
    tracker = JiraTracker(url=jr.URL, user=jr.USER, api_token=jr.TOKEN, rate_limit=limit)
    headers = {
        "Retry-After": "5",
        "X-RateLimit-Limit": "100",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "2026-01-01T00:01Z",
        "X-RateLimit-NearLimit": "true",
        "RateLimit-Reason": "jira-burst-based",
    }
    rsps.post(f"{jr.API}/issue", status=429, json={"errorMessages": ["Rate limit exceeded."]}, headers=headers)
    with pytest.raises(RetryableError) as refused:
        tracker.create_issue(jr.DEST, jr.new_issue())
    assert refused.value.retry_after == 5
    rsps.get(jr.SEARCH, json={"issues": [], "isLast": True})
    assert tracker.find_issue(jr.DEST, tracking_id="ST-7K3Q9X2M") is None
    with pytest.raises(RetryableError) as held:
        tracker.create_issue(jr.DEST, jr.new_issue())
    assert held.value.retry_after == pytest.approx(5)
    assert len(rsps.calls) == 2


# -- shared between limiters and processes -------------------------------------------------------


@pytest.fixture(params=["file", pytest.param("redis", marks=pytest.mark.redis)])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], StateStore]]:
    """Build a new store over the same shared place each call (as each process would)."""
    if request.param == "file":
        yield lambda: FileStore(tmp_path / "ratelimit")
        return
    prefix = f"bridge-test:{uuid.uuid4().hex[:8]}:"
    clients: list[redis.Redis] = []

    def build() -> StateStore:
        clients.append(redis.Redis.from_url(REDIS_URL))
        return RedisStore(clients[-1], prefix=prefix)

    yield build
    for key in clients[0].scan_iter(f"{prefix}*"):
        clients[0].delete(key)
    for client in clients:
        client.close()


def test_a_429_seen_by_one_limiter_blocks_the_other(make_store: Callable[[], StateStore], clock: Clock) -> None:
    """Two limiters of one tracker URL over the same store: the other one refuses calls too."""
    one = TrackerRateLimit(tracker="gitlab", url=gl.BASE, store=make_store(), clock=clock, sleep=clock.sleep)
    two = TrackerRateLimit(tracker="gitlab", url=gl.BASE, store=make_store(), clock=clock, sleep=clock.sleep)
    other_tracker = TrackerRateLimit(tracker="gitlab", url="https://other.example", store=make_store(), clock=clock)
    one.before("create_issue")
    one.after("create_issue", 429, {"Retry-After": "30"})
    with pytest.raises(RetryableError) as info:
        two.before("list_issues")
    assert info.value.retry_after == pytest.approx(30)
    other_tracker.before("list_issues")  # another tracker URL is not affected


def test_two_limiters_share_one_quota(make_store: Callable[[], StateStore], clock: Clock) -> None:
    """A configured quota of 5 per minute holds for two limiters together, and refused callers of
    either are promised distinct slots."""
    quotas = {scope_key("create_issue", 60): Quota(5, 60.0)}
    limiters = [
        TrackerRateLimit(tracker="gitlab", url=gl.BASE, store=make_store(), quotas=quotas, clock=clock)
        for _ in range(2)
    ]
    for i in range(5):
        clock.now += 1
        limiters[i % 2].before("create_issue")
    promised = []
    for i in range(3):
        clock.now += 1
        with pytest.raises(RetryableError) as refused:
            limiters[i % 2].before("create_issue")
        promised.append(round(clock.now + (refused.value.retry_after or 0), 3))
    # Calls at t=1..5 leave the window at 61.5 ... 63.5 (+ the start); promises are those, in order.
    assert promised == [NOW + 61.5, NOW + 62.5, NOW + 63.5]


QUOTA = 150


def _store(kind: str, where: str) -> StateStore:
    return FileStore(Path(where)) if kind == "file" else RedisStore(redis.Redis.from_url(REDIS_URL), prefix=where)


def _limit(store: StateStore, **kwargs: float) -> TrackerRateLimit:
    return TrackerRateLimit(
        tracker="gitlab", url=gl.BASE, store=store, quotas={scope_key("*", 60): Quota(QUOTA, 60.0)}, **kwargs
    )


def _hammer(kind: str, where: str, calls: int, start: object, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    limit = _limit(_store(kind, where), short_wait=0)
    start.wait()  # type: ignore[attr-defined]
    admitted = 0
    for _ in range(calls):
        try:
            limit.before("get_issue")
            admitted += 1
        except RetryableError:
            pass
    results.put(admitted)


@pytest.mark.parametrize("kind", ["file", pytest.param("redis", marks=pytest.mark.redis)])
def test_two_processes_together_stay_within_the_quota(kind: str, tmp_path: Path) -> None:
    """Two worker processes calling at once, 300 calls each against a shared quota of 150 a minute:
    exactly 150 go, and every decision of either process is in the shared state (a lost update
    between them would let more through, or lose a slot or a promise)."""
    where = str(tmp_path / "ratelimit") if kind == "file" else f"bridge-test:{uuid.uuid4().hex[:8]}:"
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    start = context.Barrier(2)
    processes = [context.Process(target=_hammer, args=(kind, where, 300, start, results)) for _ in range(2)]
    for process in processes:
        process.start()
    counts = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    assert sum(counts) == QUOTA
    state = _store(kind, where).update(_limit(MemoryStore()).key, lambda state: state)
    pace = state.paces[scope_key("*", 60)]
    assert len(pace.slots) == QUOTA
    assert len(pace.promised) == 2 * 300 - QUOTA
    assert len(set(pace.members)) == 2
    if kind == "redis":
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"{where}*"):
            client.delete(key)
        client.close()


def test_bootstrap_shares_the_gate_between_two_builds_through_the_instance_directory(
    rsps: responses.RequestsMock, tmp_path: Path
) -> None:
    """``build_trackers`` wires every tracker to a store shared by the processes of one instance
    directory: a 429 met by one worker's adapter holds back another worker's."""
    settings = make_settings(tmp_path)
    first = build_trackers(settings, {"gitlab"})["gitlab"]
    second = build_trackers(settings, {"gitlab"})["gitlab"]
    base = f"{settings.trackers.gitlab.url}/api/v4/projects/acme%2Fsupport/issues"
    rsps.get(base, status=429, body="Retry later", headers={"Retry-After": "120"})
    with pytest.raises(RetryableError):
        first.find_issue(gl.DEST, tracking_id=gl.TID)
    with pytest.raises(RetryableError) as held:
        second.find_issue(gl.DEST, tracking_id=gl.TID)
    assert held.value.retry_after is not None
    assert 100 < held.value.retry_after <= 120
    assert len(rsps.calls) == 1
    assert (tmp_path / "instance" / "ratelimit").is_dir()
