"""Mail the database refuses does not stop IMAP intake (real Dovecot, real PostgreSQL).

Before, one message whose insert PostgreSQL refused (a NUL in a header, say) failed on every poll,
was never moved, and every message after it waited for ever. Dovecot itself turns NUL into 0x80,
so the refusal is made by PostgreSQL here with a trigger that raises the error PostgreSQL raises
for text it cannot hold (SQLSTATE 22021) for one marked message.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import select, text

from bridge import create_app
from bridge.adapters.mail.imap import SET_ASIDE_KEYWORD
from bridge.adapters.store.models import InboundEmail, Job, Ticket
from bridge.bootstrap import Deps
from bridge.cli import CliContext, cli
from tests.conftest import REPO
from tests.integration.test_imap import (  # noqa: F401 - dovecot and user are fixtures
    Dovecot,
    deliver,
    dovecot,
    email_bytes,
    folder,
    imap_settings,
    run_email_jobs,
    user,
)
from tests.integration.test_ops import scrape, value

pytestmark = pytest.mark.postgres

REFUSED = "Kan ikke gemmes"


@pytest.fixture
def database_url(postgres_url: str) -> str:
    return postgres_url


def refuse_inserts(deps: Deps, table: str, condition: str) -> None:
    """PostgreSQL refuses rows of ``table`` matching ``condition`` as it refuses a NUL in text."""
    with deps.store.engine.begin() as conn:
        conn.execute(
            text(
                f"""
                CREATE FUNCTION refuse_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                  IF {condition} THEN
                    RAISE EXCEPTION 'invalid byte sequence for encoding "UTF8": 0x00' USING ERRCODE = '22021';
                  END IF;
                  RETURN NEW;
                END $$;
                CREATE TRIGGER refuse BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION refuse_{table}();
                """
            )
        )


def run_cli(deps: Deps, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    config = tmp_path / "config.yaml"
    config.write_text(
        (REPO / "config.yaml").read_text().replace("mappings_dir: mappings", f"mappings_dir: {REPO / 'mappings'}")
    )
    for key, setting in {
        "BRIDGE_CONFIG": str(config),
        "CHATBOT_SIGNING_SECRET": "s",
        "GITLAB_URL": "https://gitlab.example",
        "GITLAB_TOKEN": "glpat-secret",
        "GITLAB_PROJECT": "acme/support",
        "DATABASE_URL": deps.settings.database_url,
    }.items():
        monkeypatch.setenv(key, setting)
    monkeypatch.delenv("REDIS_URL", raising=False)
    result = CliRunner().invoke(cli, list(args), obj=CliContext(clock=deps.clock))
    assert result.exit_code == 0, result.output
    return result.output


def test_a_message_the_database_refuses_is_set_aside_and_the_poll_goes_on(
    dovecot: Dovecot,  # noqa: F811
    user: str,  # noqa: F811
    make_deps: Callable[..., Deps],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The refused message comes first: the same poll stores and files away the two after it; the
    refused one stays in the INBOX flagged for people, is kept as ``rejected`` with the reason (listed
    by ``emails``), is counted in /metrics, and later polls skip it."""
    deps = make_deps(imap=imap_settings(dovecot, user).model_dump())
    assert deps.imap_poller is not None
    client: FlaskClient = create_app(deps=deps).test_client()
    before = value(scrape(client), "bridge_reports_total", channel="email", outcome="set_aside")
    refuse_inserts(deps, "inbound_emails", f"NEW.state = 'pending' AND position('{REFUSED}'::bytea IN NEW.raw) > 0")
    deliver(dovecot, user, email_bytes(REFUSED), email_bytes("Login virker ikke"), email_bytes("Rapporten mangler"))

    first = deps.imap_poller.poll()
    second = deps.imap_poller.poll()
    run_email_jobs(deps)

    assert (first.fetched, first.moved, first.set_aside, second.fetched) == (3, 2, 1, 0)
    ((subject, flags),) = folder(dovecot, user, "INBOX")
    assert subject == f"Subject: {REFUSED}".encode()
    assert {b"\\Flagged", SET_ASIDE_KEYWORD.encode()} <= set(flags)
    assert len(folder(dovecot, user, "Processed")) == 2
    with deps.store.session() as session:
        titles = sorted(session.scalars(select(Ticket.title)).all())
        refused = session.scalars(select(InboundEmail).where(InboundEmail.state == "rejected")).one()
        queued_for_it = session.scalars(
            select(Job).where(Job.kind == "process_email", Job.subject_id == refused.id)
        ).all()
    assert titles == ["Login virker ikke", "Rapporten mangler"]
    assert REFUSED.encode() in (refused.raw or b"")
    assert (refused.reason or "").startswith("set aside: the database refused")
    assert queued_for_it == []
    after = value(scrape(client), "bridge_reports_total", channel="email", outcome="set_aside")
    assert after - before == 1
    listed = run_cli(deps, tmp_path, monkeypatch, "emails", "--state", "rejected")
    assert f"#{refused.id} rejected" in listed
    assert "set aside: the database refused" in listed


def test_an_email_whose_ticket_the_database_refuses_does_not_block_the_email_lane(
    dovecot: Dovecot,  # noqa: F811
    user: str,  # noqa: F811
    make_deps: Callable[..., Deps],
) -> None:
    """Email jobs run one at a time in arrival order. One whose ticket can never be stored ends
    ``rejected`` with the reason at once, instead of retrying for days while every later email waits."""
    deps = make_deps(imap=imap_settings(dovecot, user).model_dump())
    assert deps.imap_poller is not None
    refuse_inserts(deps, "tickets", f"NEW.title = '{REFUSED}'")
    deliver(dovecot, user, email_bytes(REFUSED), email_bytes("Login virker ikke"))

    assert deps.imap_poller.poll().moved == 2
    run_email_jobs(deps)

    with deps.store.session() as session:
        rows = session.scalars(select(InboundEmail).order_by(InboundEmail.id)).all()
        titles = session.scalars(select(Ticket.title)).all()
        unfinished = session.scalars(select(Job).where(Job.kind == "process_email", Job.state != "done")).all()
    assert [row.state for row in rows] == ["rejected", "ticket"]
    assert (rows[0].reason or "").startswith("set aside: the database refused")
    assert titles == ["Login virker ikke"]
    assert unfinished == []
