"""How many rows each table holds: a read-only command is shown to write nothing by comparing these."""

from __future__ import annotations

from sqlalchemy import Engine, func, select

from bridge.adapters.store.models import Base


def row_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            table.name: int(connection.scalar(select(func.count()).select_from(table)) or 0)
            for table in Base.metadata.sorted_tables
        }
