"""The operator CLI against a real config file and SQLite database (GitLab mocked over HTTP)."""

from __future__ import annotations

from pathlib import Path

import pytest
import responses
from click.testing import CliRunner

from bridge.cli import cli
from tests.conftest import REPO

GITLAB = "https://gitlab.example"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped config.yaml and mappings, with a scratch database and queue."""
    config = tmp_path / "config.yaml"
    text = (REPO / "config.yaml").read_text().replace("mappings_dir: mappings", f"mappings_dir: {REPO / 'mappings'}")
    config.write_text(text)
    for key, value in {
        "BRIDGE_CONFIG": str(config),
        "CHATBOT_SIGNING_SECRET": "s",
        "GITLAB_URL": GITLAB,
        "GITLAB_TOKEN": "glpat-secret",
        "GITLAB_PROJECT": "acme/support",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'bridge.db'}",
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("REDIS_URL", "BRIDGE_TRACKER", "JIRA_URL"):
        monkeypatch.delenv(key, raising=False)
    return tmp_path


def test_check_config_offline_ok(env: Path) -> None:
    """Valid configuration: exit 0 and the trackers in use."""
    result = CliRunner().invoke(cli, ["check-config"])
    assert result.exit_code == 0, result.output
    assert "configuration OK" in result.output
    assert "gitlab" in result.output


def test_check_config_reports_every_problem_and_exits_2(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Missing token and signing secret are both listed with file, line and the variable to set."""
    monkeypatch.delenv("GITLAB_TOKEN")
    monkeypatch.delenv("CHATBOT_SIGNING_SECRET")
    result = CliRunner().invoke(cli, ["check-config"])
    assert result.exit_code == 2
    assert "trackers.gitlab.token" in result.output
    assert "GITLAB_TOKEN" in result.output
    assert "CHATBOT_SIGNING_SECRET" in result.output
    assert f"{env / 'config.yaml'}:" in result.output


@responses.activate
def test_check_config_online_ok(env: Path) -> None:
    """--online reaches GitLab: token, project and a current milestone."""
    responses.get(f"{GITLAB}/api/v4/user", json={"id": 1, "username": "bridge-bot"})
    responses.get(f"{GITLAB}/api/v4/projects/acme%2Fsupport", json={"id": 4, "path_with_namespace": "acme/support"})
    responses.get(
        f"{GITLAB}/api/v4/projects/acme%2Fsupport/milestones",
        json=[
            {
                "id": 12,
                "iid": 3,
                "title": "Sprint 48",
                "state": "active",
                "start_date": "2000-01-01",
                "due_date": "2999-12-31",
            }
        ],
    )
    result = CliRunner().invoke(cli, ["check-config", "--online"])
    assert result.exit_code == 0, result.output
    assert "gitlab acme/support: OK" in result.output


@responses.activate
def test_check_config_online_reports_rejected_token_without_leaking_it(env: Path) -> None:
    """A 401 is reported as a problem (exit 1), and the token never appears."""
    responses.get(f"{GITLAB}/api/v4/user", status=401, json={"message": "401 Unauthorized"})
    result = CliRunner().invoke(cli, ["check-config", "--online"])
    assert result.exit_code == 1
    assert "token rejected" in result.output
    assert "glpat-secret" not in result.output


def test_migrate_then_list_and_replay_dead_letters(env: Path) -> None:
    """migrate creates the schema; a dead job is listed with its reason and can be replayed."""
    runner = CliRunner()
    assert runner.invoke(cli, ["migrate"]).exit_code == 0
    from datetime import UTC, datetime

    from bridge.adapters.store.db import make_engine
    from bridge.adapters.store.models import Ticket
    from bridge.adapters.store.repository import Store

    store = Store(make_engine(f"sqlite:///{env / 'bridge.db'}"), clock=lambda: datetime.now(UTC))
    with store.session() as session:
        now = datetime.now(UTC)
        ticket = Ticket(
            tracking_id="ST-ABCDEFGH",
            status="received",
            channel="chatbot",
            locale="en",
            reporter_email="a@b.dk",
            title="t",
            description="d",
            environment={},
            attachments=[],
            created_at=now,
            updated_at=now,
        )
        session.add(ticket)
        session.flush()
        job_id = store.new_job(session, kind="file_ticket", ticket_id=ticket.id, now=now).id
    store.finish(job_id, dead_reason="gitlab create issue: HTTP 403: Forbidden")

    listing = runner.invoke(cli, ["jobs", "--state", "dead"])
    assert listing.exit_code == 0
    assert f"#{job_id}" in listing.output
    assert "ST-ABCDEFGH" in listing.output
    assert "HTTP 403: Forbidden" in listing.output
    assert "a@b.dk" not in listing.output

    replayed = runner.invoke(cli, ["replay", str(job_id)])
    assert replayed.exit_code == 0, replayed.output
    assert "queued again" in replayed.output
    job = store.job(job_id)
    assert job is not None
    assert (job.state, job.attempts) == ("pending", 0)
    again = runner.invoke(cli, ["replay", str(job_id)])
    assert "not dead" in again.output


def test_tickets_needs_support_lists_the_set_aside_tickets(env: Path) -> None:
    """``tickets --needs-support`` lists only the tickets set aside for support, with the reason;
    the plain listing marks them and ``ticket`` says why."""
    runner = CliRunner()
    assert runner.invoke(cli, ["migrate"]).exit_code == 0
    from datetime import UTC, datetime

    from bridge.adapters.store.db import make_engine
    from bridge.adapters.store.models import Ticket
    from bridge.adapters.store.repository import Store
    from bridge.pipeline.following import support

    store = Store(make_engine(f"sqlite:///{env / 'bridge.db'}"), clock=lambda: datetime.now(UTC))
    now = datetime.now(UTC)
    ids = {}
    with store.session() as session:
        for tracking_id, status in (("ST-ABCDEFGH", "in_progress"), ("ST-BCDEFGHJ", "triaged")):
            ticket = Ticket(
                tracking_id=tracking_id,
                status=status,
                channel="chatbot",
                locale="en",
                reporter_email="a@b.dk",
                title="t",
                description="d",
                environment={},
                attachments=[],
                tracker="jira",
                project="SUP",
                issue_key="SUP-4" if status == "in_progress" else "SUP-5",
                created_at=now,
                updated_at=now,
            )
            session.add(ticket)
            session.flush()
            ids[tracking_id] = ticket.id
    assert support.set_aside(store, ids["ST-ABCDEFGH"], support.ISSUE_DELETED) is True
    assert support.set_aside(store, ids["ST-ABCDEFGH"], support.ISSUE_NOT_FOUND) is False  # the first reason stays

    flagged = runner.invoke(cli, ["tickets", "--needs-support"])
    assert flagged.exit_code == 0, flagged.output
    rows = flagged.output.strip().splitlines()[1:]
    assert len(rows) == 1
    assert rows[0].split()[:5] == ["ST-ABCDEFGH", "in_progress", "issue_deleted", "jira", "SUP-4"]
    assert "a@b.dk" not in flagged.output
    assert runner.invoke(cli, ["tickets", "--needs-support", "--status", "triaged"]).output.strip().count("\n") == 0
    listing = runner.invoke(cli, ["tickets"]).output
    marked = [line for line in listing.splitlines() if line.endswith("needs support")]
    assert [line.split()[0] for line in marked] == ["ST-ABCDEFGH"]
    detail = runner.invoke(cli, ["ticket", "ST-ABCDEFGH"]).output
    assert "needs support: issue_deleted" in detail
