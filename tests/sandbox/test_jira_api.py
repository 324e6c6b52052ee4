"""The Jira REST v2 and agile 1.0 subsets, driven through the ``jira`` library and raw HTTP."""

from __future__ import annotations

import re

import jira
import pytest
import requests
from jira.exceptions import JIRAError

from tests.sandbox.conftest import Receiver, new_jira_issue

JIRA_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$")


def _create(jr: jira.JIRA, summary: str, **fields: object) -> jira.Issue:
    base = {"project": {"key": "SUP"}, "issuetype": {"name": "Bug"}, "summary": summary, **fields}
    return jr.create_issue(fields=base)


def test_create_issue_and_read_it_back(jr: jira.JIRA) -> None:
    """create_issue returns SUP-1 with status To Do (category new), priority, labels and Jira timestamps."""
    issue = _create(jr, "[ST-1] Fejl", description="*wiki*", priority={"name": "High"}, labels=["support"])
    assert issue.key == "SUP-1"
    fields = issue.raw["fields"]
    assert fields["status"]["name"] == "To Do"
    assert fields["status"]["statusCategory"]["key"] == "new"
    assert fields["priority"]["name"] == "High"
    assert fields["labels"] == ["support"]
    assert fields["description"] == "*wiki*"
    assert fields["resolution"] is None
    assert JIRA_TIME.match(fields["created"])
    assert fields["customfield_10020"] is None
    assert "customfield_10016" in fields


def test_create_response_is_id_key_self(http: requests.Session, url: str) -> None:
    """``POST /issue`` answers 201 with only id, key and self."""
    data = new_jira_issue(http, url, "x")
    assert set(data) == {"id", "key", "self"}
    assert data["self"].endswith(f"/rest/api/2/issue/{data['id']}")


def test_label_with_space_is_400(http: requests.Session, url: str) -> None:
    """A label containing a space is refused with Jira's error body."""
    body = {"fields": {"project": {"key": "SUP"}, "issuetype": {"name": "Bug"}, "summary": "s", "labels": ["x y"]}}
    response = http.post(f"{url}/rest/api/2/issue", json=body)
    assert response.status_code == 400
    assert response.json() == {
        "errorMessages": [],
        "errors": {"labels": "The label 'x y' contains spaces which is invalid."},
    }


def test_unknown_priority_or_project_is_400(jr: jira.JIRA) -> None:
    """An unknown priority or project is a 400 naming the field."""
    with pytest.raises(JIRAError) as bad_priority:
        _create(jr, "s", priority={"name": "Urgent"})
    assert bad_priority.value.status_code == 400
    assert bad_priority.value.response is not None
    assert "priority" in bad_priority.value.response.json()["errors"]
    with pytest.raises(JIRAError) as bad_project:
        jr.create_issue(fields={"project": {"key": "NOPE"}, "issuetype": {"name": "Bug"}, "summary": "s"})
    assert bad_project.value.response is not None
    assert "project" in bad_project.value.response.json()["errors"]


def test_wrong_credentials_are_401(url: str) -> None:
    """Jira calls without valid basic auth are 401."""
    response = requests.get(f"{url}/rest/api/2/myself", auth=("bridge@example.com", "wrong"), timeout=5)
    assert response.status_code == 401
    assert requests.get(f"{url}/rest/agile/1.0/board/1", timeout=5).status_code == 401


def test_search_issues_with_the_jql_subset(jr: jira.JIRA) -> None:
    """search_issues handles AND, labels, statusCategory, quoted summary phrases, key in, sprint and ORDER BY."""
    first = _create(jr, "[ST-AAA] login fails", labels=["support", "bug"])
    second = _create(jr, "[ST-BBB] slow page", labels=["support"])
    third = _create(jr, "unrelated", labels=["other"])
    jr.transition_issue(third, "31")
    jr.add_issues_to_sprint(2, [second.key])

    def keys(query: str) -> list[str]:
        return [i.key for i in jr.search_issues(query)]

    assert keys('project = SUP AND labels = "support" ORDER BY created ASC') == [first.key, second.key]
    assert keys("project = SUP ORDER BY created DESC") == [third.key, second.key, first.key]
    assert keys('summary ~ "\\"[ST-AAA]\\""') == [first.key]
    assert keys('summary ~ "SLOW"') == [second.key]
    assert keys("statusCategory != Done ORDER BY created ASC") == [first.key, second.key]
    assert keys("statusCategory = Done") == [third.key]
    assert keys('status = "To Do" AND labels in (bug, other)') == [first.key]
    assert keys(f"key in ({first.key}, {third.key}) ORDER BY key ASC") == [first.key, third.key]
    assert keys("sprint = 2") == [second.key]
    assert keys("sprint in openSprints()") == [second.key]


def test_unsupported_jql_is_400(http: requests.Session, url: str) -> None:
    """OR, unknown fields and a key that does not exist answer 400 with errorMessages."""
    new_jira_issue(http, url, "x")
    for query in ("project = SUP OR labels = x", "foo = bar", "key = SUP-99", "created > -1d"):
        response = http.get(f"{url}/rest/api/2/search", params={"jql": query})
        assert response.status_code == 400, query
        assert response.json()["errorMessages"], query


def test_classic_search_paging_and_max_results_zero(http: requests.Session, url: str) -> None:
    """``/search`` pages with startAt/maxResults; maxResults=0 returns only the total; POST works too."""
    for n in range(3):
        new_jira_issue(http, url, f"issue {n}", labels=["support"])
    count = http.get(f"{url}/rest/api/2/search", params={"jql": "labels = support", "maxResults": "0"}).json()
    assert (count["total"], count["issues"]) == (3, [])
    page = http.post(
        f"{url}/rest/api/2/search",
        json={"jql": "project = SUP ORDER BY created ASC", "startAt": 1, "maxResults": 1, "fields": ["summary"]},
    ).json()
    assert page["startAt"] == 1
    assert [i["fields"] for i in page["issues"]] == [{"summary": "issue 1"}]


def test_transitions_resolution_and_reopen(jr: jira.JIRA) -> None:
    """Transitions depend on the status; Done takes a resolution; Reopen clears it."""
    issue = _create(jr, "flow")
    names = {t["name"]: t["to"]["statusCategory"]["key"] for t in jr.transitions(issue)}
    assert names == {"Start Progress": "indeterminate", "Done": "done"}
    jr.transition_issue(issue, "Start Progress")
    jr.transition_issue(issue, "Send to QA")
    assert jr.issue(issue.key).fields.status.name == "In QA"
    jr.transition_issue(issue, "Done", fields={"resolution": {"name": "Duplicate"}})
    done = jr.issue(issue.key)
    assert done.fields.status.name == "Done"
    assert done.raw["fields"]["resolution"]["name"] == "Duplicate"
    assert [t["name"] for t in jr.transitions(issue)] == ["Reopen"]
    jr.transition_issue(issue, "Reopen")
    reopened = jr.issue(issue.key)
    assert (reopened.fields.status.name, reopened.fields.resolution) == ("To Do", None)
    with pytest.raises(JIRAError) as invalid:
        jr.transition_issue(issue, "51")
    assert invalid.value.status_code == 400


def test_add_comment_public_and_internal(jr: jira.JIRA, http: requests.Session, url: str) -> None:
    """add_comment stores the body; ``is_internal`` makes ``jsdPublic`` false."""
    issue = _create(jr, "comments")
    jr.add_comment(issue, "Vi kigger på det")
    jr.add_comment(issue, "only staff", is_internal=True)
    comments = http.get(f"{url}/rest/api/2/issue/{issue.key}/comment").json()["comments"]
    assert [(c["body"], c["jsdPublic"]) for c in comments] == [("Vi kigger på det", True), ("only staff", False)]
    assert comments[0]["author"]["displayName"] == "Bridge Bot"


def test_board_sprints(jr: jira.JIRA, http: requests.Session, url: str) -> None:
    """Board 1 has an active sprint containing today, a dated future sprint and an undated one."""
    sprints = jr.sprints(1, state="active,future")
    assert [(s.id, s.name, s.state) for s in sprints] == [
        (2, "SUP Sprint 48", "active"),
        (3, "SUP Sprint 49", "future"),
        (4, "SUP Sprint 50", "future"),
    ]
    assert sprints[0].startDate.startswith("2026-11-23")
    assert sprints[0].endDate.startswith("2026-12-06")
    assert sprints[1].startDate.startswith("2026-12-07")
    assert not hasattr(sprints[2], "startDate")
    page = http.get(f"{url}/rest/agile/1.0/board/1/sprint", params={"state": "active,future", "maxResults": "1"}).json()
    assert (page["isLast"], page["maxResults"], len(page["values"])) == (False, 1, 1)
    assert page["values"][0]["originBoardId"] == 1
    everything = http.get(f"{url}/rest/agile/1.0/board/1/sprint").json()["values"]
    assert everything[0]["state"] == "closed"
    assert jr.sprint(3).name == "SUP Sprint 49"


def test_add_issues_to_sprint(jr: jira.JIRA, http: requests.Session, url: str) -> None:
    """Issues move into active/future sprints only, at most 50 per call; the sprint field follows."""
    issue = _create(jr, "plan me")
    assert jr.add_issues_to_sprint(3, [issue.key]).status_code == 204
    sprint_field = jr.issue(issue.key).raw["fields"]["customfield_10020"]
    assert [(s["id"], s["name"], s["state"]) for s in sprint_field] == [(3, "SUP Sprint 49", "future")]
    listed = http.get(f"{url}/rest/agile/1.0/sprint/3/issue").json()
    assert [i["key"] for i in listed["issues"]] == [issue.key]
    closed = http.post(f"{url}/rest/agile/1.0/sprint/1/issue", json={"issues": [issue.key]})
    assert closed.status_code == 400
    too_many = http.post(f"{url}/rest/agile/1.0/sprint/2/issue", json={"issues": [issue.key] * 51})
    assert too_many.status_code == 400


def test_edit_labels_and_metadata_endpoints(jr: jira.JIRA) -> None:
    """``issue.update`` edits labels; priorities, fields, project and myself are served."""
    issue = _create(jr, "edit", labels=["a"])
    issue.update(fields={"labels": ["a", "b"]})
    assert jr.issue(issue.key).fields.labels == ["a", "b"]
    issue.update(update={"labels": [{"remove": "a"}]})
    assert jr.issue(issue.key).fields.labels == ["b"]
    assert [p.name for p in jr.priorities()] == ["Highest", "High", "Medium", "Low", "Lowest"]
    sprint_field = next(f for f in jr.fields() if f["name"] == "Sprint")
    assert sprint_field["id"] == "customfield_10020"
    assert jr.project("SUP").id == "10000"
    assert jr.myself()["emailAddress"] == "bridge@example.com"


def test_jql_date_comparison_on_updated(url: str, http: requests.Session) -> None:
    """`updated >= "yyyy-MM-dd HH:mm"` (in the user's time zone) finds recently changed issues, as Jira does."""
    fields = {"project": {"key": "SUP"}, "issuetype": {"name": "Bug"}, "summary": "dated"}
    created = http.post(f"{url}/rest/api/2/issue", json={"fields": fields}, timeout=5).json()

    def keys(jql: str) -> list[str]:
        found = http.get(f"{url}/rest/api/2/search", params={"jql": jql}, timeout=5).json()
        return [issue["key"] for issue in found["issues"]]

    assert created["key"] in keys('project = SUP AND updated >= "2000-01-01 00:00"')
    assert created["key"] not in keys('project = SUP AND updated >= "2999-01-01 00:00"')
    bad = http.get(f"{url}/rest/api/2/search", params={"jql": 'updated >= "yesterday"'}, timeout=5)
    assert bad.status_code == 400


def test_project_components_are_listed_and_set_on_create(jr: jira.JIRA, http: requests.Session, url: str) -> None:
    """``GET /project/SUP/components`` lists the seeded components (the library reads them); a create
    names components by name or id and the issue shows them; an unknown one is Jira's 400."""
    assert [c.name for c in jr.project_components("SUP")] == ["widget", "billing", "login"]
    listed = http.get(f"{url}/rest/api/2/project/SUP/components").json()
    assert {k: listed[0][k] for k in ("id", "name", "project", "projectId")} == {
        "id": "10100", "name": "widget", "project": "SUP", "projectId": 10000,
    }  # fmt: skip
    assert http.get(f"{url}/rest/api/2/project/NOPE/components").status_code == 404

    created = new_jira_issue(http, url, "with components", components=[{"name": "widget"}, {"id": "10101"}])
    fields = http.get(f"{url}/rest/api/2/issue/{created['key']}", params={"fields": "components"}).json()["fields"]
    assert [(c["id"], c["name"]) for c in fields["components"]] == [("10100", "widget"), ("10101", "billing")]

    body = {
        "fields": {
            "project": {"key": "SUP"},
            "issuetype": {"name": "Bug"},
            "summary": "s",
            "components": [{"name": "Mobile"}],
        }
    }
    refused = http.post(f"{url}/rest/api/2/issue", json=body)
    assert refused.status_code == 400
    assert refused.json()["errors"] == {"components": "Component name 'Mobile' is not valid"}


def test_component_changes_are_in_the_webhook_changelog(receiver: Receiver, http: requests.Session, url: str) -> None:
    """``PUT /issue`` sets or adds/removes components; the ``jira:issue_updated`` changelog has one
    ``Component`` item per component removed or added, and the issue in the body shows the new ones."""
    created = new_jira_issue(http, url, "move me", components=[{"name": "widget"}])
    answer = http.put(
        f"{url}/rest/api/2/issue/{created['key']}",
        json={"update": {"components": [{"remove": {"name": "widget"}}, {"add": {"name": "billing"}}]}},
    )
    assert answer.status_code == 204
    hooks = receiver.wait_count(2, "/jira")
    updated = hooks[-1].json
    assert updated["webhookEvent"] == "jira:issue_updated"
    items = [(i["field"], i["fieldId"], i["fromString"], i["toString"]) for i in updated["changelog"]["items"]]
    assert items == [("Component", "components", "widget", None), ("Component", "components", None, "billing")]
    assert [c["name"] for c in updated["issue"]["fields"]["components"]] == ["billing"]
    search = http.get(f"{url}/rest/api/2/search", params={"jql": "component = billing", "fields": "summary"}).json()
    assert [i["key"] for i in search["issues"]] == [created["key"]]
