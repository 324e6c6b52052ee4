"""Properties of ``verify_chatbot_signature`` (CONTRACT section 2)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from bridge.web.signatures import SignatureError, sign, verify_chatbot_signature
from tests.property.conftest import PROPERTY

TOLERANCE = 300
NOW = st.integers(min_value=TOLERANCE, max_value=4_000_000_000)
SECRETS = st.text(min_size=1, max_size=64)
BODIES = st.binary(max_size=2048)


def _header(timestamp: int, *signatures: str) -> str:
    return ",".join([f"t={timestamp}", *(f"v1={s}" for s in signatures)])


@PROPERTY
@given(body=BODIES, secret=SECRETS, now=NOW, skew=st.integers(-TOLERANCE, TOLERANCE), fraction=st.floats(0, 0.999))
def test_a_valid_signature_verifies(body: bytes, secret: str, now: int, skew: int, fraction: float) -> None:
    """A signature over the body with the secret verifies for any timestamp within the replay window."""
    timestamp = now + skew
    clock = now + (fraction if skew > -TOLERANCE else 0.0)  # a fractional clock, still within the window
    verify_chatbot_signature(
        _header(timestamp, sign(secret, timestamp, body)), body, secrets=[secret], now=clock, tolerance=TOLERANCE
    )


@PROPERTY
@given(body=BODIES, secret=SECRETS, now=NOW, skew=st.integers(TOLERANCE + 1, 10**9), late=st.booleans())
def test_a_timestamp_outside_the_window_fails(body: bytes, secret: str, now: int, skew: int, late: bool) -> None:
    """A correct signature with a timestamp more than the tolerance away from the clock is refused."""
    timestamp = now - skew if late else now + skew
    assume(timestamp >= 0)
    with pytest.raises(SignatureError):
        verify_chatbot_signature(
            _header(timestamp, sign(secret, timestamp, body)), body, secrets=[secret], now=now, tolerance=TOLERANCE
        )


@PROPERTY
@given(body=BODIES.filter(bool), secret=SECRETS, now=NOW, data=st.data())
def test_any_single_byte_change_to_the_body_fails(body: bytes, secret: str, now: int, data: st.DataObject) -> None:
    """Changing any one byte of the body makes the signature fail."""
    index = data.draw(st.integers(0, len(body) - 1), label="index")
    replacement = data.draw(st.integers(0, 255).filter(lambda b: b != body[index]), label="byte")
    changed = body[:index] + bytes([replacement]) + body[index + 1 :]
    with pytest.raises(SignatureError):
        verify_chatbot_signature(
            _header(now, sign(secret, now, body)), changed, secrets=[secret], now=now, tolerance=TOLERANCE
        )


@PROPERTY
@given(body=BODIES, secret=SECRETS, now=NOW, data=st.data())
def test_any_single_character_change_to_the_signature_fails(
    body: bytes, secret: str, now: int, data: st.DataObject
) -> None:
    """Changing any one character of the hex signature (other than its case) makes it fail."""
    signature = sign(secret, now, body)
    index = data.draw(st.integers(0, len(signature) - 1), label="index")
    replacement = data.draw(
        st.characters(codec="latin-1").filter(lambda c: c.lower() != signature[index] and c not in ", \t"),
        label="character",
    )
    changed = signature[:index] + replacement + signature[index + 1 :]
    with pytest.raises(SignatureError):
        verify_chatbot_signature(_header(now, changed), body, secrets=[secret], now=now, tolerance=TOLERANCE)


@PROPERTY
@given(
    body=BODIES,
    secrets=st.lists(SECRETS, min_size=1, max_size=4, unique=True),
    wrong=st.lists(st.text(alphabet="0123456789abcdef", min_size=64, max_size=64), max_size=3),
    now=NOW,
    data=st.data(),
)
def test_one_valid_v1_among_several_is_enough(
    body: bytes, secrets: list[str], wrong: list[str], now: int, data: st.DataObject
) -> None:
    """With several ``v1`` values (secret rotation), one that matches one secret verifies, in any position."""
    valid = sign(data.draw(st.sampled_from(secrets), label="signing secret"), now, body)
    candidates = data.draw(st.permutations([valid, *wrong]), label="order")
    verify_chatbot_signature(_header(now, *candidates), body, secrets=secrets, now=now, tolerance=TOLERANCE)


def _values(now: int) -> st.SearchStrategy[str]:
    """Header values as a sender (or an attacker) might write them: near-now timestamps, hex, any
    Latin-1 text (what an HTTP header can carry), odd digits."""
    return st.one_of(
        st.integers(-2 * TOLERANCE, 2 * TOLERANCE).map(lambda skew: str(now + skew)),
        st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
        st.text(alphabet=st.characters(codec="latin-1"), max_size=12),
        st.sampled_from(["", "9" * 30, "9" * 5000, "\u00b2", "1\u00b9", "-5", " 17 ", "0x1f"]),
    )


@PROPERTY
@given(
    now=NOW,
    data=st.data(),
    body=st.binary(max_size=64),
    secrets=st.lists(st.text(max_size=16), max_size=3),
    tolerance=st.sampled_from([0, TOLERANCE, 10**6]),
)
def test_never_raises_anything_but_signature_error(
    now: int, data: st.DataObject, body: bytes, secrets: list[str], tolerance: int
) -> None:
    """Whatever the header, the check passes or raises ``SignatureError`` (anything else would be a 500)."""
    keys = st.sampled_from(["t", "v1", "v0", "T", " t", "v1 ", ""])
    separators = st.sampled_from(["=", "=", "", " = ", "=="])
    parts = [
        *data.draw(st.lists(st.builds("t={}".format, _values(now)), max_size=2), label="t"),
        *data.draw(st.lists(st.builds("v1={}".format, _values(now)), max_size=3), label="v1"),
        *data.draw(st.lists(st.tuples(keys, separators, _values(now)).map("".join), max_size=2), label="other"),
    ]
    parts = data.draw(st.permutations(parts), label="order")
    header = data.draw(st.sampled_from([",", ", ", ";"]), label="separator").join(parts)
    with contextlib.suppress(SignatureError):
        verify_chatbot_signature(header or None, body, secrets=secrets, now=now + 0.5, tolerance=tolerance)
