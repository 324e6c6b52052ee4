"""The chatbot's ``X-Smarttalk-Signature`` (CONTRACT section 2), checked against signatures computed outside
the bridge.

Every expected hex value below was computed once with OpenSSL, not with ``sign``, e.g.::

    printf '1795601700.{"event_id":"evt_01JD8X2Q5M","type":"report.created"}' \\
      | openssl dgst -sha256 -hmac 'whsec-contract-example'

so a change to the algorithm, the key, the separator or the encoding fails here even though the
bridge would still agree with itself.
"""

from __future__ import annotations

import pytest

from bridge.web.signatures import SignatureError, sign, verify_chatbot_signature

SECRET = "whsec-contract-example"
ROTATED = "whsec-rotated"
T = 1795601700  # 2026-11-25T10:15:00Z, the CONTRACT example's occurred_at
BODY = b'{"event_id":"evt_01JD8X2Q5M","type":"report.created"}'

# HMAC-SHA256 over b"1795601700." + BODY.
BY_SECRET = "83c046a2e26c0e2be538f2454c8d8430b2989c53611c5e97e9bf5662b95a8f1c"
BY_ROTATED = "eb491f31630e521d7df901477ad755c5de3682b5f453a3eefecbda2faed09a69"
# HMAC-SHA256 over b"1795601700." alone (an empty body).
EMPTY_BODY = "f9e6a4ee342e23eb0690c4c01dbd4dd0773030a18d58ea028816d0aea12b8357"
# What a sender who got the contract wrong would send: no "." between t and body; SHA-1 instead of SHA-256.
NO_SEPARATOR = "8c40f3837c62e36b910d2113cd0d222bee36fed67b8cb0f097f40552e3f00469"
SHA1 = "83708e2f0f30d1a6dad42662adcbc7995dcb2ed6"

MALFORMED = "malformed X-Smarttalk-Signature header: expected t=<unix seconds>,v1=<hex>"
MISMATCH = "signature does not match"


def verify(header: str | None, *, body: bytes = BODY, secrets: tuple[str, ...] = (SECRET,), now: float = T) -> None:
    verify_chatbot_signature(header, body, secrets=secrets, now=now, tolerance=300)


def reason(header: str | None, *, body: bytes = BODY, secrets: tuple[str, ...] = (SECRET,), now: float = T) -> str:
    """Why ``header`` is refused (it must be)."""
    with pytest.raises(SignatureError) as refused:
        verify(header, body=body, secrets=secrets, now=now)
    return str(refused.value)


@pytest.mark.parametrize(
    ("secret", "timestamp", "body", "expected"),
    [
        (SECRET, T, BODY, BY_SECRET),
        (SECRET, str(T), BODY, BY_SECRET),
        (ROTATED, T, BODY, BY_ROTATED),
        (SECRET, T, b"", EMPTY_BODY),
    ],
)
def test_sign_is_hex_hmac_sha256_over_t_dot_body(secret: str, timestamp: int | str, body: bytes, expected: str) -> None:
    """``sign`` gives exactly the OpenSSL answer: hex HMAC-SHA256 with the secret over ``"<t>." + body``."""
    assert sign(secret, timestamp, body) == expected


def test_the_contract_header_verifies() -> None:
    """A header written as the CONTRACT describes it, with a signature made elsewhere, is accepted."""
    verify(f"t={T},v1={BY_SECRET}")


@pytest.mark.parametrize(
    "header",
    [
        f"t={T}, v1={BY_SECRET}",  # a space after the comma
        f" t={T} , v1= {BY_SECRET} ",  # spaces around parts and values
        f"v1={BY_SECRET},t={T}",  # any order
        f"t={T},v1={BY_SECRET.upper()}",  # hex is case-insensitive
        f"t={T},v0=deadbeef,v1={BY_SECRET},scheme=x",  # unknown parts are ignored
        f"t={T},,v1={BY_SECRET}",  # so are empty ones
        f"junk,t={T},v1={BY_SECRET}",  # and parts without "="
        f"t={T},v1={BY_ROTATED},v1={BY_SECRET}",  # secret rotation: one valid v1 of several is enough
        f"t={T},v1={BY_SECRET},v1={BY_ROTATED}",
    ],
)
def test_header_forms_that_verify(header: str) -> None:
    """The header is parsed as comma-separated ``key=value`` parts; one matching ``v1`` suffices."""
    verify(header)


def test_any_configured_secret_may_have_signed() -> None:
    """During rotation the bridge holds the old and the new secret; either one's signature is accepted."""
    verify(f"t={T},v1={BY_ROTATED}", secrets=(SECRET, ROTATED))
    verify(f"t={T},v1={BY_SECRET}", secrets=(ROTATED, SECRET))
    assert reason(f"t={T},v1={BY_ROTATED}", secrets=(SECRET,)) == MISMATCH


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "missing X-Smarttalk-Signature header"),
        ("", "missing X-Smarttalk-Signature header"),
        (f"v1={BY_SECRET}", MALFORMED),  # no t
        (f"t={T}", MALFORMED),  # no v1
        (f"t=,v1={BY_SECRET}", MALFORMED),
        (f"t=abc,v1={BY_SECRET}", MALFORMED),
        (f"t=-{T},v1={BY_SECRET}", MALFORMED),
        (f"t={T}.5,v1={BY_SECRET}", MALFORMED),
        (f"t=\u00b2,v1={BY_SECRET}", MALFORMED),  # a superscript two is a digit to str.isdigit, not a number
        (f"t={'1' * 21},v1={BY_SECRET}", MALFORMED),  # longer than any 64-bit time: not even parsed
        (f"t {T},v1={BY_SECRET}", MALFORMED),
        (f"t={T},v1=00", MISMATCH),
        (f"t={T},v1=", MISMATCH),
        (f"t={T},v1={BY_SECRET}=", MISMATCH),  # a v1 whose value has an "=" in it is a wrong signature
        (f"t={T},v1={NO_SEPARATOR}", MISMATCH),
        (f"t={T},v1={SHA1}", MISMATCH),
        (f"t={T},v1={BY_SECRET[:-1]}", MISMATCH),
        (f"t={T + 1},v1={BY_SECRET}", MISMATCH),  # the timestamp is signed too
        (f"t={T},v1=\u00e9", MISMATCH),  # non-ASCII compares unequal instead of raising
    ],
)
def test_refusals_say_why(header: str | None, expected: str) -> None:
    """Each refusal gives the caller (in the 401's detail) the reason that applies."""
    assert reason(header) == expected


def test_a_different_body_does_not_match() -> None:
    """The signature covers the body."""
    assert reason(f"t={T},v1={BY_SECRET}", body=BODY + b" ") == MISMATCH
    assert reason(f"t={T},v1={EMPTY_BODY}") == MISMATCH
    verify(f"t={T},v1={EMPTY_BODY}", body=b"")


def test_no_secret_configured_matches_nothing() -> None:
    """Without a signing secret nothing verifies."""
    assert reason(f"t={T},v1={BY_SECRET}", secrets=()) == MISMATCH


@pytest.mark.parametrize("skew", [-300, -299.5, 0, 0.5, 299, 300])
def test_a_timestamp_up_to_300_s_away_is_accepted(skew: float) -> None:
    """The replay window is 300 s either way of the server clock, both ends included."""
    verify(f"t={T},v1={BY_SECRET}", now=T + skew)


@pytest.mark.parametrize("skew", [-301, -300.5, 300.5, 301, 86_400])
def test_a_timestamp_more_than_300_s_away_is_refused(skew: float) -> None:
    """A correct signature outside the replay window is refused, saying so."""
    assert (
        reason(f"t={T},v1={BY_SECRET}", now=T + skew) == "signature timestamp is more than 300 s from the server clock"
    )


def test_a_zero_padded_timestamp_of_twenty_digits_is_read() -> None:
    """Up to 20 digits (every 64-bit time) are read as a number, leading zeros and all; the signature
    covers the digits as sent."""
    padded = f"{T:020d}"
    # openssl: printf '00000000001795601700.{body}' | openssl dgst -sha256 -hmac 'whsec-contract-example'
    assert sign(SECRET, padded, BODY) == "4b359c992d1d3fb9a8b7678521a8e02dfe48196f25a381729c52892fef4c825d"
    verify(f"t={padded},v1=4b359c992d1d3fb9a8b7678521a8e02dfe48196f25a381729c52892fef4c825d")
    assert reason(f"t=0{padded},v1={BY_SECRET}") == MALFORMED
