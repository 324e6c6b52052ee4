"""The GitLab REST v4 subset, driven through python-gitlab and raw HTTP."""

from __future__ import annotations

from typing import Any

import gitlab
import pytest
import requests
from gitlab.exceptions import GitlabCreateError

from tests.sandbox.conftest import set_faults


def test_create_issue_with_labels_and_milestone(gl: gitlab.Gitlab) -> None:
    """A created issue has per-project iid 1, string labels, the milestone object, web_url and references."""
    project = gl.projects.get(1, lazy=True)
    milestone = project.milestones.list(title="Sprint 48", get_all=True)[0]
    issue = project.issues.create(
        {"title": "[ST-1] Kan ikke logge ind", "labels": ["support", "severity::high"], "milestone_id": milestone.id}
    )
    assert issue.iid == 1
    assert issue.labels == ["severity::high", "support"]
    assert issue.milestone["title"] == "Sprint 48"
    assert issue.state == "opened"
    assert issue.web_url.endswith("/acme/support/-/issues/1")
    assert issue.references["full"] == "acme/support#1"
    assert issue.author["username"] == "bridge-bot"


def test_project_by_url_encoded_path(gl: gitlab.Gitlab) -> None:
    """``:id`` may be the URL-encoded path ``acme%2Fsupport``."""
    project = gl.projects.get("acme/support")
    assert project.id == 1
    assert project.namespace["id"] == 10
    assert project.issues.create({"title": "by path"}).iid == 1


def test_blank_title_is_400(http: requests.Session, url: str) -> None:
    """A missing title answers 400 with GitLab's validation message."""
    response = http.post(f"{url}/api/v4/projects/1/issues", json={"description": "no title"})
    assert response.status_code == 400
    assert response.json() == {"message": {"title": ["can't be blank"]}}


def test_wrong_token_is_401(url: str) -> None:
    """Without the configured token every GitLab call is 401 Unauthorized."""
    response = requests.get(f"{url}/api/v4/user", headers={"PRIVATE-TOKEN": "nope"}, timeout=5)
    assert response.status_code == 401
    assert response.json() == {"message": "401 Unauthorized"}
    bearer = requests.get(f"{url}/api/v4/user", headers={"Authorization": "Bearer glpat-test-token"}, timeout=5)
    assert bearer.json()["username"] == "bridge-bot"


def test_search_in_title_finds_only_title_matches(gl: gitlab.Gitlab) -> None:
    """``search`` + ``in=title`` matches titles case-insensitively and ignores descriptions."""
    project = gl.projects.get(1, lazy=True)
    project.issues.create({"title": "[ST-AB12] Widget", "description": "x"})
    project.issues.create({"title": "Other", "description": "mentions [ST-AB12]"})
    title_only: dict[str, Any] = {"in": "title"}
    in_title = project.issues.list(search="[st-ab12]", get_all=True, **title_only)
    anywhere = project.issues.list(search="[ST-AB12]", get_all=True)
    assert [i.title for i in in_title] == ["[ST-AB12] Widget"]
    assert len(anywhere) == 2


def test_list_filters_labels_state_and_milestone(gl: gitlab.Gitlab) -> None:
    """``labels`` needs all listed labels; ``state`` and ``milestone`` (title) filter too."""
    project = gl.projects.get(1, lazy=True)
    current = project.milestones.list(title="Sprint 48", get_all=True)[0]
    project.issues.create({"title": "a", "labels": ["bug", "support"], "milestone_id": current.id})
    project.issues.create({"title": "b", "labels": ["bug"]})
    closed = project.issues.create({"title": "c", "labels": ["bug", "support"]})
    closed.state_event = "close"
    closed.save()
    titles = {i.title for i in project.issues.list(labels="bug,support", get_all=True)}
    assert titles == {"a", "c"}
    assert {i.title for i in project.issues.list(labels="bug,support", state="opened", get_all=True)} == {"a"}
    assert {i.title for i in project.issues.list(milestone="Sprint 48", get_all=True)} == {"a"}


def test_milestones_include_ancestors_adds_group_milestones(gl: gitlab.Gitlab) -> None:
    """Group milestones (the next sprint) appear only with ``include_ancestors=true``."""
    project = gl.projects.get(1, lazy=True)
    own = project.milestones.list(get_all=True)
    assert [(m.title, m.state) for m in own] == [("Sprint 47", "closed"), ("Sprint 48", "active")]
    active = project.milestones.list(state="active", include_ancestors=True, get_all=True)
    assert [m.title for m in active] == ["Sprint 48", "Sprint 49"]
    current, upcoming = active
    assert (current.start_date, current.due_date) == ("2026-11-23", "2026-12-06")
    assert upcoming.group_id == 10
    assert upcoming.start_date == "2026-12-07"


def test_notes_and_reopen_via_state_event(gl: gitlab.Gitlab) -> None:
    """Notes can be internal; ``state_event`` close/reopen changes the state."""
    issue = gl.projects.get(1, lazy=True).issues.create({"title": "notes"})
    issue.notes.create({"body": "public"})
    issue.notes.create({"body": "secret", "internal": True})
    notes = issue.notes.list(get_all=True)
    assert [(n.body, n.internal) for n in notes] == [("secret", True), ("public", False)]
    issue.state_event = "close"
    issue.save()
    assert issue.state == "closed"
    assert issue.closed_at is not None
    issue.state_event = "reopen"
    issue.save()
    assert issue.state == "opened"
    assert issue.closed_at is None


def test_update_labels_and_unassign_milestone(gl: gitlab.Gitlab, http: requests.Session, url: str) -> None:
    """``add_labels`` with a scoped label replaces its scope; ``milestone_id=0`` unassigns."""
    project = gl.projects.get(1, lazy=True)
    current = project.milestones.list(title="Sprint 48", get_all=True)[0]
    issue = project.issues.create(
        {"title": "t", "labels": ["workflow::in progress", "bug"], "milestone_id": current.id}
    )
    response = http.put(
        f"{url}/api/v4/projects/1/issues/{issue.iid}",
        params={"add_labels": "workflow::qa", "remove_labels": "bug", "milestone_id": "0"},
    )
    assert response.status_code == 200
    assert response.json()["labels"] == ["workflow::qa"]
    assert response.json()["milestone"] is None
    issue.labels = ["x", "y"]
    issue.save()
    assert project.issues.get(issue.iid).labels == ["x", "y"]


def test_pagination_headers_and_get_all(gl: gitlab.Gitlab, http: requests.Session, url: str) -> None:
    """Lists are paged with X-Total/X-Total-Pages/X-Next-Page/Link; python-gitlab follows them."""
    project = gl.projects.get(1, lazy=True)
    for n in range(25):
        project.issues.create({"title": f"issue {n}"})
    response = http.get(f"{url}/api/v4/projects/1/issues", params={"per_page": 10, "page": 2})
    headers = response.headers
    assert (headers["X-Total"], headers["X-Total-Pages"], headers["X-Page"]) == ("25", "3", "2")
    assert (headers["X-Per-Page"], headers["X-Next-Page"], headers["X-Prev-Page"]) == ("10", "3", "1")
    assert 'rel="next"' in headers["Link"]
    assert len(response.json()) == 10
    assert len(project.issues.list(per_page=10, get_all=True)) == 25
    assert len(project.issues.list(get_all=False)) == 20


def test_rate_limited_create_surfaces_429(gl: gitlab.Gitlab, http: requests.Session, url: str) -> None:
    """Beyond ``per_minute`` creates python-gitlab gets 429, with Retry-After and RateLimit-* headers."""
    set_faults(url, {"tracker": "gitlab", "rate_limit": {"endpoint": "create_issue", "per_minute": 2}})
    project = gl.projects.get(1, lazy=True)
    project.issues.create({"title": "one"})
    project.issues.create({"title": "two"})
    with pytest.raises(GitlabCreateError) as caught:
        project.issues.create({"title": "three"}, obey_rate_limit=False)
    assert caught.value.response_code == 429
    raw = http.post(f"{url}/api/v4/projects/1/issues", json={"title": "four"})
    assert raw.status_code == 429
    assert 1 <= int(raw.headers["Retry-After"]) <= 60
    assert (raw.headers["RateLimit-Limit"], raw.headers["RateLimit-Remaining"]) == ("2", "0")
    assert int(raw.headers["RateLimit-Reset"]) > 0
    log = requests.get(f"{url}/_sandbox/requests", params={"endpoint": "create_issue"}, timeout=5).json()
    assert [r["status"] for r in log["requests"]] == [201, 201, 429, 429]
    assert len(project.issues.list(get_all=True)) == 2
    assert project.issues.list(get_all=True)[0].title == "two"


def test_hooks_can_be_registered(gl: gitlab.Gitlab) -> None:
    """``POST /projects/:id/hooks`` registers a hook and lists it without its token."""
    project = gl.projects.get(1, lazy=True)
    hook = project.hooks.create({"url": "http://127.0.0.1:1/x", "token": "t", "issues_events": True})
    assert hook.issues_events is True
    assert hook.note_events is False
    listed = project.hooks.list(get_all=True)
    assert [h.url for h in listed] == ["http://127.0.0.1:1/x"]
    assert not hasattr(listed[0], "token")
