"""Properties of the email reader (``bridge.pipeline.intake.email.parse``): it never raises, and never loses
the reporter's words."""

from __future__ import annotations

import re
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP, default
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.pipeline.intake.email.language import guess_language
from bridge.pipeline.intake.email.parse import html_to_text, parse_rfc822, strip_reply
from tests.property.conftest import PROPERTY, REPO

CORPUS = REPO / "tests" / "corpus" / "email"
SEEDS = sorted(path for path in CORPUS.glob("*.eml") if path.stat().st_size < 20_000)
"""The small corpus messages (every kind of MIME the corpus has, but not the 1 MB header)."""


@PROPERTY
@given(raw=st.binary(max_size=4096))
def test_parse_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    """Any bytes at all parse to a ``ParsedEmail`` (what could not be read is in ``problems``)."""
    parsed = parse_rfc822(raw)
    assert isinstance(parsed.body, str)


TOKENS = [
    b"\r\n",
    b"\n",
    b"\r\n\r\n",
    b"--",
    b"=?utf-8?b?",
    b"=?iso-8859-1?q?=E6",
    b"?=",
    b"Content-Type: multipart/mixed; boundary=",
    b"Content-Transfer-Encoding: base64\r\n",
    b"Content-Transfer-Encoding: quoted-printable\r\n",
    b'; charset="x-unknown"',
    b"\x00",
    b"\xff\xfe",
    b"=\r\n",
    b": ",
    b"\t",
]


@st.composite
def mutated_messages(draw: st.DrawFn) -> bytes:
    """A corpus message with a few random edits: bytes flipped, inserted, deleted, cut or repeated."""
    raw = bytearray(Path(draw(st.sampled_from(SEEDS), label="seed")).read_bytes())
    for _ in range(draw(st.integers(1, 6), label="edits")):
        at = draw(st.integers(0, len(raw)), label="at")
        edit = draw(st.sampled_from(["flip", "insert", "token", "delete", "cut", "repeat"]), label="edit")
        if edit == "flip" and at < len(raw):
            raw[at] = draw(st.integers(0, 255))
        elif edit == "insert":
            raw[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif edit == "token":
            raw[at:at] = draw(st.sampled_from(TOKENS))
        elif edit == "delete":
            del raw[at : at + draw(st.integers(1, 64))]
        elif edit == "cut":
            del raw[at:]
        elif edit == "repeat":
            raw[at:at] = raw[at : at + draw(st.integers(1, 200))] * draw(st.integers(2, 20))
    return bytes(raw)


@settings(PROPERTY, max_examples=200)
@given(raw=mutated_messages())
def test_parse_never_raises_on_mutated_messages(raw: bytes) -> None:
    """Real messages with random damage parse without raising."""
    parsed = parse_rfc822(raw)
    assert isinstance(parsed.subject, str)


REPLY_LINES = st.sampled_from(
    [
        "> quoted",
        ">",
        "On Mon, 1 Dec 2026 at 10:00, Anna <anna@kunde.dk> wrote:",
        "Den man. 1. dec. 2026 kl. 10.00 skrev Anna <anna@kunde.dk>:",
        "-----Original Message-----",
        "-----Oprindelig meddelelse-----",
        "From: Anna",
        "Fra: Anna",
        "Sent: Monday",
        "Subject: Re: x",
        "-- ",
        "--",
        "Sendt fra min iPhone",
        "Sent from my iPhone",
        "Med venlig hilsen",
        "Best regards",
        "________________________________",
        "",
        "   ",
    ]
)
REPLY_TEXTS = st.lists(st.one_of(REPLY_LINES, st.text(max_size=30)), min_size=1, max_size=12).map("\n".join)


@PROPERTY
@given(text=st.one_of(REPLY_TEXTS, st.text(min_size=1)).filter(bool))
def test_strip_reply_never_returns_nothing(text: str) -> None:
    """Non-empty text never strips to nothing; text with words keeps some words."""
    result = strip_reply(text)
    assert result
    if text.strip():
        assert result.strip()


@PROPERTY
@given(content_language=st.none() | st.text(max_size=40), text=st.text(max_size=300))
def test_guess_language_never_raises(content_language: str | None, text: str) -> None:
    """Any Content-Language and any text (lone surrogates too) give ``da``, ``en`` or None."""
    assert guess_language(content_language, text) in ("da", "en", None)


HTML_PIECES = st.sampled_from(
    ["<p>", "</p>", "<div>", "</div>", "<br>", "<blockquote>", "</blockquote>", "<a href='https://x'>", "</a>",
     "<ol>", "<li>", "<pre>", "</pre>", "<script>", "</script>", "<td>", "&nbsp;", "<", ">", "\n", " ", "hej"]
)  # fmt: skip


@PROPERTY
@given(
    pieces=st.lists(
        st.one_of(HTML_PIECES, st.text(st.characters(blacklist_characters="<>&"), max_size=10)), max_size=60
    )
)
def test_html_to_text_keeps_plain_words(pieces: list[str]) -> None:
    """Any tag soup reads without raising; a word outside <script> and tags survives it."""
    html = "".join(pieces)
    text = html_to_text(html + "<p>slutord</p>")
    assert "slutord" in text or "<script" in html


# Left out: what the reader removes on purpose (control characters, BOM, non-characters), surrogates
# (no email carries them) and line/paragraph separators (EmailMessage refuses them in a header).
SUBJECT_CHARACTERS = st.characters(
    blacklist_categories=["Cc", "Cs", "Zl", "Zp"], blacklist_characters="\ufeff\ufffe\uffff"
)
# Text that already looks like an encoded-word is not encoded again by the stdlib's generator, so it
# is (rightly) decoded on reading: not a round trip to test.
LOOKS_ENCODED = re.compile(r"=\?[^?]*\?[bBqQ]\?")


@PROPERTY
@given(subject=st.text(alphabet=SUBJECT_CHARACTERS, max_size=200).filter(lambda s: not LOOKS_ENCODED.search(s)))
def test_any_subject_survives_rfc_2047(subject: str) -> None:
    """A Unicode subject written by ``EmailMessage`` (RFC 2047 encoded-words, folded) reads back as written,
    runs of whitespace as one space."""
    message = EmailMessage(policy=SMTP)
    message["From"] = "Anna Jensen <anna@kunde.dk>"
    message["To"] = "support@example.com"
    message["Subject"] = subject
    message.set_content("Hej")
    raw = message.as_bytes()
    parsed = parse_rfc822(raw)
    # CPython's folding can leave a space between two encoded-words outside both, where RFC 2047 says
    # readers drop it (its own parser reads "𐀀 0" written so back as "𐀀0"): so every character but
    # spaces must survive, and the bridge must read exactly what the stdlib's strict parser reads.
    stdlib = _one_line(str(message_from_bytes(raw, policy=default)["Subject"]))
    assert stdlib.replace(" ", "") == _one_line(subject).replace(" ", "")
    assert parsed.subject == stdlib


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()
