"""JSON as RFC 8259 defines it, and as both databases can store it.

Python's ``json`` accepts ``NaN`` and ``Infinity`` and reads ``1e400`` as infinity; PostgreSQL's
JSON columns refuse all three, and its text columns refuse the NUL character. A sender that
retries (GitLab and Jira do, and GitLab disables a hook that keeps failing) must get a 400 for a
body that can never be stored, not a 503 for ever; NUL inside a string is removed instead, as the
email intake does, since a comment with a stray NUL is still a comment.
"""

from __future__ import annotations

import json
import math
from typing import Any


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is out of range")
    return value


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    return value


def loads_strict(body: bytes | str) -> Any:
    """The decoded document; ``ValueError`` for what is not storable JSON (``RecursionError`` for
    absurd nesting, as ``json.loads``)."""
    value = json.loads(body, parse_constant=_no_constant, parse_float=_finite)
    if isinstance(body, bytes) and b"\\u0000" not in body.lower():
        return value  # no NUL escaped in it: nothing to clean (the common case, no walk)
    return _without_nul(value)
