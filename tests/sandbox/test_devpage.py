"""The developer's page and the ``act`` CLI: acting as the developer changes issues and fires webhooks."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from tests.sandbox.conftest import Receiver, new_jira_issue

REPO = Path(__file__).resolve().parents[2]


def test_page_lists_issues_and_escapes_titles(http: requests.Session, url: str) -> None:
    """``GET /`` lists both trackers' issues with customer text HTML-escaped."""
    http.post(f"{url}/api/v4/projects/1/issues", json={"title": "<script>alert(1)</script>", "labels": "bug"})
    new_jira_issue(http, url, "<img src=x onerror=alert(2)>")
    page = requests.get(f"{url}/", timeout=5)
    assert page.status_code == 200
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<img src=x" not in page.text
    assert "SUP-1" in page.text
    assert "Sprint 48" in page.text


def test_page_states_which_comments_reach_the_reporter(url: str) -> None:
    """The page tells a developer the comment policy per tracker: GitLab non-internal notes, Jira
    Service Management public comments or ones starting with the #reporter marker."""
    page = requests.get(f"{url}/", timeout=5).text
    policy = page[page.index('id="comment-policy"') : page.index("</div>", page.index('id="comment-policy"'))]
    assert "every note that is not internal" in policy
    assert "<code>jsdPublic: true</code>" in policy
    assert "<code>#reporter</code>" in policy
    assert "removed" in policy


def test_form_post_moves_gitlab_issue_and_fires_webhook(receiver: Receiver, http: requests.Session, url: str) -> None:
    """The "In progress" form adds ``workflow::in progress`` as the developer and sends an Issue Hook."""
    http.post(f"{url}/api/v4/projects/1/issues", json={"title": "move me", "labels": "workflow::qa"})
    response = requests.post(f"{url}/dev/gitlab/1", data={"action": "progress"}, allow_redirects=False, timeout=5)
    assert response.status_code == 303
    issue = http.get(f"{url}/api/v4/projects/1/issues/1").json()
    assert issue["labels"] == ["workflow::in progress"]
    _, hook = receiver.wait_count(2, "/gitlab")
    assert hook.json["user"]["username"] == "developer"
    assert [x["title"] for x in hook.json["changes"]["labels"]["current"]] == ["workflow::in progress"]


def test_form_close_with_resolution(receiver: Receiver, http: requests.Session, url: str) -> None:
    """Closing as duplicate adds ``resolution::duplicate`` in GitLab and sets resolution Duplicate in Jira."""
    http.post(f"{url}/api/v4/projects/1/issues", json={"title": "dup"})
    key = new_jira_issue(http, url, "dup")["key"]
    for tracker, ref in (("gitlab", "1"), ("jira", key)):
        form = {"action": "close", "resolution": "duplicate"}
        requests.post(f"{url}/dev/{tracker}/{ref}", data=form, allow_redirects=False, timeout=5)
    gitlab_issue = http.get(f"{url}/api/v4/projects/1/issues/1").json()
    assert (gitlab_issue["state"], gitlab_issue["labels"]) == ("closed", ["resolution::duplicate"])
    fields = http.get(f"{url}/rest/api/2/issue/{key}").json()["fields"]
    assert (fields["status"]["name"], fields["resolution"]["name"]) == ("Done", "Duplicate")
    jira_hook = receiver.wait_count(2, "/jira")[-1]
    assert jira_hook.json["user"]["displayName"] == "Dana Developer"


def test_jira_qa_walks_the_workflow_and_severity_sets_priority(http: requests.Session, url: str) -> None:
    """``qa`` from To Do goes through In Progress; ``severity high`` sets priority High and ``severity-high``."""
    key = new_jira_issue(http, url, "walk", labels=["severity-low"])["key"]
    for body in ({"action": "qa"}, {"action": "severity", "severity": "high"}):
        response = requests.post(f"{url}/_sandbox/act", json={"tracker": "jira", "issue": key, **body}, timeout=5)
        assert response.status_code == 200, response.text
    fields = http.get(f"{url}/rest/api/2/issue/{key}").json()["fields"]
    assert fields["status"]["name"] == "In QA"
    assert (fields["priority"]["name"], fields["labels"]) == ("High", ["severity-high"])
    bad = requests.post(f"{url}/_sandbox/act", json={"tracker": "jira", "issue": key, "action": "reopen"}, timeout=5)
    assert bad.status_code == 400


def test_form_sets_a_gitlab_category_as_a_scoped_label(receiver: Receiver, http: requests.Session, url: str) -> None:
    """``category billing`` replaces the issue's ``category::`` label, as the developer, with an Issue Hook."""
    http.post(f"{url}/api/v4/projects/1/issues", json={"title": "cat", "labels": "category::widget,severity::high"})
    form = {"action": "category", "category": "billing"}
    assert requests.post(f"{url}/dev/gitlab/1", data=form, allow_redirects=False, timeout=5).status_code == 303
    issue = http.get(f"{url}/api/v4/projects/1/issues/1").json()
    assert sorted(issue["labels"]) == ["category::billing", "severity::high"]
    hook = receiver.wait_count(2, "/gitlab")[-1]
    assert hook.json["user"]["username"] == "developer"
    page = requests.get(f"{url}/", timeout=5).text
    assert 'name="action" value="category"' in page
    assert '<option value="chat-history">' in page


def test_jira_category_is_the_component_when_the_project_has_one_else_the_label(
    receiver: Receiver, http: requests.Session, url: str
) -> None:
    """Jira: ``category billing`` sets the component billing (dropping ``category-`` labels); a category
    the project has no component for becomes the label ``category-<name>`` and the components go."""
    key = new_jira_issue(http, url, "cat", labels=["severity-high", "category-old"], components=[{"name": "widget"}])[
        "key"
    ]

    def act(category: str) -> dict[str, Any]:
        body = {"tracker": "jira", "issue": key, "action": "category", "category": category}
        response = requests.post(f"{url}/_sandbox/act", json=body, timeout=5)
        assert response.status_code == 200, response.text
        fields: dict[str, Any] = http.get(f"{url}/rest/api/2/issue/{key}").json()["fields"]
        return fields

    fields = act("billing")
    assert [c["name"] for c in fields["components"]] == ["billing"]
    assert fields["labels"] == ["severity-high"]
    fields = act("mobile-app")
    assert fields["components"] == []
    assert fields["labels"] == ["severity-high", "category-mobile-app"]
    changelog = receiver.wait_count(3, "/jira")[-1].json["changelog"]["items"]
    assert {(i["field"], i["fromString"], i["toString"]) for i in changelog} == {
        ("labels", "severity-high", "severity-high category-mobile-app"),
        ("Component", "billing", None),
    }
    bad = {"tracker": "jira", "issue": key, "action": "category", "category": "two words"}
    assert requests.post(f"{url}/_sandbox/act", json=bad, timeout=5).status_code == 400


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_cli_serve_and_act() -> None:
    """``python -m sandbox serve`` seeds around ``--seed-today``; ``act`` comments internally as the developer."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "sandbox", "serve", "--port", str(port), "--seed-today", "2026-01-14"]
    server = subprocess.Popen([*command, "--quiet", "--gitlab-token", "t"], cwd=REPO, stdout=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while True:
            try:
                state = requests.get(f"{base}/_sandbox/state", timeout=1).json()
                break
            except requests.ConnectionError:
                assert time.time() < deadline, "sandbox did not start"
                time.sleep(0.05)
        assert state["today"] == "2026-01-14"
        titles = [m["title"] for m in state["gitlab"]["milestones"]]
        assert titles == ["Sprint 24", "Sprint 25", "Sprint 26"]
        created = requests.post(
            f"{base}/api/v4/projects/1/issues", headers={"PRIVATE-TOKEN": "t"}, data={"title": "x"}, timeout=5
        )
        assert created.status_code == 201
        act = [sys.executable, "-m", "sandbox", "act", "--url", base, "gitlab", "1", "comment", "hej", "--internal"]
        done = subprocess.run(act, cwd=REPO, capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr
        notes = requests.get(f"{base}/api/v4/projects/1/issues/1/notes", headers={"PRIVATE-TOKEN": "t"}, timeout=5)
        assert [(n["body"], n["internal"], n["author"]["username"]) for n in notes.json()] == [
            ("hej", True, "developer")
        ]
        refused = subprocess.run(
            [sys.executable, "-m", "sandbox", "act", "--url", base, "gitlab", "9", "progress"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert refused.returncode == 1
        assert "does not exist" in refused.stdout
    finally:
        server.terminate()
        server.wait(timeout=10)
