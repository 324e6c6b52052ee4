"""Webhooks in the vendors' formats, delivered to a real HTTP receiver, with retries and duplicates."""

from __future__ import annotations

import hashlib
import hmac
import time

import requests

from tests.sandbox.conftest import GITLAB_SECRET, JIRA_SECRET, Receiver, new_jira_issue, set_faults


def _gitlab_issue(http: requests.Session, url: str, **attrs: object) -> dict[str, object]:
    response = http.post(f"{url}/api/v4/projects/1/issues", json={"title": "hooked", **attrs})
    assert response.status_code == 201
    data: dict[str, object] = response.json()
    return data


def test_gitlab_issue_hook_headers_and_label_changes(receiver: Receiver, http: requests.Session, url: str) -> None:
    """Create then relabel: Issue Hooks carry GitLab's headers, ``action`` and label objects in ``changes``."""
    _gitlab_issue(http, url, labels="support")
    http.put(f"{url}/api/v4/projects/1/issues/1", json={"labels": "support,severity::high"})
    opened, updated = receiver.wait_count(2, "/gitlab")
    headers = opened.headers
    assert headers["X-Gitlab-Event"] == "Issue Hook"
    assert headers["X-Gitlab-Token"] == GITLAB_SECRET
    assert headers["User-Agent"] == "GitLab/17.6.0"
    assert headers["X-Gitlab-Instance"] == url
    for name in ("X-Gitlab-Event-UUID", "X-Gitlab-Webhook-UUID", "Idempotency-Key"):
        assert headers[name]
    assert opened.headers["Idempotency-Key"] != updated.headers["Idempotency-Key"]
    assert opened.headers["X-Gitlab-Webhook-UUID"] == updated.headers["X-Gitlab-Webhook-UUID"]
    assert opened.json["object_kind"] == "issue"
    assert opened.json["object_attributes"]["action"] == "open"
    assert opened.json["user"]["username"] == "bridge-bot"
    body = updated.json
    assert body["object_attributes"]["action"] == "update"
    changes = body["changes"]
    assert [label["title"] for label in changes["labels"]["previous"]] == ["support"]
    assert [label["title"] for label in changes["labels"]["current"]] == ["severity::high", "support"]
    assert changes["labels"]["current"][0]["type"] == "ProjectLabel"
    assert changes["updated_at"]["current"].endswith(" UTC")
    assert [label["title"] for label in body["labels"]] == ["severity::high", "support"]


def test_gitlab_close_reports_state_id_change(receiver: Receiver, http: requests.Session, url: str) -> None:
    """Closing sends ``action: close`` with ``changes.state_id`` 1 -> 2 and ``closed_at``; reopen 2 -> 1."""
    _gitlab_issue(http, url)
    http.put(f"{url}/api/v4/projects/1/issues/1", json={"state_event": "close"})
    http.put(f"{url}/api/v4/projects/1/issues/1", params={"state_event": "reopen"})
    _, closed, reopened = receiver.wait_count(3, "/gitlab")
    assert closed.json["object_attributes"]["action"] == "close"
    assert closed.json["object_attributes"]["state"] == "closed"
    assert closed.json["changes"]["state_id"] == {"previous": 1, "current": 2}
    assert closed.json["changes"]["closed_at"]["previous"] is None
    assert reopened.json["object_attributes"]["action"] == "reopen"
    assert reopened.json["changes"]["state_id"] == {"previous": 2, "current": 1}


def test_gitlab_note_hook_public_and_internal(receiver: Receiver, http: requests.Session, url: str) -> None:
    """A public note is a Note Hook; an internal note is a Confidential Note Hook with ``confidential_note``."""
    _gitlab_issue(http, url)
    http.post(f"{url}/api/v4/projects/1/issues/1/notes", json={"body": "hello"})
    http.post(f"{url}/api/v4/projects/1/issues/1/notes", json={"body": "staff only", "internal": True})
    _, public, internal = receiver.wait_count(3, "/gitlab")
    assert public.headers["X-Gitlab-Event"] == "Note Hook"
    assert public.json["event_type"] == "note"
    assert public.json["object_attributes"]["note"] == "hello"
    assert public.json["object_attributes"]["noteable_type"] == "Issue"
    assert public.json["object_attributes"]["internal"] is False
    assert public.json["issue"]["iid"] == 1
    assert internal.headers["X-Gitlab-Event"] == "Confidential Note Hook"
    assert internal.json["event_type"] == "confidential_note"
    assert internal.json["object_attributes"]["internal"] is True


def settled_deliveries(url: str, timeout: float = 5.0) -> list[dict[str, object]]:
    """The sandbox's delivery log once its sender is idle: every delivery planned so far has been sent
    (deliveries are planned while the API call that caused them is answered)."""
    deadline = time.monotonic() + timeout
    while True:
        log = requests.get(f"{url}/_sandbox/webhooks", timeout=5).json()
        if log["idle"]:
            deliveries: list[dict[str, object]] = log["deliveries"]
            return deliveries
        assert time.monotonic() < deadline, "the sandbox's webhook sender never went idle"
        time.sleep(0.02)


def test_registered_gitlab_hook_gets_only_its_events(receiver: Receiver, http: requests.Session, url: str) -> None:
    """A hook registered with only ``issues_events`` gets Issue Hooks (with its token) but no notes."""
    response = http.post(
        f"{url}/api/v4/projects/1/hooks",
        json={"url": f"{receiver.url}/registered", "token": "own-token", "issues_events": True},
    )
    assert response.status_code == 201
    _gitlab_issue(http, url)
    assert http.post(f"{url}/api/v4/projects/1/issues/1/notes", json={"body": "n"}).status_code == 201
    log = settled_deliveries(url)

    def events(path: str) -> tuple[list[object], list[str]]:
        planned = [d["event"] for d in log if d["url"] == f"{receiver.url}{path}" and d["outcome"] == "delivered"]
        received = [r.headers["X-Gitlab-Event"] for r in receiver.received if r.path == path]
        return planned, received

    assert [d["outcome"] for d in log] == ["delivered"] * 3
    assert events("/gitlab") == (["Issue Hook", "Note Hook"], ["Issue Hook", "Note Hook"])  # the note did hook
    assert events("/registered") == (["Issue Hook"], ["Issue Hook"])
    assert next(r for r in receiver.received if r.path == "/registered").headers["X-Gitlab-Token"] == "own-token"


def test_jira_created_hook_is_signed(receiver: Receiver, http: requests.Session, url: str) -> None:
    """``jira:issue_created`` carries ``X-Hub-Signature`` = HMAC-SHA256(secret, raw body) and an identifier."""
    created = new_jira_issue(http, url, "signed")
    (delivery,) = receiver.wait_count(1, "/jira")
    expected = "sha256=" + hmac.new(JIRA_SECRET.encode(), delivery.body, hashlib.sha256).hexdigest()
    assert delivery.headers["X-Hub-Signature"] == expected
    assert delivery.headers["X-Atlassian-Webhook-Identifier"]
    assert "X-Atlassian-Webhook-Retry" not in delivery.headers
    body = delivery.json
    assert body["webhookEvent"] == "jira:issue_created"
    assert isinstance(body["timestamp"], int)
    assert body["timestamp"] > 1_700_000_000_000
    assert body["issue"]["key"] == created["key"]
    assert body["user"]["displayName"] == "Bridge Bot"


def test_jira_transition_changelog_and_comment(receiver: Receiver, http: requests.Session, url: str) -> None:
    """A Done transition reports status and resolution items; comments arrive as ``comment_created``."""
    key = new_jira_issue(http, url, "flow")["key"]
    http.post(f"{url}/rest/api/2/issue/{key}/transitions", json={"transition": {"id": "31"}})
    http.post(
        f"{url}/rest/api/2/issue/{key}/comment",
        json={"body": "internal", "properties": [{"key": "sd.public.comment", "value": {"internal": True}}]},
    )
    _, updated, comment = receiver.wait_count(3, "/jira")
    assert updated.json["webhookEvent"] == "jira:issue_updated"
    assert updated.json["issue_event_type_name"] == "issue_generic"
    items = {item["field"]: item for item in updated.json["changelog"]["items"]}
    assert (items["status"]["from"], items["status"]["toString"]) == ("10000", "Done")
    assert (items["resolution"]["from"], items["resolution"]["toString"]) == (None, "Fixed")
    assert updated.json["issue"]["fields"]["status"]["statusCategory"]["key"] == "done"
    assert comment.json["webhookEvent"] == "comment_created"
    assert comment.json["comment"]["jsdPublic"] is False
    assert comment.json["issue"]["key"] == key


def test_jira_sprint_and_label_changes(receiver: Receiver, http: requests.Session, url: str) -> None:
    """Sprint moves and label edits produce ``Sprint`` and ``labels`` changelog items."""
    key = new_jira_issue(http, url, "plan", labels=["a"])["key"]
    http.post(f"{url}/rest/agile/1.0/sprint/2/issue", json={"issues": [key]})
    http.put(f"{url}/rest/api/2/issue/{key}", json={"update": {"labels": [{"add": "b"}]}})
    _, sprint, labels = receiver.wait_count(3, "/jira")
    (item,) = sprint.json["changelog"]["items"]
    assert (item["field"], item["fieldId"], item["to"], item["toString"]) == (
        "Sprint",
        "customfield_10020",
        "2",
        "SUP Sprint 48",
    )
    (label_item,) = labels.json["changelog"]["items"]
    assert (label_item["fromString"], label_item["toString"]) == ("a", "a b")
    assert labels.json["issue_event_type_name"] == "issue_updated"


def test_retry_after_500_reuses_the_delivery_key(receiver: Receiver, http: requests.Session, url: str) -> None:
    """A 500 from the receiver is retried with the same Idempotency-Key / Jira identifier (+ retry count)."""
    receiver.fail_next.extend([500, 503])
    _gitlab_issue(http, url)
    first, second, third = receiver.wait_count(3, "/gitlab")
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"] == third.headers["Idempotency-Key"]
    assert first.body == third.body
    receiver.fail_next.append(500)
    new_jira_issue(http, url, "retry")
    jira_first, jira_second = receiver.wait_count(2, "/jira")
    assert jira_first.headers["X-Atlassian-Webhook-Identifier"] == jira_second.headers["X-Atlassian-Webhook-Identifier"]
    assert jira_second.headers["X-Atlassian-Webhook-Retry"] == "1"
    log = requests.get(f"{url}/_sandbox/webhooks", params={"tracker": "gitlab"}, timeout=5).json()
    (delivery,) = log["deliveries"]
    assert [a["status"] for a in delivery["attempts"]] == [500, 503, 200]
    assert delivery["outcome"] == "delivered"


def test_unreachable_receiver_fails_after_max_attempts(http: requests.Session, url: str) -> None:
    """Connection failures are retried up to the attempt limit, then the delivery is ``failed``."""
    requests.post(
        f"{url}/_sandbox/webhook-target", json={"tracker": "gitlab", "url": "http://127.0.0.1:9/x"}, timeout=5
    )
    _gitlab_issue(http, url)
    deadline = time.time() + 5
    delivery: dict[str, object] = {}
    while time.time() < deadline:
        (delivery,) = requests.get(f"{url}/_sandbox/webhooks", timeout=5).json()["deliveries"]
        if delivery["outcome"] != "pending":
            break
        time.sleep(0.05)
    assert delivery["outcome"] == "failed"
    assert len(delivery["attempts"]) == 5  # type: ignore[arg-type]


def test_duplicate_delivery_fault(receiver: Receiver, http: requests.Session, url: str) -> None:
    """``webhook_duplicate`` delivers every webhook twice with the same key and body."""
    set_faults(url, {"tracker": "both", "webhook_duplicate": True})
    _gitlab_issue(http, url)
    new_jira_issue(http, url, "twice")
    one, two = receiver.wait_count(2, "/gitlab")
    assert one.headers["Idempotency-Key"] == two.headers["Idempotency-Key"]
    assert one.body == two.body
    jira_one, jira_two = receiver.wait_count(2, "/jira")
    assert jira_one.headers["X-Atlassian-Webhook-Identifier"] == jira_two.headers["X-Atlassian-Webhook-Identifier"]


def test_drop_and_delay_faults(receiver: Receiver, http: requests.Session, url: str) -> None:
    """``webhook_drop_rate: 1`` loses GitLab hooks (logged as dropped); ``webhook_delay_ms`` delays Jira ones."""
    set_faults(url, {"tracker": "gitlab", "webhook_drop_rate": 1.0}, {"tracker": "jira", "webhook_delay_ms": 300})
    _gitlab_issue(http, url)
    started = time.time()
    new_jira_issue(http, url, "late")
    receiver.wait_count(1, "/jira")
    assert time.time() - started >= 0.3
    assert not [r for r in receiver.received if r.path == "/gitlab"]
    dropped = requests.get(f"{url}/_sandbox/webhooks", params={"outcome": "dropped"}, timeout=5).json()
    assert [d["event"] for d in dropped["deliveries"]] == ["Issue Hook"]


def test_webhook_target_can_change_at_runtime(receiver: Receiver, http: requests.Session, url: str) -> None:
    """``POST /_sandbox/webhook-target`` redirects deliveries and changes the secret."""
    requests.post(
        f"{url}/_sandbox/webhook-target",
        json={"tracker": "jira", "url": f"{receiver.url}/moved", "secret": "new-secret"},
        timeout=5,
    )
    new_jira_issue(http, url, "moved")
    (delivery,) = receiver.wait_count(1, "/moved")
    expected = "sha256=" + hmac.new(b"new-secret", delivery.body, hashlib.sha256).hexdigest()
    assert delivery.headers["X-Hub-Signature"] == expected


def test_delivery_log_filters_by_subject_and_since(receiver: Receiver, http: requests.Session, url: str) -> None:
    """``?subject=`` keeps one issue's deliveries; ``?since=<id>`` only the ones after that delivery."""
    _gitlab_issue(http, url)
    _gitlab_issue(http, url)
    http.put(f"{url}/api/v4/projects/1/issues/1", json={"state_event": "close"})
    receiver.wait_count(3, "/gitlab")
    log = f"{url}/_sandbox/webhooks"
    first = requests.get(log, params={"subject": "acme/support#1"}, timeout=5).json()["deliveries"]
    assert [(d["subject"], d["body"]["object_attributes"]["action"]) for d in first] == [
        ("acme/support#1", "open"),
        ("acme/support#1", "close"),
    ]
    later = requests.get(log, params={"subject": "acme/support#1", "since": first[0]["id"]}, timeout=5).json()
    assert [d["id"] for d in later["deliveries"]] == [first[1]["id"]]
