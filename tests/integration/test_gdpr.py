"""A reporter's personal data: export, erasure, tracker redaction, audit and retention.

Real SQLite (and PostgreSQL where marked) and job runner; the in-memory tracker and mailer, the
real GitLab and Jira adapters against ``responses`` for the redaction call. After an erasure every
text, JSON and binary column of every table is searched for what the reporter wrote.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import responses
from click.testing import CliRunner, Result
from flask.testing import FlaskClient
from sqlalchemy import JSON, LargeBinary, String, Text, select

from bridge import create_app
from bridge.adapters.queue import RETENTION_TASK
from bridge.adapters.store.models import Base, Erasure, InboundEmail, Notification, Ticket
from bridge.adapters.trackers.gitlab import GitLabTracker
from bridge.adapters.trackers.jira import JiraTracker
from bridge.bootstrap import Deps, personal_data
from bridge.domain import Destination, IssueRef, Status
from bridge.errors import ConfigError
from bridge.pipeline.privacy.gdpr import REDACT_ISSUE, redaction_text
from tests.conftest import REPO, Clock, make_settings, post_event, report_event
from tests.fakes import FakeTracker, RecordingMailer
from tests.integration.test_email_intake import INTAKE, drain, mail, post_raw

GITLAB_SECRET = "gitlab-hook-secret"

ANNA = "anna@kunde.dk"
ANNA_NAME = "Anna Jensen"
ANNA_ORG = "Kunde A/S"
DESCRIPTION = "Ugle-fejl 8841 viser kun en spinner"
IMPACT = "Alle 37 saelgere i Aarhus er lammet"
FOLLOWUP = "Stadig gal med pingvin-knappen"
EMAIL_TEXT = "Kaffemaskinen siger 42 i loginboksen"
AUTOREPLY = "Jeg er paa ferie til mandag hos Kunde"
COMMENT = "Vi har fundet fejlen i modul zebra"
CONVERSATION = "conv_anna_4711"

BO = "bo@andet.dk"
BO_NAME = "Bo Hansen"
BO_TEXT = "Printeren spytter blaa papir ud"

ANNA_TRACES = [ANNA, ANNA_NAME, ANNA_ORG, DESCRIPTION, IMPACT, FOLLOWUP, EMAIL_TEXT, AUTOREPLY, COMMENT, CONVERSATION]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bridge.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture
def deps(make_deps: Callable[..., Deps]) -> Deps:
    return make_deps(
        intake=INTAKE,
        trackers={
            "gitlab": {
                "url": "https://gitlab.example",
                "token": "t",
                "project": "acme/support",
                "webhook_secret": GITLAB_SECRET,
            }
        },
    )


@dataclass
class World:
    chatbot_id: str
    email_id: str
    bo_id: str


def note_hook(tracking_id: str, iid: str, note: str) -> dict[str, Any]:
    return {
        "object_kind": "note",
        "event_type": "note",
        "user": {"id": 7, "username": "dev"},
        "object_attributes": {"id": 1241, "note": note, "noteable_type": "Issue", "system": False, "action": "create"},
        "issue": {"iid": int(iid), "title": f"[{tracking_id}] title", "state": "opened"},
    }


def anna_report(**overrides: Any) -> dict[str, Any]:
    event = report_event(conversation_id=CONVERSATION, **overrides)
    event["report"]["description"] = DESCRIPTION
    event["report"]["impact"] = IMPACT
    return event


@pytest.fixture
def world(client: FlaskClient, deps: Deps, tracker: FakeTracker) -> World:
    """Anna reports by chatbot (with a follow-up and a developer's public comment) and by email, and
    sends an auto-reply; Bo reports too."""
    chatbot_id = post_event(client, anna_report()).get_json()["tracking_id"]
    bo_event = report_event(event_id="evt_bo", conversation_id="conv_bo")
    bo_event["reporter"] = {"email": BO, "name": BO_NAME, "organization": "Andet ApS"}
    bo_event["report"]["description"] = BO_TEXT
    bo_id = post_event(client, bo_event).get_json()["tracking_id"]
    drain(deps)
    followup = {
        "event_id": "evt_followup",
        "type": "report.followup",
        "tracking_id": chatbot_id,
        "reporter": {"email": ANNA},
        "message": FOLLOWUP,
    }
    assert post_event(client, followup).status_code == 202
    issue = next(i for i in tracker.issues if i.title.startswith(f"[{chatbot_id}]"))
    hook = note_hook(chatbot_id, issue.key, COMMENT)
    headers = {"Content-Type": "application/json", "X-Gitlab-Event": "Note Hook", "X-Gitlab-Token": GITLAB_SECRET}
    assert client.post("/webhooks/gitlab", data=json.dumps(hook), headers=headers).status_code == 200
    post_raw(client, mail(subject="Login virker ikke", body=EMAIL_TEXT, sender=f"{ANNA_NAME} <{ANNA}>"))
    auto = mail(
        subject="Autosvar: ferie",
        body=AUTOREPLY,
        sender=f"Anna <{ANNA.upper()}>",
        message_id="<auto1@mail.kunde.dk>",
        headers={"Auto-Submitted": "auto-replied"},
    )
    post_raw(client, auto)
    drain(deps)
    email_ticket = next(t for t in tickets(deps) if t.channel == "email")
    return World(chatbot_id=chatbot_id, email_id=email_ticket.tracking_id, bo_id=bo_id)


def tickets(deps: Deps) -> list[Ticket]:
    with deps.store.session() as session:
        return list(session.scalars(select(Ticket).order_by(Ticket.id)))


def dump(deps: Deps) -> str:
    """Every text, JSON and binary value of every table, one per line (binary decoded loosely)."""
    values: list[str] = []
    with deps.store.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, String | Text | JSON | LargeBinary)]
            for row in conn.execute(select(*columns)):
                for value in row:
                    if value is None:
                        continue
                    if isinstance(value, bytes):
                        values.append(value.decode("utf-8", errors="replace"))
                    elif isinstance(value, str):
                        values.append(value)
                    else:
                        values.append(json.dumps(value, ensure_ascii=False))
    return "\n".join(values)


def found(haystack: str, needles: list[str]) -> list[str]:
    return [needle for needle in needles if needle.lower() in haystack.lower()]


def erasure_rows(deps: Deps) -> list[Erasure]:
    with deps.store.session() as session:
        return list(session.scalars(select(Erasure).order_by(Erasure.id)))


# --- export ----------------------------------------------------------------------------------------


def test_export_holds_every_row_of_the_reporter_and_nothing_of_another(deps: Deps, world: World) -> None:
    """Tickets with history, follow-ups, notifications and emails of Anna (any case); nothing of Bo."""
    result = personal_data(deps).export("  ANNA@Kunde.dk ", actor="cli:test")
    doc = result.document
    assert doc["email"] == ANNA
    assert sorted(t["tracking_id"] for t in doc["tickets"]) == sorted([world.chatbot_id, world.email_id])
    chatbot = next(t for t in doc["tickets"] if t["tracking_id"] == world.chatbot_id)
    assert chatbot["reporter"] == {"email": ANNA, "name": ANNA_NAME, "organization": ANNA_ORG}
    assert chatbot["description"] == DESCRIPTION
    assert [h["status"] for h in chatbot["history"]] == ["received", "triaged"]
    assert [f["message"] for f in chatbot["followups"]] == [FOLLOWUP]
    kinds = {(n["kind"], n["state"]) for n in chatbot["notifications"]}
    assert ("ack", "sent") in kinds
    assert [n["comment"] for n in chatbot["notifications"] if n["kind"] == "comment"] == [COMMENT]
    messages = {e["subject"]: e for e in doc["inbound_emails"]}
    assert set(messages) == {"Login virker ikke", "Autosvar: ferie"}
    assert EMAIL_TEXT in messages["Login virker ikke"]["message"]
    assert messages["Login virker ikke"]["ticket"] == world.email_id
    assert messages["Autosvar: ferie"]["state"] == "ignored"

    text = json.dumps(doc, ensure_ascii=False)
    assert found(text, [BO, BO_NAME, BO_TEXT, world.bo_id, "Andet ApS"]) == []

    (audit,) = erasure_rows(deps)
    assert (audit.kind, audit.actor, audit.reference) == ("export", "cli:test", doc["reference"])
    assert (audit.tickets, audit.followups, audit.inbound_emails) == (2, 1, 2)


def test_export_of_an_unknown_address_is_empty_and_audited(deps: Deps, world: World) -> None:
    """An address without data gives an empty document (and an audit row), not an error."""
    doc = personal_data(deps).export("nobody@example.com", actor="admin-api").document
    assert (doc["tickets"], doc["inbound_emails"]) == ([], [])
    assert [row.kind for row in erasure_rows(deps)] == ["export"]


# --- erasure ---------------------------------------------------------------------------------------


def test_erase_leaves_no_trace_of_the_reporter_anywhere(deps: Deps, world: World) -> None:
    """After erasing, no column of any table holds Anna's address, name, organisation or texts; Bo's stay."""
    assert found(dump(deps), ANNA_TRACES) == ANNA_TRACES  # the search finds them before

    audit = personal_data(deps).erase(ANNA.upper(), actor="cli:test")

    everything = dump(deps)
    assert found(everything, ANNA_TRACES) == []
    assert found(everything, [BO, BO_NAME, BO_TEXT]) == [BO, BO_NAME, BO_TEXT]
    assert (audit.tickets, audit.followups, audit.inbound_emails, audit.tracker_events) == (2, 1, 2, 1)
    assert [t.recipient for t in tickets(deps) if t.erased_at is not None] == [None, None]


def test_erase_keeps_the_tickets_their_statuses_and_tracker_links(deps: Deps, world: World) -> None:
    """Ticket rows, status, history, severity and issue stay; the address is a random pseudonym."""
    before = {t.tracking_id: t for t in tickets(deps)}
    histories = {t.tracking_id: [e.status for e in deps.store.history(t.id)] for t in before.values()}
    personal_data(deps).erase(ANNA, actor="cli:test")
    after = {t.tracking_id: t for t in tickets(deps)}
    assert set(after) == set(before)
    pseudonyms = set()
    for tracking_id in (world.chatbot_id, world.email_id):
        old, new = before[tracking_id], after[tracking_id]
        assert (new.status, new.severity, new.kind, new.issue_key, new.sprint_id) == (
            old.status,
            old.severity,
            old.kind,
            old.issue_key,
            old.sprint_id,
        )
        assert [e.status for e in deps.store.history(new.id)] == histories[tracking_id]
        assert re.fullmatch(r"erased-[0-9a-f]{32}@invalid", new.reporter_email)
        assert hashlib.sha256(ANNA.encode()).hexdigest()[:16] not in new.reporter_email
        assert (new.reporter_name, new.organization, new.conversation_id, new.reply_token) == (None, None, None, None)
        assert new.notifications_muted
        assert new.erased_at is not None
        pseudonyms.add(new.reporter_email)
    assert len(pseudonyms) == 1  # one reporter's erased tickets still belong together
    assert after[world.bo_id].reporter_email == BO
    assert after[world.bo_id].erased_at is None


def test_erasure_audit_row_holds_no_personal_data(deps: Deps, world: World) -> None:
    """The audit row has who, when, counts and a random reference, never the address or a hash of it."""
    personal_data(deps).erase(ANNA, actor="admin-api")
    (row,) = erasure_rows(deps)
    assert (row.kind, row.actor, row.tickets, row.redact_tracker) == ("erase", "admin-api", 2, False)
    assert re.fullmatch(r"GD-[0-9A-F]{12}", row.reference)
    audit_text = json.dumps({c.name: str(getattr(row, c.name)) for c in Erasure.__table__.columns}).lower()
    digests = [hashlib.new(name, ANNA.encode()).hexdigest()[:12] for name in ("md5", "sha1", "sha256")]
    assert found(audit_text, [ANNA, "anna", "kunde", *digests]) == []


def test_erasure_is_idempotent(deps: Deps, world: World) -> None:
    """A second erasure finds nothing, changes nothing and is still audited."""
    data = personal_data(deps)
    first = data.erase(ANNA, actor="cli:test")
    snapshot = [(t.tracking_id, t.reporter_email, t.title, t.erased_at) for t in tickets(deps)]
    second = data.erase(ANNA, actor="cli:test")
    assert first.tickets == 2
    assert (second.tickets, second.followups, second.notifications, second.inbound_emails) == (0, 0, 0, 0)
    assert [(t.tracking_id, t.reporter_email, t.title, t.erased_at) for t in tickets(deps)] == snapshot
    assert [row.kind for row in erasure_rows(deps)] == ["erase", "erase"]


def test_no_email_reaches_the_reporter_after_erasure(
    deps: Deps, world: World, clock: Clock, mailer: RecordingMailer
) -> None:
    """A pending status email is skipped and later changes mail nobody."""
    ticket = deps.store.ticket_by_tracking_id(world.chatbot_id)
    assert ticket is not None
    deps.store.set_status(ticket.id, Status.IN_PROGRESS)  # its email waits for the debounce
    to_anna = [m for m in mailer.sent if ANNA in str(m["To"])]
    assert to_anna  # she was mailed before

    personal_data(deps).erase(ANNA, actor="cli:test")
    deps.store.set_status(ticket.id, Status.RESOLVED)
    clock.advance(3600)
    drain(deps)

    assert [m for m in mailer.sent if ANNA in str(m["To"])] == to_anna
    with deps.store.session() as session:
        states = set(session.scalars(select(Notification.state).where(Notification.ticket_id == ticket.id)))
    assert "pending" not in states
    assert "skipped" in states


def test_a_reply_by_plus_address_no_longer_finds_an_erased_ticket(
    client: FlaskClient, deps: Deps, world: World, mailer: RecordingMailer
) -> None:
    """The reply token is gone: a later reply is not filed under the erased ticket."""
    reply_to = next(str(m["Reply-To"]) for m in mailer.sent if ANNA in str(m["To"]))
    personal_data(deps).erase(ANNA, actor="cli:test")
    post_raw(client, mail(subject="Re: kvittering", body="Mere tekst", to=reply_to, message_id="<late@k.dk>"))
    drain(deps)
    with deps.store.session() as session:
        late = session.scalars(select(InboundEmail).order_by(InboundEmail.id.desc())).first()
    assert late is not None
    assert late.state == "ticket"  # a new report, not a follow-up


def test_tracker_redaction_is_queued_and_calls_the_adapter(deps: Deps, world: World, tracker: FakeTracker) -> None:
    """With redact_tracker each erased ticket's issue description is replaced; the audit counts it."""
    audit = personal_data(deps).erase(ANNA, actor="cli:test", redact_tracker=True)
    assert (audit.redact_tracker, audit.tracker_redactions) == (True, 2)
    assert [j.kind for j in deps.store.jobs(state="pending")].count(REDACT_ISSUE) == 2
    drain(deps)

    for tracking_id in (world.chatbot_id, world.email_id):
        issue = next(i for i in tracker.issues if i.title.startswith(f"[{tracking_id}]"))
        assert issue.redacted_description is not None
        assert f"Tracking ID: {tracking_id}" in issue.redacted_description
        assert found(issue.redacted_description, ANNA_TRACES) == []
    bo_issue = next(i for i in tracker.issues if i.title.startswith(f"[{world.bo_id}]"))
    assert bo_issue.redacted_description is None
    assert tracker.calls.count("redact_issue") == 2
    (row,) = erasure_rows(deps)
    assert row.tracker_redactions_done == 2


def test_erasure_without_redaction_leaves_the_tracker_alone(deps: Deps, world: World, tracker: FakeTracker) -> None:
    """redact_tracker defaults to off: no job, no tracker call."""
    personal_data(deps).erase(ANNA, actor="cli:test")
    drain(deps)
    assert "redact_issue" not in tracker.calls


@responses.activate
def test_gitlab_redact_issue_puts_the_new_description() -> None:
    """GitLab: PUT /projects/:id/issues/:iid with only the description."""
    call = responses.put(
        "https://gitlab.example/api/v4/projects/acme%2Fsupport/issues/5",
        json={"iid": 5, "web_url": "https://gitlab.example/acme/support/-/issues/5"},
    )
    tracker = GitLabTracker(url="https://gitlab.example", token="glpat-x")
    text = redaction_text("ST-7K3Q9X2M", erased_at=datetime(2026, 11, 25, tzinfo=UTC))
    tracker.redact_issue(Destination(tracker="gitlab", project="acme/support"), IssueRef(key="5"), text)
    assert call.call_count == 1
    assert json.loads(call.calls[0].request.body or b"{}") == {"description": text}


@responses.activate
def test_jira_redact_issue_puts_the_description_field() -> None:
    """Jira: PUT /rest/api/2/issue/<key> with fields.description."""
    call = responses.put("https://jira.example/rest/api/2/issue/SUP-1", status=204)
    tracker = JiraTracker(url="https://jira.example", user="bot@example.com", api_token="secret")
    tracker.redact_issue(Destination(tracker="jira", project="SUP"), IssueRef(key="SUP-1"), "gone")
    assert call.call_count == 1
    assert json.loads(call.calls[0].request.body or b"{}") == {"fields": {"description": "gone"}}


@responses.activate
def test_redaction_failures_are_typed() -> None:
    """A 404 from the tracker is a PermanentError, a 503 a RetryableError, like every adapter call."""
    from bridge.errors import PermanentError, RetryableError

    url = "https://gitlab.example/api/v4/projects/acme%2Fsupport/issues/5"
    responses.put(url, status=404, json={"message": "404 Not found"})
    responses.put(url, status=503, json={"message": "down"})
    tracker = GitLabTracker(url="https://gitlab.example", token="glpat-x")
    dest, ref = Destination(tracker="gitlab", project="acme/support"), IssueRef(key="5")
    with pytest.raises(PermanentError):
        tracker.redact_issue(dest, ref, "x")
    with pytest.raises(RetryableError):
        tracker.redact_issue(dest, ref, "x")


# --- retention -------------------------------------------------------------------------------------


def test_retention_purges_a_ticket_closed_400_days_ago_only(
    client: FlaskClient, deps: Deps, clock: Clock, tracker: FakeTracker
) -> None:
    """Closed 400 days ago: erased (who=retention); closed 10 days ago, open, or active since: kept."""

    def report(event_id: str, email: str) -> int:
        event = anna_report(event_id=event_id)
        event["reporter"]["email"] = email
        tracking_id = post_event(client, event).get_json()["tracking_id"]
        ticket = deps.store.ticket_by_tracking_id(tracking_id)
        assert ticket is not None
        return ticket.id

    old = report("evt_old", "old@kunde.dk")
    recent = report("evt_recent", "recent@kunde.dk")
    still_open = report("evt_open", "open@kunde.dk")
    active = report("evt_active", "active@kunde.dk")
    post_raw(client, mail(subject="Out of Office", headers={"Auto-Submitted": "auto-replied"}, message_id="<o@k>"))
    drain(deps)
    deps.store.set_status(old, Status.RESOLVED)
    deps.store.set_status(active, Status.RESOLVED)
    clock.advance(390 * 86400)
    deps.store.set_status(recent, Status.DECLINED, reason="duplicate")
    followup = {
        "event_id": "evt_active_followup",
        "type": "report.followup",
        "tracking_id": deps.store.ticket(active).tracking_id,
        "reporter": {"email": "active@kunde.dk"},
        "message": "thanks",
    }
    assert post_event(client, followup).status_code == 202
    post_raw(client, mail(subject="Out of Office 2", headers={"Auto-Submitted": "auto-replied"}, message_id="<o2@k>"))
    drain(deps)
    clock.advance(10 * 86400)

    audit = personal_data(deps).purge_expired(days=365)

    assert audit is not None
    assert (audit.kind, audit.actor, audit.tickets, audit.inbound_emails) == ("retention", "retention", 1, 1)
    assert deps.store.ticket(old).erased_at is not None
    assert deps.store.ticket(old).description == "[erased]"
    assert deps.store.ticket(old).status == "resolved"
    for kept, email in ((recent, "recent@kunde.dk"), (still_open, "open@kunde.dk"), (active, "active@kunde.dk")):
        assert deps.store.ticket(kept).erased_at is None
        assert deps.store.ticket(kept).reporter_email == email
    with deps.store.session() as session:
        unticketed = session.scalars(select(InboundEmail.message_key).where(InboundEmail.ticket_id.is_(None))).all()
    assert list(unticketed) == ["o2@k"]  # the 400-day-old auto-reply is deleted, the 10-day-old one kept
    assert "old@kunde.dk" not in dump(deps)
    assert personal_data(deps).purge_expired(days=365) is None  # nothing more is due
    assert personal_data(deps).purge_expired(days=0) is None  # 0 is off


def test_retention_is_an_hourly_task_unless_off(make_deps: Callable[..., Deps]) -> None:
    """The worker's huey runs the retention purge hourly; retention.personal_data_days 0 removes it."""

    def due(deps: Deps, minute: int) -> set[str]:
        return {task.name for task in deps.queue.huey.read_periodic(datetime(2026, 11, 25, 10, minute))}

    on = make_deps()
    assert on.settings.retention.personal_data_days == 365
    assert RETENTION_TASK in due(on, 23)
    assert RETENTION_TASK not in due(on, 24)
    assert RETENTION_TASK not in due(make_deps(retention={"personal_data_days": 0}), 23)


def test_retention_days_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped config.yaml reads RETENTION_DAYS (default 365)."""
    from bridge.config import load_settings

    config = tmp_path / "config.yaml"
    config.write_text((REPO / "config.yaml").read_text())
    monkeypatch.delenv("RETENTION_DAYS", raising=False)
    assert load_settings(config, env={})[0].retention.personal_data_days == 365
    assert load_settings(config, env={"RETENTION_DAYS": "0"})[0].retention.personal_data_days == 0
    with pytest.raises(ConfigError):
        load_settings(config, env={"RETENTION_DAYS": "-1"})


# --- the reporter's address and the tracker -------------------------------------------------------


def test_an_email_report_keeps_the_address_out_of_the_tracker_by_default(
    client: FlaskClient, deps: Deps, tracker: FakeTracker
) -> None:
    """privacy.reporter_email_in_tracker is off by default for the email channel too."""
    post_raw(client, mail(sender=f"{ANNA_NAME} <{ANNA}>"))
    drain(deps)
    (issue,) = tracker.issues
    assert issue.new_issue is not None
    assert issue.new_issue.reporter_email is None
    assert issue.new_issue.report.channel.value == "email"
    from bridge.adapters.trackers.gitlab import render_description

    assert ANNA not in render_description(issue.new_issue)


def test_an_email_report_carries_the_address_when_configured(
    make_deps: Callable[..., Deps], tracker: FakeTracker
) -> None:
    """With privacy.reporter_email_in_tracker the email channel's address goes into the issue."""
    deps = make_deps(intake=INTAKE, privacy={"reporter_email_in_tracker": True})
    post_raw(create_app(deps=deps).test_client(), mail(sender=f"{ANNA_NAME} <{ANNA}>"))
    drain(deps)
    (issue,) = tracker.issues
    assert issue.new_issue is not None
    assert issue.new_issue.reporter_email == ANNA


# --- configuration ---------------------------------------------------------------------------------


def test_admin_token_must_differ_from_the_chatbot_token(tmp_path: Path) -> None:
    """The two bearer tokens must be different secrets, and the admin one at least 16 characters."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="must differ"):
        make_settings(tmp_path, chatbot={"api_token": "same-token-1234567"}, admin={"token": "same-token-1234567"})
    with pytest.raises(ValidationError):
        make_settings(tmp_path, admin={"token": "short"})
    assert make_settings(tmp_path, admin={"token": "a" * 32}).admin.token == "a" * 32


# --- the CLI ---------------------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deps: Deps) -> Path:
    """The shipped config.yaml pointed at the test database."""
    config = tmp_path / "config.yaml"
    config.write_text(
        (REPO / "config.yaml").read_text().replace("mappings_dir: mappings", f"mappings_dir: {REPO / 'mappings'}")
    )
    for key, value in {
        "BRIDGE_CONFIG": str(config),
        "CHATBOT_SIGNING_SECRET": "s",
        "GITLAB_URL": "https://gitlab.example",
        "GITLAB_TOKEN": "glpat-secret",
        "GITLAB_PROJECT": "acme/support",
        "DATABASE_URL": deps.settings.database_url,
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("REDIS_URL", "BRIDGE_ADMIN_TOKEN", "RETENTION_DAYS"):
        monkeypatch.delenv(key, raising=False)
    return tmp_path


def run_cli(clock: Clock, *args: str, input: str | None = None) -> Result:
    """``python -m bridge <args>`` on the test's clock."""
    from bridge.cli import CliContext, cli

    return CliRunner().invoke(cli, list(args), input=input, obj=CliContext(clock=clock))


def test_cli_export_writes_a_private_file_and_audits(cli_env: Path, deps: Deps, world: World, clock: Clock) -> None:
    """gdpr-export --output writes the JSON document with mode 600; the audit names the OS user."""
    out = cli_env / "anna.json"
    result = run_cli(clock, "gdpr-export", ANNA, "--output", str(out))
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert sorted(t["tracking_id"] for t in doc["tickets"]) == sorted([world.chatbot_id, world.email_id])
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    (row,) = erasure_rows(deps)
    assert row.kind == "export"
    assert row.actor.startswith("cli:")
    assert row.reference in result.output


def test_cli_erase_asks_first_then_erases(cli_env: Path, deps: Deps, world: World, clock: Clock) -> None:
    """gdpr-erase shows what it found and asks; "n" changes nothing, --yes erases and prints the reference."""
    refused = run_cli(clock, "gdpr-erase", ANNA, input="n\n")
    assert refused.exit_code == 1
    assert "2 ticket(s)" in refused.output
    assert found(dump(deps), [ANNA]) == [ANNA]
    assert erasure_rows(deps) == []

    clock.advance(3600)
    done = run_cli(clock, "gdpr-erase", ANNA, "--yes", "--redact-tracker")
    assert done.exit_code == 0, done.output
    assert "erased 2 ticket(s)" in done.output
    assert found(dump(deps), ANNA_TRACES) == []
    (row,) = erasure_rows(deps)
    assert row.reference in done.output
    assert row.redact_tracker

    log = run_cli(clock, "gdpr-log")
    assert log.exit_code == 0, log.output
    assert row.reference in log.output
    assert "2026-11-25 11:15:00 UTC" in log.output  # audited at the CLI's clock
    assert ANNA not in log.output


def test_cli_retention_runs_the_purge_now(cli_env: Path, deps: Deps, world: World, clock: Clock) -> None:
    """`retention` erases nothing while everything is fresh, and says so; a year on, it purges the
    auto-reply that made no ticket (the tickets are open, so they stay)."""
    result = run_cli(clock, "retention")
    assert result.exit_code == 0, result.output
    assert "nothing is older than 365 days" in result.output

    clock.advance(366 * 86400)
    later = run_cli(clock, "retention")
    assert later.exit_code == 0, later.output
    assert "erased 0 ticket(s) and 1 email(s) older than 365 days" in later.output
    assert [t.erased_at for t in tickets(deps)] == [None, None, None]
