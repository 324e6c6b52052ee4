"""The soak test, small: ~60 reports through the real processes under every fault of ``make soak``,
on SQLite and on PostgreSQL + Redis (two worker processes) side by side.

``soak/run.py`` does the work (``make soak`` runs the full one). Set ``SOAK_BACKEND`` (``sqlite``,
``postgres`` or both, comma-separated: the default) or ``SOAK_REPORTS`` to vary it; the results are
also written to ``soak/results/small-latest.json``.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from soak.run import RESULTS, SoakSettings, format_table, run_soak, write_results

pytestmark = pytest.mark.e2e


def test_small_soak_loses_duplicates_and_strands_nothing(tmp_path: Path) -> None:
    """Under kills, SMTP and tracker faults, NUL mails, a Jira sprint closing mid-outage and webhook
    storms: every report gets one issue, one email per transition, no stray job, lanes in order."""
    backends = [b.strip() for b in os.environ.get("SOAK_BACKEND", "sqlite,postgres").split(",") if b.strip()]

    def run(backend: str) -> dict[str, Any]:
        return run_soak(SoakSettings.from_env(small=True, backend=backend, root=tmp_path / f"soak-{backend}"))

    # Side by side: each run mostly waits (on Retry-After, leases, the sweep), so the two take about
    # as long as one.
    with ThreadPoolExecutor(max_workers=len(backends)) as pool:
        results = list(pool.map(run, backends))
    tables = "\n\n".join(format_table(result) for result in results)
    print(tables)
    print(f"results: {write_results(results, RESULTS / 'small-latest.json')}")
    for result in results:
        if result["failures"] and result.get("process_logs"):
            print(result["process_logs"])
    assert not [r for r in results if r["failures"]], tables
