"""Fresh backends for a stack: a PostgreSQL schema of its own, an emptied Redis database."""

from __future__ import annotations

import uuid

import redis
from sqlalchemy import create_engine, text


def _execute(base_url: str, statement: str) -> None:
    """One statement, committed at once, on a connection of its own."""
    engine = create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


def new_pg_schema(base_url: str, *, prefix: str) -> tuple[str, str]:
    """A fresh schema in the PostgreSQL at ``base_url``; returns (DATABASE_URL with search_path, schema)."""
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    _execute(base_url, f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in base_url else "?"
    return f"{base_url}{separator}options=-csearch_path%3D{schema}", schema


def drop_pg_schema(base_url: str, schema: str) -> None:
    _execute(base_url, f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def flush_redis(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()
