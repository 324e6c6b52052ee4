"""Outgoing mail: SMTP in production, the log when no SMTP server is configured."""

from __future__ import annotations

import re
from email.message import EmailMessage
from typing import Protocol


class Mailer(Protocol):
    def send(self, message: EmailMessage) -> None:
        """Hand the message to the mail server; raise RetryableError or PermanentError on failure."""
        ...


_ADDRESS = re.compile(r"([A-Za-z0-9._%+'=-])[A-Za-z0-9._%+'=-]*@([A-Za-z0-9.-]+)")


def mask_address(address: str) -> str:
    """``anna@kunde.dk`` -> ``a***@kunde.dk``: enough to tell messages apart, not to identify anyone."""
    local, at, domain = address.strip().rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


def mask_addresses(text: str) -> str:
    """Every email address in free text (a server's error reply) masked like ``mask_address``."""
    return _ADDRESS.sub(lambda m: f"{m[1]}***@{m[2]}", text)
