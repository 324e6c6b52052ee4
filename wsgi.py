"""WSGI entry point: ``gunicorn wsgi:app``."""

import sys

from bridge import create_app
from bridge.errors import ConfigError
from bridge.logs import configure_logging

configure_logging()
try:
    app = create_app()
except ConfigError as exc:
    print(exc, file=sys.stderr)
    sys.exit(3)
