"""``python -m soak``: the soak on each backend named in ``SOAK_BACKEND`` (comma-separated), one after
the other; prints a table per run, writes ``soak/results/latest.json``, exits 1 if anything failed.

Environment: ``SOAK_BACKEND`` (``sqlite``; ``make soak`` runs ``sqlite,postgres``), ``SOAK_REPORTS``
(2000), ``SOAK_RATE`` (reports per second, 8), ``SOAK_SEED``, ``SOAK_DATABASE_URL`` (PostgreSQL base URL;
default ``TEST_DATABASE_URL`` or ``postgresql+psycopg://postgres@127.0.0.1:5432/test``; a fresh schema is
created and dropped), ``SOAK_REDIS_URL`` (``redis://127.0.0.1:6379/13``, flushed at start),
``SOAK_NUL_MAILS`` (27), ``SOAK_STORMS`` (8),
``SOAK_WORKERS`` (worker processes; default two on PostgreSQL, one on SQLite).
"""

from __future__ import annotations

import os
import sys

from soak.run import RESULTS, SoakSettings, format_table, run_soak, write_results


def main() -> int:
    backends = [b.strip() for b in os.environ.get("SOAK_BACKEND", "sqlite").split(",") if b.strip()]
    results = []
    for backend in backends:
        result = run_soak(SoakSettings.from_env(backend=backend))
        results.append(result)
        print(format_table(result), flush=True)
        if result["failures"] and result.get("process_logs"):
            print(result["process_logs"])
        path = write_results(results, RESULTS / "latest.json")
        print(f"results: {path}", flush=True)
    if len(results) > 1:
        print("\n".join(format_table(r).splitlines()[-1] + f"  ({r['backend']})" for r in results))
    return 1 if any(r["failures"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
