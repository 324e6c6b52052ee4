"""The mutation score of each module `make mutation` mutates, from mutmut's results under ``mutants/``.

A mutant counts as caught when a test failed on it (or it ran past mutmut's time limit); one that no
test even runs counts as survived. Exits non-zero when a module scores under ``MUTATION_MIN`` percent
(default 90), so a test change that stops biting shows up.

    python -m tests.mutation_score

Known survivors that cannot change behaviour (equivalent mutants, left unmarked so the line's other
mutants still count):
- classify: ``floor.rank > severity.rank`` as ``>=`` (an equal rank is the same severity).
- status_map.severity_in_tracker: other values, or none, for ``kind=""``/``source=""`` when formatting
  the severity label template (six mutants: a template using them could never match a written label
  anyway), and ``issue.priority or ""`` with another placeholder (no priority is named "").
- tracking: ``rstrip("=")`` as ``rstrip("XX=XX")``, twice (16 bytes in base64 end in A, Q, g or w).
- signatures: ``timestamp = None`` as ``""`` (an empty timestamp is refused as malformed either way).
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

CAUGHT = {"killed", "timeout", "caught by type check"}


def scores(root: Path) -> dict[str, Counter[str]]:
    """Per mutated module: how many mutants ended in each mutmut status."""
    found: dict[str, Counter[str]] = {}
    for meta in sorted(root.rglob("*.py.meta")):
        exit_codes = json.loads(meta.read_text())["exit_code_by_key"]
        module = str(meta.relative_to(root)).removesuffix(".meta")
        found[module] = Counter(status_by_exit_code[code] for code in exit_codes.values())
    return found


def main() -> int:
    minimum = float(os.environ.get("MUTATION_MIN", "90"))
    found = scores(Path("mutants"))
    if not found:
        print("no mutmut results under mutants/: run `make mutation`", file=sys.stderr)
        return 2
    total: Counter[str] = Counter()
    failing = []
    print(f"{'module':44} {'caught':>7} {'total':>6} {'score':>7}")
    for module, statuses in found.items():
        caught, count = sum(statuses[s] for s in CAUGHT), statuses.total()
        total.update(statuses)
        score = 100 * caught / count if count else 100.0
        survivors = {s: n for s, n in statuses.items() if s not in CAUGHT}
        print(f"{module:44} {caught:7} {count:6} {score:6.1f}%  {survivors or ''}")
        if score < minimum:
            failing.append(module)
    caught, count = sum(total[s] for s in CAUGHT), total.total()
    print(f"{'overall':44} {caught:7} {count:6} {100 * caught / count:6.1f}%")
    if failing:
        print(f"under {minimum:g}%: {', '.join(failing)} (`mutmut results`, `mutmut show <name>`)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
