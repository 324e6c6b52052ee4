"""Operator actions shared by the CLI and the admin API."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bridge.bootstrap import Deps


def replay_dead_letters(deps: Deps, job_ids: Iterable[int] | None) -> list[int]:
    """Give the named dead jobs (None: every dead job) a fresh retry horizon and queue them again,
    in one transaction, oldest first (``Store.replay_dead``).

    Returns the ids that were replayed; jobs that are not dead are left alone.
    """
    return deps.store.replay_dead(job_ids)
