"""What text the database can hold, and what to say when it refuses a value.

PostgreSQL text columns refuse NUL (U+0000); both PostgreSQL and SQLite refuse text that is not
valid UTF-8, which in Python is a string with an unpaired surrogate (``json.loads`` makes one from
``"\\ud800"``). Such a value fails the insert itself, every time, so it must be refused or set
aside before it reaches a transaction, never retried.
"""

from __future__ import annotations

import re

from sqlalchemy.exc import DataError, DBAPIError

UNSTORABLE_ERRORS: tuple[type[Exception], ...] = (DataError, UnicodeError)
"""What an insert raises for a value the database will never accept (as opposed to an outage)."""

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> bool:
    """True when every database the bridge supports can hold ``text`` in a text column."""
    return _UNSTORABLE.search(text) is None


def unstorable_reason(text: str) -> str | None:
    """Why ``text`` cannot be stored (None when it can): for a 400 that names the field."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "must not contain NUL characters (U+0000)"
    return "must not contain unpaired surrogates (not valid Unicode text)"


def describe_unstorable(exc: BaseException) -> str:
    """The database's complaint without the statement or its parameters (which hold personal data)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        first = str(exc.orig).strip().splitlines()
        return f"{type(exc.orig).__name__}: {first[0] if first else ''}".strip()
    if isinstance(exc, UnicodeError):
        return f"{type(exc).__name__}: the text is not valid Unicode"
    return type(exc).__name__
