"""``python -m bridge explain`` and ``POST /api/v1/admin/explain``: what the bridge would decide, on
the shipped configuration, and proof that neither writes anything (row counts unchanged, no tracker
call; ``--online`` only reads the tracker, over HTTP mocked with ``responses``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from click.testing import CliRunner
from flask.testing import FlaskClient

from bridge import create_app
from bridge.adapters.store.db import make_engine, upgrade
from bridge.bootstrap import Deps
from bridge.cli import CliContext, cli
from tests.conftest import REPO, Clock, post_event, report_event
from tests.fakes import FakeTracker
from tests.integration.rows import row_counts

GITLAB = "https://gitlab.example"
PROJECT = f"{GITLAB}/api/v4/projects/acme%2Fsupport"
ADMIN_TOKEN = "admin-token-0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

EMAIL = (
    b"From: Anna Jensen <anna@kunde.dk>\r\n"
    b"To: login@support.example.com\r\n"
    b"Subject: Re: [KRITISK] Kan ikke logge ind\r\n"
    b"Message-ID: <m1@kunde.dk>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Ingen af vores medarbejdere kan logge ind siden i morges.\r\n"
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bridge.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str) -> dict[str, str]:
    """The shipped config.yaml and mappings over a migrated database holding one report."""
    config = tmp_path / "config.yaml"
    text = (REPO / "config.yaml").read_text().replace("mappings_dir: mappings", f"mappings_dir: {REPO / 'mappings'}")
    config.write_text(text)
    variables = {
        "BRIDGE_CONFIG": str(config),
        "CHATBOT_SIGNING_SECRET": "s",
        "GITLAB_URL": GITLAB,
        "GITLAB_TOKEN": "glpat-secret",
        "GITLAB_PROJECT": "acme/support",
        "DATABASE_URL": database_url,
    }
    for key, value in variables.items():
        monkeypatch.setenv(key, value)
    for key in ("REDIS_URL", "BRIDGE_TRACKER", "JIRA_URL"):
        monkeypatch.delenv(key, raising=False)
    return variables


@pytest.fixture
def stored(env: dict[str, str], client: FlaskClient, database_url: str) -> dict[str, int]:
    """A report in the database, so that "nothing changed" is about real rows; the counts before."""
    upgrade(database_url)
    assert post_event(client, report_event()).status_code == 202
    counts = row_counts(make_engine(database_url))
    assert counts["tickets"] == 1
    return counts


def invoke(*args: str, clock: Clock | None = None) -> Any:
    return CliRunner().invoke(cli, ["explain", *args], obj=CliContext(clock=clock))


# --- the CLI ---------------------------------------------------------------------------------------


@responses.activate
def test_explain_prints_the_decisions_and_writes_nothing(stored: dict[str, int], database_url: str) -> None:
    """Without --online: no HTTP request at all (``responses`` has no URL registered, so any call
    would fail), every table as it was."""
    result = invoke(
        "--title", "Chat-widget indlæses ikke",
        "--description", "Siden viser kun en spinner siden i morges.",
        "--impact", "Ingen af vores kunder kan skrive til os",
        "--priority", "Kritisk", "--product", "widget", "--organization", "Kunde A/S", "--locale", "da",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "Severity: critical (hotfix); product-owner review: yes" in lines
    assert "Category: widget (Chat widget); product:widget" in lines
    assert "Route: gitlab acme/support (default)" in lines
    assert "Sprint: no cached sprints; use --online" in lines
    assert "Problems: grouping not enabled; every report gets an issue of its own" in lines
    assert "  category:widget(product:widget)" in lines
    assert len(responses.calls) == 0
    assert row_counts(make_engine(database_url)) == stored


def test_explain_in_danish_as_json(env: dict[str, str]) -> None:
    result = invoke("--title", "Din faktura er forkert", "--lang", "da", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["category"] == {
        "name": "billing", "text": "Betaling og fakturering", "rule": "phrase:faktura",
        "label": "category::billing", "component": None,
    }  # fmt: skip
    assert body["sprint"]["text"] == "ingen gemte sprints; brug --online"
    assert body["problems"]["text"] == "gruppering er ikke slået til; hver rapport får sin egen sag"
    assert body["input"]["source"] == "fields"


def test_explain_reads_a_chatbot_event_file(env: dict[str, str], tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps(report_event()), encoding="utf-8")
    result = invoke("--event", str(event), "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert (body["input"]["source"], body["severity"], body["category"]["name"]) == ("event", "critical", "widget")
    assert "anna@kunde.dk" not in result.output


def test_an_event_file_the_webhook_would_refuse_names_every_problem(env: dict[str, str], tmp_path: Path) -> None:
    event = report_event()
    del event["report"]["description"]
    event["reporter"]["email"] = "nobody"
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event), encoding="utf-8")
    result = invoke("--event", str(path))
    assert result.exit_code == 2
    assert "the event does not match the chatbot schema" in result.output
    assert "report.description: required" in result.output
    assert "reporter.email: " in result.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "cannot read the event"),
        (json.dumps({"event_id": "e", "type": "report.followup", "tracking_id": "ST-7K3Q9X2M",
                     "reporter": {"email": "a@b.dk"}, "message": "m"}), "explain takes report.created"),
    ],
)  # fmt: skip
def test_an_event_file_that_is_no_report_is_refused(
    env: dict[str, str], tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "event.json"
    path.write_text(content, encoding="utf-8")
    result = invoke("--event", str(path))
    assert result.exit_code == 2
    assert message in result.output


def test_explain_reads_a_raw_email_as_the_email_job_would(env: dict[str, str], tmp_path: Path) -> None:
    """Title from the subject, organisation and language from the sender, category from the recipient."""
    path = tmp_path / "message.eml"
    path.write_bytes(EMAIL)
    result = invoke("--email", str(path), "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["input"] == {
        "source": "email",
        "channel": "email",
        "locale": "da",
        "organization": "Kunde A/S",
        "product": None,
        "title": "[KRITISK] Kan ikke logge ind",
        "declared_priority": "KRITISK",
    }
    assert (body["severity"], body["category"]["rule"]) == ("critical", "address:login")
    assert "source::email" in body["labels"]
    assert "anna@kunde.dk" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give exactly one of"),
        (["--title", "x", "--event", "event.json"], "give exactly one of"),
        (["--title", "   "], "must not be blank"),
        (["--event", "event.json", "--product", "widget"], "go with --title"),
    ],
)
def test_explain_usage_errors(env: dict[str, str], tmp_path: Path, args: list[str], message: str) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps(report_event()))
    result = invoke(*[str(event) if arg == "event.json" else arg for arg in args])
    assert result.exit_code == 2
    assert message in result.output


def test_explain_fields_are_limited_like_the_chatbot_report(env: dict[str, str]) -> None:
    result = invoke("--title", "x" * 501)
    assert result.exit_code == 2
    assert "invalid report fields" in result.output
    assert "title: " in result.output


@responses.activate
def test_online_reads_the_sprints_and_their_load_and_only_reads(
    stored: dict[str, int], database_url: str, clock: Clock
) -> None:
    """--online asks GitLab for the milestones and the bugfix load through the real adapter: GET
    requests only; the current sprint is full, so a high report goes to the next one."""
    responses.get(
        f"{PROJECT}/milestones",
        json=[
            {"id": 11, "iid": 1, "title": "Sprint 48", "state": "active", "start_date": "2026-11-23",
             "due_date": "2026-12-06"},
            {"id": 12, "iid": 2, "title": "Sprint 50", "state": "active", "start_date": "2026-12-07",
             "due_date": "2026-12-20"},
        ],
    )  # fmt: skip

    def load(request: Any) -> tuple[int, dict[str, str], str]:
        total = "10" if "Sprint+48" in request.url or "Sprint%2048" in request.url else "4"
        return 200, {"X-Total": total, "X-Total-Pages": "1", "Content-Type": "application/json"}, "[]"

    responses.add_callback(responses.GET, f"{PROJECT}/issues", callback=load)
    result = invoke("--title", "Login is broken", "--online", clock=clock)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "Sprint: Sprint 50 (2026-12-07 to 2026-12-20): the next sprint has room" in lines
    assert "  current: Sprint 48 (2026-11-23 to 2026-12-06), load 10/10 issues (full)" in lines
    assert "  next: Sprint 50 (2026-12-07 to 2026-12-20), load 4/20 issues" in lines
    assert "  sprint:next" in lines
    assert {call.request.method for call in responses.calls} == {"GET"}
    assert len(responses.calls) == 3  # the milestones and two loads
    assert row_counts(make_engine(database_url)) == stored


@responses.activate
def test_online_with_the_tracker_down_says_so_and_exits_1(env: dict[str, str], clock: Clock) -> None:
    responses.get(f"{PROJECT}/milestones", status=503, json={"message": "503 Service Unavailable"})
    result = invoke("--title", "Login is broken", "--online", clock=clock)
    assert result.exit_code == 1
    assert "Sprint: sprints could not be read: " in result.output
    assert "glpat-secret" not in result.output


def test_explain_runs_as_a_program(env: dict[str, str], tmp_path: Path) -> None:
    """``python -m bridge explain`` as an operator runs it, in Danish."""
    answer = subprocess.run(
        [sys.executable, "-m", "bridge", "explain", "--title", "Stavefejl på knappen", "--lang", "da"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, **env},
        check=False,
    )
    assert answer.returncode == 0, answer.stderr
    lines = answer.stdout.splitlines()
    assert "Alvorlighed: low (bugfix); produktejer-gennemgang: nej" in lines
    assert "  keyword:cosmetic(stavefejl)" in lines


# --- the admin API ---------------------------------------------------------------------------------


@pytest.fixture
def deps(make_deps: Callable[..., Deps]) -> Deps:
    return make_deps(admin={"token": ADMIN_TOKEN})


def test_the_admin_api_explains_fields_in_danish_and_writes_nothing(
    client: FlaskClient, deps: Deps, tracker: FakeTracker
) -> None:
    assert post_event(client, report_event()).status_code == 202
    before, calls = row_counts(deps.store.engine), list(tracker.calls)
    answer = client.post(
        "/api/v1/admin/explain",
        headers=ADMIN,
        json={"title": "Chat-widget indlæses ikke", "impact": "Ingen af vores kunder kan skrive til os",
              "priority": "Kritisk", "product": "widget", "organization": "Kunde A/S", "locale": "da", "lang": "da"},
    )  # fmt: skip
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.headers["Cache-Control"] == "no-store"
    body = answer.get_json()
    assert (body["severity"], body["kind"], body["po_review"]) == ("critical", "hotfix", True)
    assert body["category"] == {
        "name": "widget", "text": "Chat-widget", "rule": "product:widget",
        "label": "category::widget", "component": None,
    }  # fmt: skip
    assert body["labels"][-1] == "category::widget"
    assert body["route"] == {"name": None, "tracker": "gitlab", "project": "acme/support", "board_id": None}
    assert body["sprint"]["source"] == "none"
    assert body["sprint"]["text"] == "ingen gemte sprints; brug --online"
    assert body["problems"]["grouping"] is False
    assert body["rules"][-2:] == ["category:widget(product:widget)", "route:default(gitlab)"]
    assert row_counts(deps.store.engine) == before
    assert tracker.calls == calls


def test_the_admin_api_explains_a_chatbot_event_like_the_cli(
    client: FlaskClient, env: dict[str, str], tmp_path: Path
) -> None:
    answer = client.post("/api/v1/admin/explain", headers=ADMIN, json={"event": report_event()})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    path = tmp_path / "event.json"
    path.write_text(json.dumps(report_event()))
    from_cli = json.loads(invoke("--event", str(path), "--json").output)
    assert answer.get_json() == from_cli


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"title"}),
        ({"title": "  "}, {"title"}),
        ({"title": "x", "colour": "red"}, {"colour"}),
        ({"title": "x", "lang": "de"}, {"lang"}),
        ({"title": "x", "impact": 5}, {"impact"}),
        ({"event": {"type": "report.created"}}, {"event.event_id", "event.reporter", "event.report"}),
        ({"event": report_event(), "title": "x"}, {"title"}),
        ({"event": "text"}, {"event"}),
        (
            {"event": {"event_id": "e", "type": "report.followup", "tracking_id": "ST-7K3Q9X2M",
                       "reporter": {"email": "a@b.dk"}, "message": "m"}},
            {"event.type"},
        ),
    ],
)  # fmt: skip
def test_the_admin_api_names_every_bad_field(client: FlaskClient, body: dict[str, Any], fields: set[str]) -> None:
    answer = client.post("/api/v1/admin/explain", headers=ADMIN, json=body)
    assert answer.status_code == 400
    assert answer.mimetype == "application/problem+json"
    problem = answer.get_json()
    assert problem["type"].endswith("/validation")
    assert {error["field"] for error in problem["errors"]} == fields


def test_the_admin_api_refuses_what_is_not_a_json_object(client: FlaskClient) -> None:
    not_json = client.post("/api/v1/admin/explain", headers=ADMIN, data="title=x")
    assert not_json.status_code == 415
    for data in ("[1, 2]", "{broken"):
        answer = client.post("/api/v1/admin/explain", headers={**ADMIN, "Content-Type": "application/json"}, data=data)
        assert answer.status_code == 400
        assert answer.get_json()["type"].endswith("/malformed")


def test_the_admin_api_needs_its_token_and_exists_only_with_one(
    client: FlaskClient, make_deps: Callable[..., Deps]
) -> None:
    assert client.post("/api/v1/admin/explain", json={"title": "x"}).status_code == 401
    wrong = {"Authorization": "Bearer chatbot-api-token"}
    assert client.post("/api/v1/admin/explain", headers=wrong, json={"title": "x"}).status_code == 401
    off = create_app(deps=make_deps()).test_client()
    assert off.post("/api/v1/admin/explain", headers=ADMIN, json={"title": "x"}).status_code == 404
