"""Turn an HTTP status and headers into the bridge's error types.

Shared by both tracker adapters so 401/404/429/5xx mean the same everywhere.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from bridge.errors import BridgeError, NotFoundError, OutcomeUnknown, PermanentError, RetryableError

# Statuses worth retrying: timeouts, conflicts/locks, rate limits and server errors.
RETRYABLE_STATUSES = frozenset({408, 409, 423, 425, 429})

# Answers after which a write may or may not have happened: the server failed while handling it
# (500), or a gateway lost the upstream's answer (502, 504, and the 52x of some CDNs). A 503 means
# the request was turned away; 4xx answers mean it was not done.
UNKNOWN_OUTCOME_STATUSES = frozenset({500, 502, 504, *range(520, 531)})

# A reset value below this is a number of seconds (IETF RateLimit draft), not a Unix time.
_EPOCH_THRESHOLD = 1_000_000_000.0


def _seconds(value: str) -> float | None:
    """A finite, non-negative number, or None (``inf``/``nan`` would stall or confuse a worker)."""
    try:
        number = float(value)
    except ValueError:
        return None
    return max(0.0, number) if math.isfinite(number) else None


def _aware(moment: datetime) -> datetime:
    """Naive timestamps from these headers are UTC, never the local time zone."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def reset_seconds(value: str, now: float) -> float | None:
    """Seconds until a reset given as Unix epoch seconds, or as a delta when small."""
    number = _seconds(value)
    if number is None:
        return None
    return number if number < _EPOCH_THRESHOLD else max(0.0, number - now)


def retry_after_seconds(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait, from ``Retry-After`` (seconds or HTTP date), GitLab's
    ``RateLimit-Reset`` (epoch seconds) or Jira's ``X-RateLimit-Reset`` (ISO 8601)."""
    now = time.time() if now is None else now
    lowered = {k.lower(): v for k, v in headers.items()}
    value = (lowered.get("retry-after") or "").strip()
    if value:
        seconds = _seconds(value)
        if seconds is not None:
            return seconds
        try:
            return max(0.0, _aware(email.utils.parsedate_to_datetime(value)).timestamp() - now)
        except (TypeError, ValueError, IndexError):
            pass
    reset = (lowered.get("ratelimit-reset") or "").strip()
    if reset:
        seconds = reset_seconds(reset, now)
        if seconds is not None:
            return seconds
    iso_reset = (lowered.get("x-ratelimit-reset") or "").strip()
    if iso_reset:
        seconds = reset_seconds(iso_reset, now)
        if seconds is not None:
            return seconds
        try:
            moment = datetime.fromisoformat(iso_reset.replace("Z", "+00:00"))
            return max(0.0, _aware(moment).timestamp() - now)
        except ValueError:
            pass
    return None


def error_for_write(status: int, message: str, headers: Mapping[str, str] | None = None, *, what: str) -> BridgeError:
    """As ``error_for_status``, for a request that is not safe to repeat (creating an issue):
    ``OutcomeUnknown`` when the answer does not say whether it was done."""
    error = error_for_status(status, message, headers, what=what)
    if isinstance(error, RetryableError) and status in UNKNOWN_OUTCOME_STATUSES:
        return OutcomeUnknown(str(error), retry_after=error.retry_after)
    return error


def error_for_status(status: int, message: str, headers: Mapping[str, str] | None = None, *, what: str) -> BridgeError:
    """The error to raise for an HTTP failure of ``what`` (e.g. ``"gitlab create issue"``).

    The rate-limit reset headers (``RateLimit-Reset``, ``X-RateLimit-Reset``) only set the delay
    of a 429: GitLab.com sends them on every response, so on a 5xx they describe a quota that
    was not the problem. ``Retry-After`` is honoured on any retryable status.
    """
    message = message.strip()
    text = f"{what}: HTTP {status}: {message}" if message else f"{what}: HTTP {status}"
    if status in RETRYABLE_STATUSES or status >= 500:
        hints = dict(headers or {})
        if status != 429:
            hints = {k: v for k, v in hints.items() if k.lower() == "retry-after"}
        return RetryableError(text, retry_after=retry_after_seconds(hints))
    if status in (404, 410):
        return NotFoundError(text)
    return PermanentError(text)
