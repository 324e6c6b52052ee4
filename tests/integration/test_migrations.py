"""Alembic migrations on real SQLite and PostgreSQL: they run both ways and match the models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

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
