"""Tracking IDs and the signed status and unsubscribe links (``bridge.tracking``).

The expected signatures were computed once with OpenSSL, not with the bridge, e.g.::

    printf 'status:ST-7K3Q9X2M' | openssl dgst -sha256 -hmac 'status-link-key' -binary \\
      | head -c 16 | base64 | tr '+/' '-_' | tr -d '='

(the first 16 bytes of HMAC-SHA256 with the server's secret key over ``"<purpose>:<tracking id>"``,
URL-safe base64 without padding), so links already sent to reporters keep working.
"""

from __future__ import annotations

import string
from collections.abc import Callable

import pytest

from bridge.tracking import (
    ALPHABET,
    is_tracking_id,
    new_tracking_id,
    status_signature,
    status_url,
    unsubscribe_signature,
    unsubscribe_url,
    valid_status_signature,
    valid_unsubscribe_signature,
)

KEY = "status-link-key"
ID = "ST-7K3Q9X2M"
STATUS_SIG = "TDxXKk2OcpfmFD8qgz95Kw"
UNSUBSCRIBE_SIG = "iWraNumBzNNU7EFwTr-0EA"


def test_the_alphabet_is_crockford_base32() -> None:
    """32 distinct digits and capitals, without I, L, O and U (read aloud or retyped, they get confused)."""
    assert len(ALPHABET) == len(set(ALPHABET)) == 32
    assert set(ALPHABET) == set(string.digits + string.ascii_uppercase) - set("ILOU")


@pytest.mark.parametrize("character", sorted(set(string.printable + "ÆØÅæøå\u0661")))
def test_a_tracking_id_is_st_and_eight_alphabet_characters(character: str) -> None:
    """``ST-`` and eight characters, every one of them from the alphabet and nothing else."""
    assert is_tracking_id("ST-" + character * 8) is (character in ALPHABET)
    assert is_tracking_id("ST-7K3Q" + character + "X2M") is (character in ALPHABET)


@pytest.mark.parametrize(
    "value",
    ["", "ST-", "ST-7K3Q9X2", "ST-7K3Q9X2MM", "st-7K3Q9X2M", "ST-7k3q9x2m", "ST7K3Q9X2M", "PR-7K3Q9X2M",
     f" {ID}", f"{ID} ", f"{ID}\n", f"[{ID}]", f"x{ID}"],
)  # fmt: skip
def test_near_misses_are_not_tracking_ids(value: str) -> None:
    """Only the whole value counts: no case folding, no surrounding text or whitespace."""
    assert not is_tracking_id(value)
    assert is_tracking_id(ID)


def test_new_tracking_ids_are_valid_distinct_and_use_the_whole_alphabet() -> None:
    """IDs are random over the whole alphabet: 500 of them are all valid, all different, and between them
    use every character (missing one by chance has a probability below 1e-40)."""
    ids = [new_tracking_id() for _ in range(500)]
    assert all(len(i) == 11 and i.startswith("ST-") and is_tracking_id(i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert set("".join(i[3:] for i in ids)) == set(ALPHABET)


def test_status_signature_known_answer() -> None:
    """The status link signature is the OpenSSL answer: 22 URL-safe characters."""
    assert status_signature(KEY, ID) == STATUS_SIG
    assert status_url("https://bridge.example", KEY, ID) == f"https://bridge.example/t/{ID}?s={STATUS_SIG}"


def test_unsubscribe_signature_known_answer() -> None:
    """The unsubscribe signature has its own purpose in the signed text, so it differs from the status one."""
    assert unsubscribe_signature(KEY, ID) == UNSUBSCRIBE_SIG
    assert unsubscribe_url("https://bridge.example", KEY, ID) == f"https://bridge.example/u/{ID}?s={UNSUBSCRIBE_SIG}"


@pytest.mark.parametrize("tracking_id", [ID, "ST-0000000Z", "ST-ZZZZZZZZ"])
@pytest.mark.parametrize("key", [KEY, "another key", "k"])
def test_signatures_are_22_url_safe_characters_without_padding(tracking_id: str, key: str) -> None:
    """16 bytes of HMAC, URL-safe base64 without ``=``: fits a query string as it is."""
    for signature in (status_signature(key, tracking_id), unsubscribe_signature(key, tracking_id)):
        assert len(signature) == 22
        assert set(signature) <= set(string.ascii_letters + string.digits + "-_")


def test_signatures_depend_on_key_id_and_purpose() -> None:
    """A different key or tracking ID gives a different signature, and the purposes never coincide."""
    assert status_signature("another key", ID) != STATUS_SIG
    assert status_signature(KEY, "ST-7K3Q9X2N") != STATUS_SIG
    assert unsubscribe_signature("another key", ID) != UNSUBSCRIBE_SIG
    assert unsubscribe_signature(KEY, "ST-7K3Q9X2N") != UNSUBSCRIBE_SIG


def test_valid_status_signature() -> None:
    """Only the status signature of this ID with this key opens the status page."""
    assert valid_status_signature(KEY, ID, STATUS_SIG)
    assert not valid_status_signature(KEY, ID, UNSUBSCRIBE_SIG)  # an unsubscribe link is no status link
    assert not valid_status_signature("another key", ID, STATUS_SIG)
    assert not valid_status_signature(KEY, "ST-7K3Q9X2N", STATUS_SIG)
    assert not valid_status_signature(KEY, ID, STATUS_SIG[:-1])
    assert not valid_status_signature(KEY, ID, STATUS_SIG + "=")
    assert not valid_status_signature(KEY, ID, "")


def test_valid_unsubscribe_signature() -> None:
    """Only the unsubscribe signature mutes the reporter's mail: a forwarded status link cannot."""
    assert valid_unsubscribe_signature(KEY, ID, UNSUBSCRIBE_SIG)
    assert not valid_unsubscribe_signature(KEY, ID, STATUS_SIG)
    assert not valid_unsubscribe_signature("another key", ID, UNSUBSCRIBE_SIG)
    assert not valid_unsubscribe_signature(KEY, "ST-7K3Q9X2N", UNSUBSCRIBE_SIG)
    assert not valid_unsubscribe_signature(KEY, ID, UNSUBSCRIBE_SIG[:-1])
    assert not valid_unsubscribe_signature(KEY, ID, "")


@pytest.mark.parametrize("check", [valid_status_signature, valid_unsubscribe_signature])
def test_a_non_ascii_signature_is_invalid_not_an_error(check: Callable[[str, str, str], bool]) -> None:
    """Whatever a link's ``s`` holds, the answer is "not valid", never an exception."""
    assert check(KEY, ID, "é" * 22) is False
    assert check(KEY, ID, STATUS_SIG[:-1] + "\u00e9") is False
