"""``python -m bridge <command>``: the operator CLI (see ``bridge.cli``)."""

from bridge.cli import cli
from bridge.logs import configure_logging

configure_logging()
cli()
