"""Alembic migrations on real SQLite and PostgreSQL: they run both ways and match the models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from bridge.adapters.store.db import alembic_config, make_engine
from bridge.adapters.store.models import Base


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bridge.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    """Every migration applies, reverts and applies again."""
    cfg = alembic_config(database_url)
    command.upgrade(cfg, "head")
    command.downgrade(cfg, "base")
    command.upgrade(cfg, "head")


def test_models_match_the_migrated_schema(database_url: str) -> None:
    """No model change is missing a migration."""
    command.upgrade(alembic_config(database_url), "head")
    engine = make_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_tickets_filed_before_categories_keep_no_category(database_url: str) -> None:
    """0011 adds the category columns and leaves existing tickets without one (NULL, not the default
    category): their issues carry no category label, so claiming one would be wrong."""
    cfg = alembic_config(database_url)
    command.upgrade(cfg, "0010")
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tickets (tracking_id, status, channel, locale, reporter_email, title, description,"
                " environment, attachments, planned, notifications_muted, attachments_fetched, severity,"
                " issue_key, created_at, updated_at) VALUES ('ST-7K3Q9X2M', 'triaged', 'chatbot', 'da',"
                " 'anna@kunde.dk', 'Chat-widget', 'spinner', '{}', '[]', :no, :no, 0, 'critical', '12',"
                " '2026-11-25 10:15:00', '2026-11-25 10:15:02')"
            ),
            {"no": False},
        )
    command.upgrade(cfg, "head")
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT category, category_rule, category_source, recipient, severity FROM tickets")
        ).one()
    engine.dispose()
    assert tuple(row) == (None, None, None, None, "critical")
