"""The soak test, small: ~60 reports through the real processes under every fault of ``make soak``.

``soak/run.py`` does the work (``make soak`` runs the full one). Set ``SOAK_REPORTS`` or
``SOAK_BACKEND=postgres`` to vary it; the result is also written to ``soak/results/small-latest.json``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from soak.run import RESULTS, SoakSettings, format_table, run_soak, write_results

pytestmark = pytest.mark.e2e


def test_small_soak_loses_duplicates_and_strands_nothing(tmp_path: Path) -> None:
    """Under kills, SMTP and tracker faults every report gets one issue, one email per transition, no stray job."""
    result = run_soak(SoakSettings.from_env(small=True, root=tmp_path / "soak"))
    table = format_table(result)
    print(table)
    print(f"results: {write_results([result], RESULTS / 'small-latest.json')}")
    if result["failures"] and result.get("process_logs"):
        print(result["process_logs"])
    assert not result["failures"], table
