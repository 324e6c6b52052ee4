"""Operator actions shared by the CLI and the admin API."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bridge.bootstrap import Deps


def replay_dead_letters(deps: Deps, job_ids: Iterable[int] | None) -> list[int]:
    """Give the named dead jobs (None: every dead job) a fresh retry horizon and queue them again.

    Returns the ids that were replayed; jobs that are not dead are left alone.
    """
    dead = job_ids is None
    ids = [job.id for job in deps.store.jobs(state="dead", limit=100_000)] if dead else list(job_ids or ())
    replayed = []
    for job_id in ids:
        if deps.store.replay(job_id):
            deps.queue.enqueue(job_id)
            replayed.append(job_id)
    return replayed
