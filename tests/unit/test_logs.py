"""Logging set-up: LOG_LEVELS quiets single loggers (make run uses it for huey's per-task lines)."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import pytest

from bridge.logs import configure_logging, logger_levels


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    huey = logging.getLogger("huey")
    huey_level = huey.level
    yield
    root.handlers[:], root.level = handlers, level
    huey.setLevel(huey_level)


def test_logger_levels_parse_pairs_and_ignore_blanks() -> None:
    """`huey=WARNING, sqlalchemy.engine=info,` names loggers and levels, in any case."""
    assert logger_levels("huey=WARNING, sqlalchemy.engine=info,") == {
        "huey": logging.WARNING,
        "sqlalchemy.engine": logging.INFO,
    }
    assert logger_levels("") == {}


@pytest.mark.parametrize(
    ("spec", "entry"),
    [("huey", "huey"), ("huey=LOUD", "huey=LOUD"), ("=WARNING", "=WARNING"), ("huey=WARNING,bridge", "bridge")],
)
def test_logger_levels_name_the_entry_they_cannot_read(spec: str, entry: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"LOG_LEVELS: {entry!r} is not logger=LEVEL")):
        logger_levels(spec)


def test_log_levels_quiet_one_library_and_keep_the_bridges_events(
    restored_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With LOG_LEVELS=huey=WARNING, huey.consumer's INFO lines go, its warnings and bridge's INFO stay."""
    monkeypatch.setenv("LOG_LEVELS", "huey=WARNING")
    configure_logging(fmt="console", level="INFO")
    stream = io.StringIO()
    logging.getLogger().handlers[0].setStream(stream)  # type: ignore[attr-defined]

    logging.getLogger("huey.consumer").info("Executing bridge.jobs.bridge.run_job")
    logging.getLogger("huey.consumer").warning("worker died")
    logging.getLogger("bridge.jobs").info("job.done")

    lines = stream.getvalue().splitlines()
    assert [line.split(maxsplit=2)[2] for line in lines] == ["worker died", "job.done"]
