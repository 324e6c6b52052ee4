"""Database bytes per ticket after N tickets (SQLite file size, or PostgreSQL relation sizes).

The first ``seed`` tickets go through the real intake code path in this process
(``accept_report`` -> ``Store.accept``: ticket, delivery, status event, acknowledgement
notification and the two jobs, in one transaction each). The rest are copies of those rows made in
bulk with ``INSERT ... SELECT`` (every id and foreign key shifted, unique keys rewritten), doubling
until N: the same rows, columns and indexes as N real intakes, in seconds instead of minutes.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Integer, text

from bench.load import report_event

# Integer columns that point at another row without a declared foreign key.
_ID_LIKE = {"subject_id"}


def _hex(dialect: str, expr: str, width: int) -> str:
    if dialect == "sqlite":
        return f"printf('%0{width}X', {expr})"
    return f"lpad(upper(to_hex({expr})), {width}, '0')"


def _column_expr(dialect: str, table: str, column: Any, shift: int) -> str:
    name = column.name
    quoted = f'"{name}"'
    if isinstance(column.type, Integer) and (column.primary_key or column.foreign_keys or name in _ID_LIKE):
        return f"{quoted} + {shift}"
    if table == "tickets" and name == "tracking_id":
        return "'ST-' || " + _hex(dialect, f"id + {shift}", 8)
    if table == "tickets" and name == "reply_token":
        return _hex(dialect, f"id + {shift}", 32)
    if column.unique or (table == "deliveries" and name == "delivery_key"):
        return f"{quoted} || ':' || CAST(id + {shift} AS TEXT)"
    return quoted


def seed_tickets(database_url: str, count: int) -> float:
    """``count`` reports through ``accept_report``; returns seconds per report."""
    from bridge.adapters.store.db import make_engine
    from bridge.adapters.store.repository import Store
    from bridge.bootstrap import utc_now
    from bridge.pipeline.intake.chatbot import ReportCreated, accept_report, chatbot_event
    from bridge.pipeline.notifying.notices import NoticeScheduler

    store = Store(make_engine(database_url), clock=utc_now)
    store.on_status = NoticeScheduler(debounce_seconds=0, callback_enabled=False).on_status
    started = time.perf_counter()
    for n in range(count):
        event = chatbot_event.validate_python(report_event(n, run="size"))
        if not isinstance(event, ReportCreated):  # report_event makes report.created events only
            raise TypeError(f"not a report.created event: {event.type}")
        accept_report(
            store,
            event,
            delivery_key=event.event_id,
            response_for=lambda tid, status: {"tracking_id": tid, "status": status},
        )
    elapsed = time.perf_counter() - started
    store.engine.dispose()
    return elapsed / max(1, count)


def multiply(engine: Engine, target: int) -> int:
    """Copy ticket rows (and every row that belongs to them) until there are ``target`` tickets."""
    from bridge.adapters.store.models import Base

    dialect = engine.dialect.name
    tables = [t for t in Base.metadata.sorted_tables if "id" in t.c and t.name != "alembic_version"]
    with engine.begin() as conn:
        count = int(conn.execute(text("SELECT count(*) FROM tickets")).scalar_one())
    while count < target:
        with engine.begin() as conn:
            highest = [f"SELECT coalesce(max(id), 0) FROM {t.name}" for t in tables]  # noqa: S608 - our tables
            shift = 1 + max(int(conn.execute(text(sql)).scalar_one()) for sql in highest)
            take = min(count, target - count)
            low = int(conn.execute(text("SELECT min(id) FROM tickets")).scalar_one())
            nth = f"SELECT id FROM tickets ORDER BY id LIMIT 1 OFFSET {take - 1}"  # noqa: S608 - an int
            limit = int(conn.execute(text(nth)).scalar_one())
            for table in tables:
                if table.name == "tickets":
                    where = f"id BETWEEN {low} AND {limit}"
                elif "ticket_id" in table.c:
                    where = f"ticket_id BETWEEN {low} AND {limit}"
                else:
                    continue
                cols = ", ".join(f'"{c.name}"' for c in table.columns)
                exprs = ", ".join(_column_expr(dialect, table.name, c, shift) for c in table.columns)
                copy = f"INSERT INTO {table.name} ({cols}) SELECT {exprs} FROM {table.name} WHERE {where}"  # noqa: S608
                conn.execute(text(copy))
            count += take
    return count


def sqlite_bytes(path: Path) -> int:
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    total = 0
    for suffix in ("", "-wal", "-shm"):
        candidate = Path(str(path) + suffix)
        if candidate.exists():
            total += os.path.getsize(candidate)
    return total


def postgres_bytes(engine: Engine) -> int:
    with engine.begin() as conn:
        value = conn.execute(
            text(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'm')"
            )
        ).scalar_one()
    return int(value)


def measure(database_url: str, *, tickets: int, seed: int, sqlite_path: Path | None) -> dict[str, Any]:
    """Bytes per ticket after ``tickets`` tickets in a fresh, migrated database at ``database_url``."""
    from bridge.adapters.store.db import make_engine, upgrade

    upgrade(database_url)
    engine = make_engine(database_url)

    def size() -> int:
        if sqlite_path is not None:
            engine.dispose()  # no open transaction may hold the WAL
            return sqlite_bytes(sqlite_path)
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
        return postgres_bytes(engine)

    empty = size()
    per_report = seed_tickets(database_url, seed)
    at_seed = size()
    started = time.perf_counter()
    count = multiply(engine, tickets)
    copy_seconds = time.perf_counter() - started
    total = size()
    engine.dispose()
    return {
        "tickets": count,
        "seed_through_accept_report": seed,
        "accept_report_ms": round(per_report * 1000, 2),
        "bulk_copy_s": round(copy_seconds, 1),
        "bytes_empty": empty,
        "bytes_total": total,
        "bytes_per_ticket": round(total / count),
        "bytes_per_ticket_marginal": round((total - at_seed) / max(1, count - seed)),
    }
