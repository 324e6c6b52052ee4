"""Logging: one line per event, JSON for machines or ``key=value`` for a terminal.

Event names are stable (``ticket.filed``, ``job.retry``...); details travel in ``extra``.
Reporter emails and secrets are never passed to a logger.

A **request id** follows one unit of work from the web request into the jobs it creates:
``request_id`` (a ``ContextVar``) is set by the web layer for each request and by the job runner
for each job run, and ``RequestIdFilter`` adds it to every record the handler writes.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
"""The id of the request (or job run) being handled in this thread or task, if any."""

REQUEST_ID_MAX = 64
_REQUEST_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._:-]")


def clean_request_id(value: str | None) -> str | None:
    """A caller's ``X-Request-ID`` reduced to ``[A-Za-z0-9._:-]``, at most 64 characters; None if nothing is left."""
    if not value:
        return None
    cleaned = _REQUEST_ID_UNSAFE.sub("", value)[:REQUEST_ID_MAX]
    return cleaned or None


def new_request_id() -> str:
    return secrets.token_hex(16)


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record passing the handler, when one is set."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = request_id.get()
        if current is not None and not hasattr(record, "request_id"):
            record.request_id = current
        return True


_RESERVED = ("ts", "level", "logger", "event")


def _extras(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = _extras(record)
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            # An extra named like a standard field must not replace the event name.
            **{(f"extra_{k}" if k in _RESERVED else k): v for k, v in extras.items()},
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        pairs = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        line = f"{ts} {record.levelname:<7} {record.getMessage()} {pairs}".rstrip()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def logger_levels(spec: str) -> dict[str, int]:
    """``LOG_LEVELS``: comma-separated ``logger=LEVEL`` pairs, e.g. ``huey=WARNING`` (a logger's
    level also applies to the loggers below it: ``huey`` covers ``huey.consumer``)."""
    known = logging.getLevelNamesMapping()
    levels: dict[str, int] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        name, _, level = (text.strip() for text in item.partition("="))
        if not name or level.upper() not in known:
            raise ValueError(f"LOG_LEVELS: {item!r} is not logger=LEVEL (DEBUG, INFO, WARNING, ERROR or CRITICAL)")
        levels[name] = known[level.upper()]
    return levels


def configure_logging(fmt: str | None = None, level: str | None = None, levels: str | None = None) -> None:
    """``LOG_FORMAT=json|console`` (default: console on a terminal, else JSON), ``LOG_LEVEL``, and
    ``LOG_LEVELS`` for single loggers (``make run`` quiets huey's per-task lines with it)."""
    overrides = logger_levels(levels if levels is not None else os.environ.get("LOG_LEVELS", ""))
    fmt = fmt or os.environ.get("LOG_FORMAT") or ("console" if sys.stderr.isatty() else "json")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or os.environ.get("LOG_LEVEL", "INFO"))
    for name, number in overrides.items():
        logging.getLogger(name).setLevel(number)
