"""Verification of the chatbot's ``X-Smarttalk-Signature`` header (CONTRACT section 2)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence


class SignatureError(Exception):
    """Why a signature was refused; the text is safe to show the caller."""


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The hex HMAC-SHA256 over ``"<t>." + body`` (also used by tests and the README's curl)."""
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def verify_chatbot_signature(
    header: str | None, body: bytes, *, secrets: Sequence[str], now: float, tolerance: int
) -> None:
    """Raise ``SignatureError`` unless one ``v1`` matches one secret within the replay window."""
    if not header:
        raise SignatureError("missing X-Smarttalk-Signature header")
    timestamp: str | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            timestamp = value.strip()
        elif key == "v1":
            candidates.append(value.strip().lower())
    if timestamp is None or not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 20 or not candidates:
        raise SignatureError("malformed X-Smarttalk-Signature header: expected t=<unix seconds>,v1=<hex>")
    if abs(now - int(timestamp)) > tolerance:
        raise SignatureError(f"signature timestamp is more than {tolerance} s from the server clock")
    # Compare against every secret and candidate without stopping early, in constant time each.
    matched = False
    for secret in secrets:
        expected = sign(secret, timestamp, body)
        for candidate in candidates:
            matched |= hmac.compare_digest(expected.encode(), candidate.encode())  # bytes: non-ASCII compares unequal
    if not matched:
        raise SignatureError("signature does not match")
