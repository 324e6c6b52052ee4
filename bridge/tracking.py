"""Tracking IDs and the signed links reporters use to see their ticket."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

# Crockford's base32: no I, L, O or U, so an ID read aloud or retyped stays unambiguous.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
TRACKING_ID = re.compile(r"ST-[0-9A-HJKMNP-TV-Z]{8}")


def new_tracking_id() -> str:
    return "ST-" + "".join(secrets.choice(ALPHABET) for _ in range(8))


def is_tracking_id(value: str) -> bool:
    return TRACKING_ID.fullmatch(value) is not None


def status_signature(secret_key: str, tracking_id: str) -> str:
    digest = hmac.new(secret_key.encode(), f"status:{tracking_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


def status_url(public_url: str, secret_key: str, tracking_id: str) -> str:
    return f"{public_url}/t/{tracking_id}?s={status_signature(secret_key, tracking_id)}"


def valid_status_signature(secret_key: str, tracking_id: str, signature: str) -> bool:
    # As bytes: a str argument with non-ASCII characters would raise instead of comparing unequal.
    return hmac.compare_digest(status_signature(secret_key, tracking_id).encode(), signature.encode())


# Unsubscribe links are signed for a different purpose than status links, so one can never be
# turned into the other: a forwarded status link does not let its reader mute the reporter's mail.


def unsubscribe_signature(secret_key: str, tracking_id: str) -> str:
    digest = hmac.new(secret_key.encode(), f"unsubscribe:{tracking_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


def unsubscribe_url(public_url: str, secret_key: str, tracking_id: str) -> str:
    return f"{public_url}/u/{tracking_id}?s={unsubscribe_signature(secret_key, tracking_id)}"


def valid_unsubscribe_signature(secret_key: str, tracking_id: str, signature: str) -> bool:
    # As bytes: a str argument with non-ASCII characters would raise instead of comparing unequal.
    return hmac.compare_digest(unsubscribe_signature(secret_key, tracking_id).encode(), signature.encode())
