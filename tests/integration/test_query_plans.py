"""The per-reporter queries on every report and status question read an index, not the hour's
tickets: the plan each database makes for them names ``ix_tickets_reporter_lower_created``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.sql import Select

from bridge.adapters.store.db import make_engine, upgrade
from bridge.adapters.store.models import Ticket
from bridge.domain import Channel

INDEX = "ix_tickets_reporter_lower_created"
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = (
        f"sqlite:///{tmp_path / 'bridge.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    )
    upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def limit_query() -> Select[tuple[datetime]]:
    """The shape ``bridge.limits.ReporterLimits.check_reports`` counts."""
    return select(Ticket.created_at).where(
        Ticket.created_at > NOW - timedelta(hours=1),
        Ticket.channel == Channel.CHATBOT.value,
        func.lower(Ticket.reporter_email) == "anna@kunde.dk",
    )


def status_query() -> Select[tuple[Ticket]]:
    """The shape ``Store.tickets_by_email`` reads for ``GET /api/v1/tickets?email=``."""
    return (
        select(Ticket)
        .where(func.lower(Ticket.reporter_email) == "anna@kunde.dk")
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .limit(100)
    )


def plan(engine: Engine, query: Select[tuple[object]]) -> str:
    compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}")).all()
            return "\n".join(str(row[-1]) for row in rows)
        # A nearly empty table is cheapest to scan: forbid the scan to see whether the index serves.
        conn.execute(text("SET enable_seqscan = off"))
        return "\n".join(str(row[0]) for row in conn.execute(text(f"EXPLAIN {compiled}")).all())


@pytest.mark.parametrize("query", [limit_query, status_query], ids=["reporter-limit", "tickets-by-email"])
def test_per_reporter_queries_use_the_address_index(engine: Engine, query: object) -> None:
    shown = plan(engine, query())  # type: ignore[operator]
    assert INDEX in shown, shown
