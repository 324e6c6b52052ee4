"""The bridge's processes on loopback, for the end-to-end tests, the soak and the benchmark.

``harness.stack.Stack`` starts, in a directory of its own, the tracker sandbox
(``python -m sandbox serve``), an SMTP sink (aiosmtpd, in this process), ``python -m bridge migrate``,
the web (gunicorn with ``gunicorn.conf.py``) and the worker(s) (``python -m bridge.worker``), and stops
them all again. Test and development tooling: not part of the ``bridge`` package (it needs aiosmtpd
and requests).

- ``harness.process``: one child process with its logs; polling against a deadline; free ports.
- ``harness.mail``: the SMTP sink, which can go down and come back on its port.
- ``harness.stack``: the environment (CONTRACT section 7 variables only), the config copy, the stack.
- ``harness.issues``: a sandbox issue of either tracker, in the terms the checks need.
- ``harness.databases``: a fresh PostgreSQL schema, a flushed Redis database.
"""
