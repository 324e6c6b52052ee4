"""The error types every layer shares.

Adapters translate SDK, HTTP and socket failures into ``RetryableError`` or
``PermanentError`` so the worker can decide what to do without knowing which
library raised.
"""

from __future__ import annotations

from dataclasses import dataclass


class BridgeError(Exception):
    """Base of every error the bridge raises on purpose."""


class RetryableError(BridgeError):
    """The call may succeed later (outage, timeout, rate limit, 5xx).

    ``retry_after`` is the delay in seconds the remote side asked for, if any.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OutcomeUnknown(RetryableError):
    """A write was sent, and no answer says whether it took effect (a timeout after sending, a
    500/502/504): look for its result before doing it again."""


class PermanentError(BridgeError):
    """The call will fail the same way every time (400, 403, 404, bad data)."""


class NotFoundError(PermanentError):
    """The tracker says the thing does not exist, or is not visible to the bridge (404)."""


@dataclass(frozen=True, kw_only=True)
class Problem:
    """One thing wrong in a configuration or mapping file."""

    file: str
    key: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(BridgeError):
    """Configuration or mappings are invalid; carries every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid configuration ({len(problems)} problem(s)):\n{lines}")
