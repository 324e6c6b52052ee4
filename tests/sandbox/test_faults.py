"""Fault injection on the tracker APIs: outages, 5xx windows, random errors, create-then-502, rate limits."""

from __future__ import annotations

import time

import gitlab
import requests

from sandbox.config import SandboxConfig
from tests.sandbox.conftest import GITLAB_TOKEN, new_jira_issue, set_faults

ISSUE = {"fields": {"project": {"key": "SUP"}, "issuetype": {"name": "Bug"}, "summary": "s"}}


def test_outage_answers_503_with_retry_after(http: requests.Session, url: str) -> None:
    """During an outage every API call of that tracker is 503 with Retry-After; the other tracker works."""
    set_faults(url, {"tracker": "gitlab", "outage": True, "retry_after_s": 12})
    response = http.get(f"{url}/api/v4/projects/1")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "12"
    assert http.get(f"{url}/rest/api/2/myself").status_code == 200
    unauthenticated = requests.get(f"{url}/api/v4/user", timeout=5)
    assert unauthenticated.status_code == 503
    requests.delete(f"{url}/_sandbox/faults", timeout=5)
    assert http.get(f"{url}/api/v4/projects/1").status_code == 200


def test_create_then_502_still_creates(http: requests.Session, url: str) -> None:
    """``create_then_502`` answers 502 for N creates although each issue was created (and hooked)."""
    set_faults(url, {"tracker": "both", "create_then_502": 2})
    gitlab_reply = http.post(f"{url}/api/v4/projects/1/issues", json={"title": "[ST-X] lost reply"})
    jira_reply = http.post(f"{url}/rest/api/2/issue", json=ISSUE)
    assert (gitlab_reply.status_code, jira_reply.status_code) == (502, 502)
    assert http.post(f"{url}/api/v4/projects/1/issues", json={"title": "ok"}).status_code == 201
    titles = [i["title"] for i in http.get(f"{url}/api/v4/projects/1/issues").json()]
    assert "[ST-X] lost reply" in titles
    state = requests.get(f"{url}/_sandbox/state", timeout=5).json()
    assert [i["key"] for i in state["jira"]["issues"]] == ["SUP-1"]
    faults = [r["fault"] for r in requests.get(f"{url}/_sandbox/requests", timeout=5).json()["requests"]]
    assert faults.count("create_then_502") == 2


def test_rate_limit_429_beyond_per_minute(http: requests.Session, url: str) -> None:
    """Jira creates beyond ``per_minute`` get 429 with Retry-After and X-RateLimit-Reset; reads are unaffected."""
    set_faults(url, {"tracker": "jira", "rate_limit": {"endpoint": "create_issue", "per_minute": 3}})
    statuses = [http.post(f"{url}/rest/api/2/issue", json=ISSUE).status_code for _ in range(5)]
    assert statuses == [201, 201, 201, 429, 429]
    limited = http.post(f"{url}/rest/api/2/issue", json=ISSUE)
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["X-RateLimit-Reset"].endswith("Z")
    assert http.get(f"{url}/rest/api/2/search", params={"jql": ""}).json()["total"] == 3
    log = requests.get(f"{url}/_sandbox/requests", params={"tracker": "jira", "status": "429"}, timeout=5).json()
    assert log["count"] == 3
    assert {r["endpoint"] for r in log["requests"]} == {"create_issue"}


def test_status_window_ends(http: requests.Session, url: str) -> None:
    """``status_window`` answers the given 5xx for N seconds, then the API is back."""
    set_faults(url, {"tracker": "jira", "endpoint": "search", "status_window": {"seconds": 0.3, "status": 502}})
    assert http.get(f"{url}/rest/api/2/search").status_code == 502
    assert http.get(f"{url}/rest/api/2/myself").status_code == 200
    time.sleep(0.35)
    assert http.get(f"{url}/rest/api/2/search").status_code == 200


def test_error_rate_is_repeatable_with_a_seed(http: requests.Session, url: str) -> None:
    """Random 5xx at ``error_rate`` follow the seeded generator: the same seed gives the same sequence."""

    def run() -> list[int]:
        requests.post(f"{url}/_sandbox/faults", json={"rules": [{"tracker": "gitlab", "error_rate": 0.5}]}, timeout=5)
        requests.post(f"{url}/_sandbox/faults", json={"seed": 42}, timeout=5)
        return [http.get(f"{url}/api/v4/user").status_code for _ in range(20)]

    first, second = run(), run()
    assert first == second
    assert 200 in first
    assert {s for s in first if s != 200} <= {500, 502, 503, 504}
    assert len({s for s in first if s != 200}) >= 1


def test_latency_applies_to_matching_endpoints(http: requests.Session, url: str) -> None:
    """``latency_ms`` delays only the endpoints its pattern matches."""
    set_faults(url, {"tracker": "gitlab", "endpoint": "get_user", "latency_ms": 250})
    started = time.time()
    http.get(f"{url}/api/v4/user")
    slow = time.time() - started
    started = time.time()
    http.get(f"{url}/api/v4/projects/1")
    fast = time.time() - started
    assert slow >= 0.25
    assert fast < 0.2


def test_invalid_fault_rule_is_400(url: str) -> None:
    """Unknown keys or out-of-range values are refused with the problem named."""
    response = requests.post(f"{url}/_sandbox/faults", json={"tracker": "gitlab", "error_rat": 0.1}, timeout=5)
    assert response.status_code == 400
    assert "error_rat" in response.json()["error"]
    assert requests.post(f"{url}/_sandbox/faults", json={"error_rate": 2}, timeout=5).status_code == 400


def test_cli_flags_become_fault_rules() -> None:
    """``--latency-ms``, ``--error-rate`` and ``--create-rate-per-minute`` map to start-up rules."""
    config = SandboxConfig(latency_ms=5, error_rate=0.1, create_rate_per_minute=200)
    assert config.initial_fault_rules() == [
        {"tracker": "both", "latency_ms": 5},
        {"tracker": "both", "error_rate": 0.1},
        {"tracker": "both", "rate_limit": {"endpoint": "create_issue", "per_minute": 200}},
    ]


def test_reset_restores_seed_data_and_clears_faults(http: requests.Session, url: str) -> None:
    """``POST /_sandbox/reset`` drops issues, logs and runtime faults."""
    new_jira_issue(http, url, "gone soon")
    set_faults(url, {"tracker": "jira", "outage": True})
    requests.post(f"{url}/_sandbox/reset", timeout=5)
    state = requests.get(f"{url}/_sandbox/state", timeout=5).json()
    assert state["jira"]["issues"] == []
    assert requests.get(f"{url}/_sandbox/faults", timeout=5).json()["rules"] == []
    assert http.get(f"{url}/rest/api/2/myself").status_code == 200
    assert new_jira_issue(http, url, "again")["key"] == "SUP-1"


def test_create_then_502_budget_is_spent_only_by_successful_creates(http: requests.Session, url: str) -> None:
    """A create refused with 400 does not use up ``create_then_502``; the next good create gets the 502."""
    set_faults(url, {"tracker": "gitlab", "create_then_502": 1})
    assert http.post(f"{url}/api/v4/projects/1/issues", json={"title": ""}).status_code == 400
    assert http.post(f"{url}/api/v4/projects/1/issues", json={"title": "made"}).status_code == 502
    assert http.post(f"{url}/api/v4/projects/1/issues", json={"title": "made too"}).status_code == 201
    assert len(http.get(f"{url}/api/v4/projects/1/issues").json()) == 2


def test_client_retry_after_create_then_502_duplicates(url: str) -> None:
    """python-gitlab with ``retry_transient_errors`` re-POSTs after the lost 502 and files the issue twice."""
    set_faults(url, {"tracker": "gitlab", "create_then_502": 1})
    with gitlab.Gitlab(url, private_token=GITLAB_TOKEN, retry_transient_errors=True) as gl:
        issue = gl.projects.get(1, lazy=True).issues.create({"title": "[ST-DUP] once?"})
        assert issue.iid == 2
        assert len(gl.projects.get(1, lazy=True).issues.list(search="[ST-DUP]", get_all=True)) == 2


def test_sprint_closes_after_a_create_before_its_answer(http: requests.Session, url: str) -> None:
    """``close_sprint_after_create`` completes the active Jira sprint (starting the next) once the
    issue exists and before the create is answered: adding the issue to that sprint is then a 400."""
    set_faults(url, {"tracker": "jira", "close_sprint_after_create": 1})
    created = http.post(f"{url}/rest/api/2/issue", json=ISSUE)
    assert created.status_code == 201
    sprints = {s["id"]: s["state"] for s in http.get(f"{url}/rest/agile/1.0/board/1/sprint").json()["values"]}
    assert sprints == {1: "closed", 2: "closed", 3: "active", 4: "future"}
    refused = http.post(f"{url}/rest/agile/1.0/sprint/2/issue", json={"issues": [created.json()["key"]]})
    assert refused.status_code == 400
    assert refused.json()["errorMessages"] == ["Cannot move issues to a closed sprint."]
    assert (
        http.post(f"{url}/rest/agile/1.0/sprint/3/issue", json={"issues": [created.json()["key"]]}).status_code == 204
    )
    # The budget is spent: the next create closes nothing.
    assert http.post(f"{url}/rest/api/2/issue", json=ISSUE).status_code == 201
    states = [s["state"] for s in http.get(f"{url}/rest/agile/1.0/board/1/sprint").json()["values"]]
    assert states == ["closed", "closed", "active", "future"]
    faults = requests.get(f"{url}/_sandbox/faults", timeout=5).json()["rules"]
    assert "close_sprint_after_create" not in faults[0]


def test_close_sprint_control(http: requests.Session, url: str) -> None:
    """``POST /_sandbox/sprints/close`` completes Jira's active sprint (starting the next unless told
    not to) and closes GitLab's current milestone; a sprint that is not active is refused."""
    closed = requests.post(f"{url}/_sandbox/sprints/close", json={"tracker": "jira"}, timeout=5)
    assert closed.status_code == 200
    assert (closed.json()["closed"]["id"], closed.json()["started"]["id"]) == (2, 3)
    again = requests.post(f"{url}/_sandbox/sprints/close", json={"tracker": "jira", "sprint": 2}, timeout=5)
    assert again.status_code == 400
    quiet = requests.post(
        f"{url}/_sandbox/sprints/close", json={"tracker": "jira", "start_next": False}, timeout=5
    ).json()
    assert (quiet["closed"]["id"], quiet["started"]) == (3, None)
    milestone = requests.post(f"{url}/_sandbox/sprints/close", json={"tracker": "gitlab"}, timeout=5).json()
    states = {m["id"]: m["state"] for m in http.get(f"{url}/api/v4/projects/1/milestones").json()}
    assert states[milestone["closed"]["id"]] == "closed"
    assert requests.post(f"{url}/_sandbox/sprints/close", json={"tracker": "x"}, timeout=5).status_code == 400
