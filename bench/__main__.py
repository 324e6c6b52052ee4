"""``python -m bench`` (what ``make bench`` runs): see ``bench/run.py`` and ``bench/README.md``."""

import sys

from bench.run import main

sys.exit(main())
