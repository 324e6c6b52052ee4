"""The one rule for every value that comes in from outside, on every endpoint.

A value the database can never hold fails its insert every time: a text with NUL (PostgreSQL
refuses it) or an unpaired surrogate (not Unicode), or a number JSON cannot carry (``NaN``,
``Infinity``, or ``1e400``, which Python reads as infinity; a JSON column refuses them). The
sender would get a 503 and retry for ever, or a 500. Such a value is refused up front with a 400
that names the field. (Inbound email is stored as delivered instead and cleaned when read.)

Models of external input inherit ``CheckedInput``: its validator runs on every field, and walks
into lists and objects, so a field added later is covered without anyone remembering to.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, field_validator

from bridge.adapters.store.text import unstorable_reason

_MAX_DEPTH = 32


def value_problem(value: object, *, _depth: int = 0) -> str | None:
    """Why ``value`` (a text, a number, or a list or object of them) cannot be taken; None if it can."""
    if isinstance(value, str):
        return unstorable_reason(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number (not NaN or Infinity)"
    if _depth >= _MAX_DEPTH:
        return None  # pydantic's own limits refuse absurd nesting; nothing here goes that deep
    if isinstance(value, dict):
        for key, item in value.items():
            problem = value_problem(key, _depth=_depth + 1)
            if problem is not None:
                return f"keys {problem}"
            problem = value_problem(item, _depth=_depth + 1)
            if problem is not None:
                return f"{key!s:.40}: {problem}"
    if isinstance(value, list | tuple):
        for item in value:
            problem = value_problem(item, _depth=_depth + 1)
            if problem is not None:
                return problem
    return None  # numbers, booleans, None; a nested model checked its own fields


def checked(value: Any) -> Any:
    """Pass ``value`` through, or raise ``ValueError`` saying why it cannot be taken (pydantic names the field)."""
    problem = value_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def address_problem(address: str) -> str | None:
    """Why ``address`` is not an email address we can write to (None if it is): RFC 5321/5322 syntax
    as email-validator reads it, without any DNS lookup. The reason names no address."""
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        return str(exc)
    return None


def normalised_address(address: str) -> str:
    """``address`` as email-validator normalises it (domain in lower case, Unicode in NFC); raises
    ``ValueError`` (with the reason) for one that is not an address, e.g. ``x@kunde.dk.``."""
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from None


EmailAddress = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=320), AfterValidator(normalised_address)
]
"""A reporter's address in external input: refused (400 naming the field) unless mail can be
addressed to it, so no email to it fails later and retries for days."""


class CheckedInput(BaseModel):
    """Base of every model of external input: each field meets ``value_problem``'s rule."""

    # Unknown fields are ignored so senders can add to their payloads without breaking us.
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        return checked(value)
