"""The soak test: thousands of reports and tracker changes while processes die and the tracker misbehaves.

``python -m soak`` (``make soak``) runs it on SQLite and/or PostgreSQL + Redis (``SOAK_BACKEND``);
``tests/soak/test_soak_small.py`` runs a small variant inside ``make test``. See ``soak/run.py``.
"""
