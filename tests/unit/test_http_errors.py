"""Status and header translation shared by the tracker adapters."""

from __future__ import annotations

import pytest

from bridge.adapters.trackers.http_errors import error_for_status, retry_after_seconds
from bridge.errors import PermanentError, RetryableError

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def test_retry_after_seconds_value() -> None:
    """Retry-After in seconds is returned as a float, header name case-insensitive."""
    assert retry_after_seconds({"retry-after": " 30 "}, now=NOW) == 30.0


def test_retry_after_http_date() -> None:
    """Retry-After as an HTTP date is the time left until that date."""
    assert retry_after_seconds({"Retry-After": "Thu, 01 Jan 2026 00:01:30 GMT"}, now=NOW) == 90.0


def test_retry_after_http_date_without_zone_is_utc() -> None:
    """An HTTP date with a '-0000' zone (naive) is read as UTC, not local time."""
    assert retry_after_seconds({"Retry-After": "Thu, 01 Jan 2026 00:01:00 -0000"}, now=NOW) == 60.0


@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_retry_after_non_finite_is_ignored(value: str) -> None:
    """A non-finite Retry-After never reaches the worker; the next header is used instead."""
    headers = {"Retry-After": value, "RateLimit-Reset": str(int(NOW) + 12)}
    assert retry_after_seconds(headers, now=NOW) == 12.0


def test_ratelimit_reset_epoch() -> None:
    """GitLab's RateLimit-Reset (Unix epoch seconds) gives the seconds until the reset."""
    assert retry_after_seconds({"RateLimit-Reset": str(int(NOW) + 45)}, now=NOW) == 45.0


def test_ratelimit_reset_in_the_past_is_zero() -> None:
    """A reset moment already past means no wait, never a negative one."""
    assert retry_after_seconds({"RateLimit-Reset": str(int(NOW) - 5)}, now=NOW) == 0.0


def test_ratelimit_reset_small_value_is_a_delta() -> None:
    """A small RateLimit-Reset (IETF draft: seconds left) is not mistaken for a 1970 timestamp."""
    assert retry_after_seconds({"RateLimit-Reset": "20"}, now=NOW) == 20.0


def test_jira_iso_reset() -> None:
    """Jira's X-RateLimit-Reset ISO 8601 timestamp (with Z or without a zone) is read as UTC."""
    assert retry_after_seconds({"X-RateLimit-Reset": "2026-01-01T00:02:00Z"}, now=NOW) == 120.0
    assert retry_after_seconds({"X-RateLimit-Reset": "2026-01-01T00:02:00"}, now=NOW) == 120.0


def test_retry_after_wins_over_reset() -> None:
    """Retry-After takes precedence over RateLimit-Reset."""
    headers = {"Retry-After": "3", "RateLimit-Reset": str(int(NOW) + 50)}
    assert retry_after_seconds(headers, now=NOW) == 3.0


def test_no_usable_header() -> None:
    """Garbage or missing headers give None."""
    assert retry_after_seconds({"Retry-After": "soon", "RateLimit-Reset": "later"}, now=NOW) is None
    assert retry_after_seconds({}, now=NOW) is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_permanent(status: int) -> None:
    """4xx other than the retryable ones map to PermanentError with status and message."""
    err = error_for_status(status, "nope", {"Retry-After": "5"}, what="gitlab create issue")
    assert isinstance(err, PermanentError)
    assert str(err) == f"gitlab create issue: HTTP {status}: nope"


@pytest.mark.parametrize("status", [408, 409, 423, 425, 429, 500, 502, 503, 504])
def test_retryable_statuses(status: int) -> None:
    """Timeouts, conflicts, locks, rate limits and 5xx map to RetryableError."""
    assert isinstance(error_for_status(status, "x", what="w"), RetryableError)


def test_429_uses_ratelimit_reset() -> None:
    """A 429 without Retry-After waits until RateLimit-Reset."""
    err = error_for_status(429, "Retry later", {"RateLimit-Reset": "30"}, what="w")
    assert isinstance(err, RetryableError)
    assert err.retry_after == 30.0


def test_5xx_ignores_ratelimit_reset_but_honours_retry_after() -> None:
    """On a 5xx, RateLimit-Reset (sent on every GitLab.com response) is not a delay; Retry-After is."""
    plain = error_for_status(502, "Bad gateway", {"RateLimit-Reset": "30", "RateLimit-Remaining": "1999"}, what="w")
    assert isinstance(plain, RetryableError)
    assert plain.retry_after is None
    told = error_for_status(503, "down", {"retry-after": "60", "RateLimit-Reset": "30"}, what="w")
    assert isinstance(told, RetryableError)
    assert told.retry_after == 60.0


def test_empty_message_leaves_no_dangling_colon() -> None:
    """An empty body gives 'what: HTTP 502', not 'what: HTTP 502:'."""
    assert str(error_for_status(502, "  ", what="gitlab list")) == "gitlab list: HTTP 502"
