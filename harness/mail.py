"""The SMTP sink: aiosmtpd in this process, keeping every message the bridge sends.

It can go down and come back on the same port (``stop()``, ``start()``), as a real mail server does
during an outage; ``downtimes`` records when. A message is kept as received (raw bytes, envelope,
arrival time) and parsed only when something asks for its headers or body, so a sink under a
benchmark's load costs this process little.
"""

from __future__ import annotations

import email
import email.policy
import logging
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from functools import cached_property
from typing import Any

from aiosmtpd.controller import Controller

from harness.process import free_port


@dataclass(frozen=True)
class Mail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes = field(repr=False)
    at: float
    """When the SMTP server had the message (epoch seconds)."""

    @cached_property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        if not isinstance(parsed, EmailMessage):  # what policy.default always gives
            raise TypeError(f"unexpected message class {type(parsed).__name__}")
        return parsed

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    @property
    def message_id(self) -> str:
        return str(self.message.get("Message-ID", "")).strip()

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        return str(part.get_content()) if isinstance(part, EmailMessage) else ""

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        return str(part.get_content()) if isinstance(part, EmailMessage) else ""

    def is_to(self, address: str) -> bool:
        """``address`` is an envelope recipient or (a part of) the To: header."""
        wanted = address.lower()
        if any(wanted in recipient.lower() for recipient in self.rcpt_tos):
            return True
        return wanted in str(self.message.get("To", "")).lower()

    def __repr__(self) -> str:
        return f"Mail(to={self.rcpt_tos}, subject={self.subject!r})"


class _DroppedSessions(logging.Filter):
    """Stopping the SMTP server cancels the sessions in flight (the point of an outage); asyncio then
    logs each cancelled session task as "destroyed but pending" when it is collected. Not news."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Task was destroyed but it is pending")


logging.getLogger("asyncio").addFilter(_DroppedSessions())


class MailSink:
    """An SMTP server on 127.0.0.1 that keeps every message (aiosmtpd calls ``handle_DATA``)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._lock = threading.Lock()
        self._messages: list[Mail] = []
        self._controller: Controller | None = None
        self.downtimes: list[tuple[float, float]] = []
        """(went down, came back) of every stop that was followed by a start."""
        self._down_since: float | None = None

    @property
    def up(self) -> bool:
        return self._controller is not None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd's hook name
        arrived = time.time()
        raw: bytes = envelope.original_content or envelope.content or b""
        self.received(Mail(str(envelope.mail_from), tuple(envelope.rcpt_tos), raw, arrived))
        return "250 Message accepted for delivery"

    def received(self, mail: Mail) -> None:
        """Keep ``mail`` (on aiosmtpd's thread). A subclass may index it too."""
        with self._lock:
            self._messages.append(mail)

    def start(self) -> None:
        """Listen on ``port`` (again: a stopped aiosmtpd controller has closed its event loop, so a new one)."""
        if self._controller is not None:
            return
        controller = Controller(self, hostname="127.0.0.1", port=self.port, enable_SMTPUTF8=True)
        try:
            controller.start()
        except BaseException:
            controller.loop.close()
            raise
        self._controller = controller
        if self._down_since is not None:
            self.downtimes.append((self._down_since, time.time()))
            self._down_since = None

    def stop(self) -> None:
        """Stop listening: the bridge's connections are refused until ``start()``."""
        if self._controller is None:
            return
        controller, self._controller = self._controller, None
        controller.stop()
        self._down_since = time.time()

    def messages(self) -> list[Mail]:
        with self._lock:
            return list(self._messages)

    def count(self) -> int:
        with self._lock:
            return len(self._messages)

    def to(self, address: str, *, containing: str | None = None) -> list[Mail]:
        """Messages to ``address``, optionally with ``containing`` in the subject or a body."""
        found = []
        for mail in self.messages():
            if not mail.is_to(address):
                continue
            if containing is not None and not any(containing in s for s in (mail.subject, mail.text, mail.html)):
                continue
            found.append(mail)
        return found
