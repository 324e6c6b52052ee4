"""Tracker webhooks in, reporter-facing statuses out: POST /webhooks/gitlab and /webhooks/jira,
the sync and comment jobs, on a real SQLite file with the in-memory tracker."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from bridge import create_app
from bridge.adapters.store.models import Delivery, Notification
from bridge.bootstrap import Deps
from bridge.domain import SprintWindow, Status
from tests.conftest import CURRENT, NEXT, Clock, post_event, report_event
from tests.fakes import FakeTracker

GITLAB_SECRET = "gitlab-hook-secret"
JIRA_SECRET = "jira-hook-secret"


def hook_settings(default: str = "gitlab") -> dict[str, Any]:
    return {
        "default": default,
        "gitlab": {
            "url": "https://gitlab.example",
            "token": "t",
            "project": "acme/support",
            "webhook_secret": GITLAB_SECRET,
        },
        "jira": {
            "url": "https://jira.example",
            "user": "u",
            "api_token": "t",
            "project": "SUP",
            "board_id": 1,
            "webhook_secret": JIRA_SECRET,
        },
    }


@pytest.fixture
def deps(make_deps: Callable[..., Deps]) -> Deps:
    return make_deps(trackers=hook_settings())


def jira_deps(make_deps: Callable[..., Deps]) -> tuple[Deps, FakeTracker, FlaskClient]:
    deps = make_deps(trackers=hook_settings("jira"))
    fake: FakeTracker = deps.trackers["jira"]  # type: ignore[assignment]
    fake.window = SprintWindow(current=CURRENT, next=NEXT)
    return deps, fake, create_app(deps=deps).test_client()


def file_report(client: FlaskClient, deps: Deps, **overrides: Any) -> str:
    """A report filed through the real job: returns its tracking ID."""
    tracking_id = str(post_event(client, report_event(**overrides)).get_json()["tracking_id"])
    ticket = deps.store.ticket_by_tracking_id(tracking_id)
    assert ticket is not None
    run_all(deps, "file_ticket")
    return tracking_id


def run_all(deps: Deps, kind: str) -> None:
    """Run the pending jobs of one kind oldest first, as the worker would."""
    for job in sorted(deps.store.jobs(state="pending", limit=1000), key=lambda j: j.id):
        if job.kind == kind:
            deps.runner.run(job.id)


def ticket_status(deps: Deps, tracking_id: str) -> str:
    ticket = deps.store.ticket_by_tracking_id(tracking_id)
    assert ticket is not None
    return ticket.status


def issue_hook(tracking_id: str, iid: str, *, user_id: int | str = 7, action: str = "update") -> dict[str, Any]:
    return {
        "object_kind": "issue",
        "event_type": "issue",
        "user": {"id": user_id, "username": "dev"},
        "object_attributes": {
            "iid": int(iid),
            "title": f"[{tracking_id}] Chat-widget indlæses ikke",
            "action": action,
            "state": "opened",
        },
        "changes": {"labels": {"previous": [], "current": [{"title": "workflow::in progress"}]}},
    }


def note_hook(
    tracking_id: str, iid: str, note: str, *, note_id: int = 1241, user_id: int | str = 7, internal: bool = False
) -> dict[str, Any]:
    return {
        "object_kind": "note",
        "event_type": "confidential_note" if internal else "note",
        "user": {"id": user_id, "username": "dev"},
        "object_attributes": {
            "id": note_id,
            "note": note,
            "noteable_type": "Issue",
            "system": False,
            "internal": internal,
            "action": "create",
        },
        "issue": {"iid": int(iid), "title": f"[{tracking_id}] Chat-widget indlæses ikke", "state": "opened"},
    }


def post_gitlab(
    client: FlaskClient,
    payload: dict[str, Any],
    event: str = "Issue Hook",
    *,
    token: str = GITLAB_SECRET,
    key: str | None = None,
) -> Any:
    headers = {"Content-Type": "application/json", "X-Gitlab-Event": event, "X-Gitlab-Token": token}
    if key:
        headers["Idempotency-Key"] = key
    return client.post("/webhooks/gitlab", data=json.dumps(payload), headers=headers)


def post_jira(client: FlaskClient, payload: dict[str, Any], *, secret: str = JIRA_SECRET, ident: str = "") -> Any:
    body = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Hub-Signature": signature}
    if ident:
        headers["X-Atlassian-Webhook-Identifier"] = ident
    return client.post("/webhooks/jira", data=body, headers=headers)


def notifications(deps: Deps, tracking_id: str) -> list[Notification]:
    ticket = deps.store.ticket_by_tracking_id(tracking_id)
    assert ticket is not None
    with deps.store.session() as session:
        return list(session.scalars(select(Notification).where(Notification.ticket_id == ticket.id)))


# --- authentication and intake ----------------------------------------------------------------


def test_gitlab_hook_requires_the_token(client: FlaskClient) -> None:
    """A missing or wrong X-Gitlab-Token is 401 problem+json."""
    for token in ("", "wrong"):
        response = post_gitlab(client, issue_hook("ST-00000000", "1"), token=token)
        assert response.status_code == 401
        assert response.mimetype == "application/problem+json"


def test_gitlab_hook_without_configured_secret_is_refused(make_deps: Callable[..., Deps]) -> None:
    """No GITLAB_WEBHOOK_SECRET: nothing is accepted, whatever the caller sends."""
    client = create_app(deps=make_deps()).test_client()
    assert post_gitlab(client, issue_hook("ST-00000000", "1"), token="").status_code == 401


def test_gitlab_hook_body_must_be_json(client: FlaskClient) -> None:
    """A body that is not a JSON object is 400 problem+json."""
    for data in (b"{nope", b"[1, 2]"):
        bad = client.post(
            "/webhooks/gitlab", data=data, headers={"X-Gitlab-Token": GITLAB_SECRET, "X-Gitlab-Event": "Issue Hook"}
        )
        assert bad.status_code == 400
        assert bad.mimetype == "application/problem+json"


def test_gitlab_events_without_object_kind_are_acknowledged_and_ignored(client: FlaskClient, deps: Deps) -> None:
    """A group hook's member and subgroup events carry no object_kind (and a custom template may put
    anything there): 200 ignored (GitLab disables hooks that keep failing), nothing stored."""
    member = {
        "created_at": "2020-12-11T04:57:22Z",
        "updated_at": "2020-12-11T04:57:22Z",
        "group_name": "webhook-test",
        "group_path": "webhook-test",
        "group_id": 100,
        "user_username": "test_user",
        "user_name": "Test User",
        "user_email": "testuser@webhooktest.com",
        "user_id": 64,
        "group_access": "Guest",
        "group_plan": None,
        "expires_at": None,
        "event_name": "user_add_to_group",
    }
    subgroup = {
        "created_at": "2021-01-20T09:40:12Z",
        "event_name": "subgroup_create",
        "name": "subgroup1",
        "path": "subgroup1",
        "full_path": "group1/subgroup1",
        "group_id": 10,
        "parent_group_id": 7,
    }
    odd_kind = {"object_kind": {"custom": "template"}, "object_attributes": {"iid": 1}}
    cases = ((member, "Member Hook"), (subgroup, "Subgroup Hook"), ({"hello": "world"}, ""), (odd_kind, "Issue Hook"))
    for payload, event in cases:
        response = post_gitlab(client, payload, event)
        assert response.status_code == 200
        assert response.get_json()["status"] == "ignored"
    assert deps.store.jobs(state="pending") == []
    with deps.store.session() as session:
        assert session.scalars(select(Delivery)).all() == []


def test_work_item_events_are_followed_like_issue_events(client: FlaskClient, deps: Deps, tracker: FakeTracker) -> None:
    """After a developer changes the issue's type to incident, GitLab 17.2+ sends object_kind
    "work_item": the ticket keeps following its issue."""
    tracking_id = file_report(client, deps)
    issue = tracker.issues[0]
    issue.labels = (*issue.labels, "workflow::in progress")
    payload = issue_hook(tracking_id, issue.key)
    payload["object_kind"] = "work_item"
    payload["event_type"] = "work_item"
    payload["object_attributes"]["type"] = "Incident"
    response = post_gitlab(client, payload, "Issue Hook", key="work-item-1")
    assert response.get_json()["status"] == "accepted"
    run_all(deps, "sync_ticket")
    assert ticket_status(deps, tracking_id) == "in_progress"


def test_unknown_event_header_is_not_stored_verbatim(client: FlaskClient, deps: Deps, tracker: FakeTracker) -> None:
    """An issue body under an unexpected X-Gitlab-Event is stored under the canonical event name."""
    tracking_id = file_report(client, deps)
    response = post_gitlab(client, issue_hook(tracking_id, tracker.issues[0].key), "x" * 300, key="odd-header")
    assert response.get_json()["status"] == "accepted"
    with deps.store.session() as session:
        (delivery,) = session.scalars(select(Delivery).where(Delivery.source == "gitlab")).all()
        assert delivery.event_type == "Issue Hook"


def test_irrelevant_events_are_acknowledged_and_ignored(client: FlaskClient, deps: Deps) -> None:
    """Push hooks and issues that are not ours answer 200 (GitLab disables failing hooks) and store nothing."""
    assert post_gitlab(client, {"object_kind": "push"}, "Push Hook").get_json()["status"] == "ignored"
    other = issue_hook("ST-00000000", "99")
    other["object_attributes"]["title"] = "A developer's own issue"
    assert post_gitlab(client, other).get_json()["status"] == "ignored"
    unknown = post_gitlab(client, issue_hook("ST-ZZZZZZZZ", "1"))
    assert unknown.status_code == 200
    assert unknown.get_json()["status"] == "ignored"
    assert deps.store.jobs(state="pending") == []


def test_issue_copying_our_prefix_is_ignored(client: FlaskClient, deps: Deps, tracker: FakeTracker) -> None:
    """Only the issue filed for the ticket is followed, not another one carrying its tracking ID."""
    tracking_id = file_report(client, deps)
    response = post_gitlab(client, issue_hook(tracking_id, "999"))
    assert response.get_json()["status"] == "ignored"


def test_redelivery_is_stored_once(client: FlaskClient, deps: Deps, tracker: FakeTracker) -> None:
    """The same Idempotency-Key twice creates one sync job."""
    tracking_id = file_report(client, deps)
    iid = tracker.issues[0].key
    first = post_gitlab(client, issue_hook(tracking_id, iid), key="k-1").get_json()
    second = post_gitlab(client, issue_hook(tracking_id, iid), key="k-1").get_json()
    assert (first["status"], second["status"]) == ("accepted", "duplicate")
    assert [j.kind for j in deps.store.jobs(state="pending")].count("sync_ticket") == 1


def test_jira_hook_requires_the_signature(client: FlaskClient) -> None:
    """X-Hub-Signature must be the HMAC of the raw body with the configured secret."""
    payload = {"webhookEvent": "jira:issue_updated", "issue": {"key": "SUP-1", "fields": {"summary": "x"}}}
    assert post_jira(client, payload, secret="wrong").status_code == 401
    response = client.post("/webhooks/jira", data=json.dumps(payload), headers={"Content-Type": "application/json"})
    assert response.status_code == 401
    assert post_jira(client, payload).status_code == 200


# --- status follows the tracker ---------------------------------------------------------------


def test_gitlab_lifecycle_reaches_the_reporter(
    client: FlaskClient, deps: Deps, tracker: FakeTracker, clock: Clock
) -> None:
    """triaged -> in progress -> in QA -> resolved, each from a webhook and the issue's fresh state."""
    tracking_id = file_report(client, deps)
    issue = tracker.issues[0]
    assert ticket_status(deps, tracking_id) == "triaged"
    steps = [
        (("workflow::in progress",), "opened", "in_progress"),
        (("workflow::qa",), "opened", "in_qa"),
        ((), "closed", "resolved"),
    ]
    for labels, state, expected in steps:
        issue.labels = (*issue.labels, *labels)
        issue.state = state
        post_gitlab(client, issue_hook(tracking_id, issue.key), key=f"delivery-{expected}")
        run_all(deps, "sync_ticket")
        assert ticket_status(deps, tracking_id) == expected
    ticket = deps.store.ticket_by_tracking_id(tracking_id)
    assert ticket is not None
    assert ticket.resolved_at is not None
    assert [e.status for e in deps.store.history(ticket.id)] == [
        "received",
        "triaged",
        "in_progress",
        "in_qa",
        "resolved",
    ]
    statuses = [n.status for n in notifications(deps, tracking_id) if n.kind == "status"]
    assert statuses == ["triaged", "in_progress", "in_qa", "resolved"]


def test_late_webhook_does_not_move_a_ticket_backwards(client: FlaskClient, deps: Deps, tracker: FakeTracker) -> None:
    """An "in progress" webhook arriving after the issue closed changes nothing: the state is read fresh."""
    tracking_id = file_report(client, deps)
    issue = tracker.issues[0]
    issue.state = "closed"
    post_gitlab(client, issue_hook(tracking_id, issue.key), key="close")
    run_all(deps, "sync_ticket")
    post_gitlab(client, issue_hook(tracking_id, issue.key), key="late-progress")
    run_all(deps, "sync_ticket")
    assert ticket_status(deps, tracking_id) == "resolved"
    ticket = deps.store.ticket_by_tracking_id(tracking_id)
    assert ticket is not None
    assert [e.status for e in deps.store.history(ticket.id)].count("resolved") == 1


def test_declined_with_reason_and_reopened(client: FlaskClient, deps: Deps, tracker: FakeTracker) -> None:
    """Closed with resolution::duplicate is declined with its reason; reopening says reopened."""
    tracking_id = file_report(client, deps)
    issue = tracker.issues[0]
    issue.state, issue.labels = "closed", (*issue.labels, "resolution::duplicate")
    post_gitlab(client, issue_hook(tracking_id, issue.key), key="a")
    run_all(deps, "sync_ticket")
    ticket = deps.store.ticket_by_tracking_id(tracking_id)
    assert ticket is not None
    assert (ticket.status, ticket.status_reason) == ("declined", "duplicate")
    issue.state = "opened"
    post_gitlab(client, issue_hook(tracking_id, issue.key, action="reopen"), key="b")
    run_all(deps, "sync_ticket")
    assert ticket_status(deps, tracking_id) == "reopened"


def test_own_changes_do_not_echo(client: FlaskClient, deps: Deps, tracker: FakeTracker) -> None:
    """A webhook caused by the bridge's own account is not even read back from the tracker."""
    tracking_id = file_report(client, deps)
    issue = tracker.issues[0]
    issue.labels = (*issue.labels, "workflow::in progress")
    tracker.calls.clear()
    post_gitlab(client, issue_hook(tracking_id, issue.key, user_id=tracker.account().id))
    run_all(deps, "sync_ticket")
    assert "issue_state" not in tracker.calls
    assert ticket_status(deps, tracking_id) == "triaged"


def test_unknown_jira_status_is_logged_and_ignored(make_deps: Callable[..., Deps]) -> None:
    """A status the mappings do not know leaves the ticket as it is and the job done."""
    deps, fake, client = jira_deps(make_deps)
    tracking_id = file_report(client, deps)
    issue = fake.issues[0]
    issue.status_category, issue.status_name = "undefined", "Parked"
    payload = {
        "webhookEvent": "jira:issue_updated",
        "user": {"accountId": "dev-1"},
        "issue": {"key": issue.key, "fields": {"summary": issue.title}},
    }
    assert post_jira(client, payload, ident="d-1").get_json()["status"] == "accepted"
    run_all(deps, "sync_ticket")
    assert ticket_status(deps, tracking_id) == "triaged"
    assert all(j.state == "done" for j in deps.store.jobs() if j.kind == "sync_ticket")


def test_jira_lifecycle_with_priority_change(make_deps: Callable[..., Deps]) -> None:
    """Jira: status categories map to statuses; a priority raised by support re-plans to the current sprint."""
    deps, fake, client = jira_deps(make_deps)
    event = report_event()
    event["report"] = {"title": "Eksport giver forkert dato", "description": "Datoen er en dag forkert."}
    event["reporter"] = {"email": "bo@firma.dk", "locale": "da"}
    tracking_id = file_report(client, deps, **event)
    issue = fake.issues[0]
    assert issue.sprint_id == NEXT.id
    assert "severity-medium" in issue.labels
    issue.status_category, issue.status_name, issue.priority = "new", "To Do", "Highest"
    payload = {
        "webhookEvent": "jira:issue_updated",
        "user": {"accountId": "support-1"},
        "issue": {"key": issue.key, "fields": {"summary": issue.title}},
    }
    assert post_jira(client, payload, ident="p-1").get_json()["status"] == "accepted"
    run_all(deps, "sync_ticket")
    ticket = deps.store.ticket_by_tracking_id(tracking_id)
    assert ticket is not None
    assert (ticket.severity, ticket.kind, ticket.sprint_id) == ("critical", "hotfix", CURRENT.id)
    assert issue.sprint_id == CURRENT.id
    assert "severity-critical" in issue.labels
    assert "hotfix" in issue.labels
    assert "severity-medium" not in issue.labels
    assert "bugfix" not in issue.labels
    assert [n.kind for n in notifications(deps, tracking_id)].count("plan") == 1
    issue.status_category, issue.status_name = "indeterminate", "In QA"
    post_jira(client, payload, ident="p-2")
    run_all(deps, "sync_ticket")
    assert ticket_status(deps, tracking_id) == "in_qa"


def test_gitlab_severity_label_change_replans_and_relabels(
    client: FlaskClient, deps: Deps, tracker: FakeTracker
) -> None:
    """Support sets severity::critical on a medium bug: hotfix, current sprint, labels in line, reporter told."""
    event = report_event()
    event["report"] = {"title": "Eksport giver forkert dato", "description": "Datoen er en dag forkert."}
    event["reporter"] = {"email": "bo@firma.dk", "locale": "da"}
    tracking_id = file_report(client, deps, **event)
    issue = tracker.issues[0]
    assert issue.sprint_id == NEXT.id
    issue.labels = (*tuple(label for label in issue.labels if label != "severity::medium"), "severity::critical")
    post_gitlab(client, issue_hook(tracking_id, issue.key), key="severity")
    run_all(deps, "sync_ticket")
    assert issue.sprint_id == CURRENT.id
    assert set(issue.labels) >= {"severity::critical", "type::hotfix", "needs-po-review"}
    assert "type::bugfix" not in issue.labels
    ticket = deps.store.ticket_by_tracking_id(tracking_id)
    assert ticket is not None
    assert (ticket.severity, ticket.kind, ticket.sprint_name) == ("critical", "hotfix", "Sprint 48")
    assert "changed-in-tracker:critical" in (ticket.rules or [])
    # The bridge's own label change comes back as a webhook: nothing moves again.
    post_gitlab(client, issue_hook(tracking_id, issue.key), key="echo")
    run_all(deps, "sync_ticket")
    assert [n.kind for n in notifications(deps, tracking_id)].count("plan") == 1


# --- comments -------------------------------------------------------------------------------


def test_public_comment_reaches_the_reporter_once(client: FlaskClient, deps: Deps, tracker: FakeTracker) -> None:
    """A public note becomes one comment notification, even when delivered twice or edited."""
    tracking_id = file_report(client, deps)
    iid = tracker.issues[0].key
    post_gitlab(client, note_hook(tracking_id, iid, "Vi har fundet fejlen."), "Note Hook", key="n1")
    post_gitlab(client, note_hook(tracking_id, iid, "Vi har fundet fejlen."), "Note Hook", key="n1")
    post_gitlab(client, note_hook(tracking_id, iid, "Vi har fundet fejlen!"), "Note Hook", key="n1-edit")
    run_all(deps, "relay_comment")
    comments = [n for n in notifications(deps, tracking_id) if n.kind == "comment"]
    assert [c.body for c in comments] == ["Vi har fundet fejlen."]


def test_internal_and_own_comments_never_reach_the_reporter(
    client: FlaskClient, deps: Deps, tracker: FakeTracker
) -> None:
    """Internal notes stay in the tracker; the bridge's own comments are not echoed."""
    tracking_id = file_report(client, deps)
    iid = tracker.issues[0].key
    post_gitlab(
        client, note_hook(tracking_id, iid, "Kunden er irriterende", note_id=1, internal=True), "Confidential Note Hook"
    )
    own = note_hook(tracking_id, iid, "The reporter added: ...", note_id=2, user_id=tracker.account().id)
    post_gitlab(client, own, "Note Hook")
    run_all(deps, "relay_comment")
    assert [n for n in notifications(deps, tracking_id) if n.kind == "comment"] == []


def test_own_note_in_an_older_payload_without_user_id_is_not_relayed(
    client: FlaskClient, deps: Deps, tracker: FakeTracker
) -> None:
    """Older GitLab payloads have no user.id: the bridge's own note (recognised by the note's
    author_id, or else by user.username) never goes back to the reporter; a developer's does."""
    tracking_id = file_report(client, deps)
    iid = tracker.issues[0].key
    bot = tracker.account()
    by_author = note_hook(tracking_id, iid, "The reporter added: x", note_id=11)
    by_author["user"] = {"name": "Bridge", "username": "someone-else"}
    by_author["object_attributes"]["author_id"] = int(bot.id) if bot.id.isdigit() else bot.id
    by_name = note_hook(tracking_id, iid, "The reporter added: y", note_id=12)
    by_name["user"] = {"name": "Bridge", "username": str(bot.username).upper()}
    developer = note_hook(tracking_id, iid, "Vi har fundet fejlen.", note_id=13)
    developer["user"] = {"name": "Dev", "username": "dev"}
    for payload in (by_author, by_name, developer):
        assert post_gitlab(client, payload, "Note Hook").get_json()["status"] == "accepted"
    run_all(deps, "relay_comment")
    assert [n.body for n in notifications(deps, tracking_id) if n.kind == "comment"] == ["Vi har fundet fejlen."]


def test_own_issue_change_in_an_older_payload_is_recognised_by_user_name(
    client: FlaskClient, deps: Deps, tracker: FakeTracker
) -> None:
    """An Issue Hook without user.id from the bridge's own account is its own change (not read back);
    the issue's author_id (the bridge opened it) never makes a developer's change look like ours."""
    tracking_id = file_report(client, deps)
    issue = tracker.issues[0]
    issue.labels = (*issue.labels, "workflow::in progress")
    own = issue_hook(tracking_id, issue.key)
    own["user"] = {"name": "Bridge", "username": tracker.account().username}
    tracker.calls.clear()
    post_gitlab(client, own, key="own")
    run_all(deps, "sync_ticket")
    assert "issue_state" not in tracker.calls
    developer = issue_hook(tracking_id, issue.key)
    developer["user"] = {"name": "Dev", "username": "dev"}
    developer["object_attributes"]["author_id"] = tracker.account().id
    post_gitlab(client, developer, key="developer")
    run_all(deps, "sync_ticket")
    assert ticket_status(deps, tracking_id) == "in_progress"


def test_marked_comment_policy_for_gitlab(make_deps: Callable[..., Deps], mappings: Any, tracker: FakeTracker) -> None:
    """With GitLab set to public: marked, only notes starting with the marker go out, without the marker."""
    import dataclasses

    comments = mappings.status.comments.model_copy(
        update={"gitlab": mappings.status.comments.gitlab.model_copy(update={"public": "marked"})}
    )
    status = mappings.status.model_copy(update={"comments": comments})
    deps = make_deps(dataclasses.replace(mappings, status=status), trackers=hook_settings())
    client = create_app(deps=deps).test_client()
    tracking_id = file_report(client, deps)
    iid = tracker.issues[0].key
    post_gitlab(client, note_hook(tracking_id, iid, "Ser på det", note_id=1), "Note Hook")
    post_gitlab(client, note_hook(tracking_id, iid, "#reporter Rettelsen er på vej", note_id=2), "Note Hook")
    run_all(deps, "relay_comment")
    assert [n.body for n in notifications(deps, tracking_id) if n.kind == "comment"] == ["Rettelsen er på vej"]


def test_gitlab_notes_that_are_not_internal_reach_the_reporter_without_the_marker(
    client: FlaskClient, deps: Deps, tracker: FakeTracker
) -> None:
    """The shipped GitLab policy: every note that is not internal goes out; a marker is removed."""
    tracking_id = file_report(client, deps)
    iid = tracker.issues[0].key
    post_gitlab(client, note_hook(tracking_id, iid, "Vi ser på det.", note_id=1), "Note Hook")
    post_gitlab(client, note_hook(tracking_id, iid, "#Reporter: Rettet i dag.", note_id=2), "Note Hook")
    run_all(deps, "relay_comment")
    comments = [n.body for n in notifications(deps, tracking_id) if n.kind == "comment"]
    assert comments == ["Vi ser på det.", "Rettet i dag."]


def post_jira_comment(client: FlaskClient, key: str, title: str, ident: str, comment: dict[str, Any]) -> None:
    payload = {
        "webhookEvent": "comment_created",
        "comment": comment,
        "issue": {"key": key, "fields": {"summary": title}},
    }
    assert post_jira(client, payload, ident=ident).get_json()["status"] == "accepted"


def test_jira_comments_reach_the_reporter_only_when_marked_for_them(make_deps: Callable[..., Deps]) -> None:
    """The shipped Jira policy (CONTRACT section 5): Jira Software has no internal comments, so a plain
    comment stays inside; one Service Management marks public (jsdPublic: true) or one starting with
    #reporter goes out, without the marker. Restricted or JSM-internal comments never do."""
    deps, fake, client = jira_deps(make_deps)
    tracking_id = file_report(client, deps)
    key, title = fake.issues[0].key, fake.issues[0].title
    dev = {"accountId": "dev"}
    restricted = {"type": "role", "value": "Developers"}
    comments = [
        {"id": "1", "body": "Kunden bruger en gammel version", "author": dev},
        {"id": "2", "body": "intern", "author": dev, "visibility": restricted},
        {"id": "3", "body": "jsm intern", "author": dev, "jsdPublic": False},
        {"id": "4", "body": "#reporter skjult", "author": dev, "visibility": restricted},
        {"id": "5", "body": "Vi kigger på det", "author": dev, "jsdPublic": True},
        {"id": "6", "body": "#reporter Rettelsen er på vej", "author": dev},
        {"id": "7", "body": "#reporters er ikke markøren", "author": dev},
    ]
    for comment in comments:
        post_jira_comment(client, key, title, f"c{comment['id']}", comment)
    run_all(deps, "relay_comment")
    relayed = [n.body for n in notifications(deps, tracking_id) if n.kind == "comment"]
    assert relayed == ["Vi kigger på det", "Rettelsen er på vej"]


def test_one_comment_policy_for_every_tracker_still_loads() -> None:
    """The earlier status.yaml form, one comments policy for all trackers, applies to both."""
    from bridge.mappings import StatusMap

    loaded = StatusMap.model_validate({"comments": {"public": "marked", "marker": "[kunde]"}})
    assert loaded.comments.of("gitlab").public == loaded.comments.of("jira").public == "marked"
    assert loaded.comments.of("jira").marker == "[kunde]"


def test_status_changes_are_recorded_once_under_redelivery(
    client: FlaskClient, deps: Deps, tracker: FakeTracker
) -> None:
    """Three deliveries of the same transition: one history entry, one notification."""
    tracking_id = file_report(client, deps)
    issue = tracker.issues[0]
    issue.labels = (*issue.labels, "workflow::in progress")
    for key in ("x", "y", "z"):
        post_gitlab(client, issue_hook(tracking_id, issue.key), key=key)
    run_all(deps, "sync_ticket")
    ticket = deps.store.ticket_by_tracking_id(tracking_id)
    assert ticket is not None
    assert [e.status for e in deps.store.history(ticket.id)].count(Status.IN_PROGRESS.value) == 1
    assert [n.status for n in notifications(deps, tracking_id)].count("in_progress") == 1


# --- issues that can no longer be followed -----------------------------------------------------


def metric(client: FlaskClient, reason: str) -> float:
    """``bridge_tickets_needing_support{reason=...}`` from ``/metrics``."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True)):
        for sample in family.samples:
            if sample.name == "bridge_tickets_needing_support" and sample.labels.get("reason") == reason:
                return float(sample.value)
    raise AssertionError(f"no bridge_tickets_needing_support sample for {reason}")


def api_ticket(client: FlaskClient, tracking_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/tickets/{tracking_id}", headers={"Authorization": "Bearer chatbot-api-token"})
    assert response.status_code == 200
    return dict(response.get_json())


def test_deleted_jira_issue_sets_the_ticket_aside_for_support(make_deps: Callable[..., Deps]) -> None:
    """jira:issue_deleted: the fresh read answers 404, so the ticket keeps its status, is flagged for
    support (reason, status API needs_support, /metrics) and the reporter gets no email about it."""
    deps, fake, client = jira_deps(make_deps)
    tracking_id = file_report(client, deps)
    issue = fake.issues[0]
    issue.status_category, issue.status_name = "indeterminate", "In Progress"
    updated = {
        "webhookEvent": "jira:issue_updated",
        "user": {"accountId": "dev-1"},
        "issue": {"key": issue.key, "fields": {"summary": issue.title}},
    }
    post_jira(client, updated, ident="u-1")
    run_all(deps, "sync_ticket")
    assert ticket_status(deps, tracking_id) == "in_progress"
    assert metric(client, "issue_deleted") == 0
    before = len(notifications(deps, tracking_id))

    fake.issues.remove(issue)
    deleted = {
        "timestamp": 1764064800000,
        "webhookEvent": "jira:issue_deleted",
        "user": {"accountId": "dev-1"},
        "issue": {"id": "10001", "key": issue.key, "fields": {"summary": issue.title}},
    }
    assert post_jira(client, deleted, ident="d-1").get_json()["status"] == "accepted"
    run_all(deps, "sync_ticket")

    ticket = deps.store.ticket_by_tracking_id(tracking_id)
    assert ticket is not None
    assert (ticket.status, ticket.support_reason) == ("in_progress", "issue_deleted")
    assert all(j.state == "done" for j in deps.store.jobs() if j.kind == "sync_ticket")
    assert len(notifications(deps, tracking_id)) == before
    body = api_ticket(client, tracking_id)
    assert (body["status"], body["needs_support"]) == ("in_progress", True)
    assert metric(client, "issue_deleted") == 1
    # A repeated delivery or a later sync changes nothing more.
    post_jira(client, deleted, ident="d-2")
    run_all(deps, "sync_ticket")
    assert len(notifications(deps, tracking_id)) == before


def test_unreadable_gitlab_issue_is_set_aside_and_followed_again_when_readable(
    client: FlaskClient, deps: Deps, tracker: FakeTracker
) -> None:
    """A GitLab issue that answers 404 on the fresh read (deleted, or hidden from the bridge) sets the
    ticket aside, status unchanged; once the issue can be read again the flag goes."""
    tracking_id = file_report(client, deps)
    issue = tracker.issues[0]
    tracker.issues.remove(issue)
    post_gitlab(client, issue_hook(tracking_id, issue.key), key="gone")
    run_all(deps, "sync_ticket")
    ticket = deps.store.ticket_by_tracking_id(tracking_id)
    assert ticket is not None
    assert (ticket.status, ticket.support_reason) == ("triaged", "issue_not_found")
    assert api_ticket(client, tracking_id)["needs_support"] is True
    assert [n.status for n in notifications(deps, tracking_id) if n.kind == "status"] == ["triaged"]

    tracker.issues.append(issue)
    issue.labels = (*issue.labels, "workflow::in progress")
    post_gitlab(client, issue_hook(tracking_id, issue.key), key="back")
    run_all(deps, "sync_ticket")
    ticket = deps.store.ticket_by_tracking_id(tracking_id)
    assert ticket is not None
    assert (ticket.status, ticket.support_reason, ticket.support_flagged_at) == ("in_progress", None, None)
    assert api_ticket(client, tracking_id)["needs_support"] is False


def test_jira_webhook_parse_reads_issue_deleted() -> None:
    """jira:issue_deleted on one of our issues is an issue event (read fresh), not ignored."""
    from bridge.pipeline.following.events import parse_jira

    hook = parse_jira(
        {"webhookEvent": "jira:issue_deleted", "issue": {"key": "SUP-7", "fields": {"summary": "[ST-7K3Q9X2M] x"}}}
    )
    assert (hook.event, hook.issue_key, hook.issue_changed) == ("jira:issue_deleted", "SUP-7", True)
