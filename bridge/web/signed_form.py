"""Reading a Mailgun route forward without trusting it before its signature is checked.

Mailgun signs ``timestamp`` + ``token`` (the ``signature`` field), and all three come inside the
form body, at a place Mailgun does not promise (typically after the text bodies; in raw MIME mode
after ``body-mime``, the whole message). So the body is read in chunks and copied to a spool (in
memory up to ``SPOOL_MEMORY``, then a temporary file), while a streaming form reader keeps only
the three signature fields, each at most ``FIELD_MAX`` bytes. The moment all three have arrived
they are checked: a wrong or stale signature ends the request at once, unread beyond that point.
Nothing is decoded or parsed, and at most ``SPOOL_MEMORY`` of it is held in memory, until the
signature is good; only then is the whole body (up to the email limit) read and parsed.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO
from urllib.parse import unquote_to_bytes

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

SIGNATURE_FIELDS = ("timestamp", "token", "signature")
FIELD_MAX = 256
"""Bytes a signature field may have (Mailgun's are 10, 50 and 64)."""
SPOOL_MEMORY = 64 * 1024
"""Bytes of an unverified body held in memory; the rest waits in a temporary file."""
CHUNK = 64 * 1024


class Unverified(Exception):
    """The body's signature fields are missing, repeated, too long or unreadable (the text is safe to show)."""


@dataclass
class _Fields:
    found: dict[str, bytes] = field(default_factory=dict)

    def add(self, name: str, value: bytes) -> None:
        if name not in SIGNATURE_FIELDS:
            return
        if name in self.found:
            raise Unverified(f"the signature field {name!r} is given more than once")
        if len(value) > FIELD_MAX:
            raise Unverified(f"the signature field {name!r} is too long")
        self.found[name] = value

    @property
    def complete(self) -> bool:
        return all(name in self.found for name in SIGNATURE_FIELDS)


class _UrlencodedScanner:
    """``name=value&...`` pairs as they stream in; a pair may span chunks. A pair longer than any
    signature field could be is skipped as it passes, unless it names one (then it is refused)."""

    def __init__(self, fields: _Fields) -> None:
        self._fields = fields
        self._pending = b""
        self._skipping = False

    def feed(self, chunk: bytes) -> None:
        pieces = (self._pending + chunk).split(b"&")
        self._pending = pieces.pop()
        for piece in pieces:
            if self._skipping:
                self._skipping = False  # the end of the long pair being skipped
                continue
            self._pair(piece)
        if self._skipping:
            self._pending = b""  # still inside the long pair
        elif len(self._pending) > _PAIR_MAX:
            raw_name, equals, _ = self._pending.partition(b"=")
            if equals and _name(raw_name) in SIGNATURE_FIELDS:
                raise Unverified(f"the signature field {_name(raw_name)!r} is too long")
            self._pending, self._skipping = b"", True

    def finish(self) -> None:
        if not self._skipping:
            self._pair(self._pending)
        self._pending = b""

    def _pair(self, pair: bytes) -> None:
        raw_name, _, raw_value = pair.partition(b"=")
        name = _name(raw_name)
        if name in SIGNATURE_FIELDS:
            self._fields.add(name, unquote_to_bytes(raw_value.replace(b"+", b" ")))


_PAIR_MAX = FIELD_MAX + 64


def _name(raw: bytes) -> str:
    return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8", "replace")


class _MultipartScanner:
    """The parts of a ``multipart/form-data`` body as they stream in (werkzeug's sans-I/O decoder):
    the data of the three signature fields is kept, every other part only passes through."""

    def __init__(self, fields: _Fields, boundary: bytes) -> None:
        self._fields = fields
        self._decoder = MultipartDecoder(boundary)
        self._name: str | None = None
        self._value = bytearray()
        self._ended = False

    def feed(self, chunk: bytes) -> None:
        self._decoder.receive_data(chunk)
        self._drain()

    def finish(self) -> None:
        self._decoder.receive_data(None)
        self._drain()

    def _drain(self) -> None:
        while not self._ended:
            try:
                event = self._decoder.next_event()
            except ValueError as exc:
                raise Unverified(f"the form cannot be read: {exc}") from None
            if isinstance(event, NeedData):
                return
            if isinstance(event, Epilogue):
                self._ended = True
            elif isinstance(event, File):
                self._name = None  # an upload is never a signature field
            elif isinstance(event, Field):
                self._name = event.name if event.name in SIGNATURE_FIELDS else None
                self._value = bytearray()
            elif isinstance(event, Data) and self._name is not None:
                self._value += event.data
                if len(self._value) > FIELD_MAX:
                    raise Unverified(f"the signature field {self._name!r} is too long")
                if not event.more_data:
                    self._fields.add(self._name, bytes(self._value))
                    self._name = None


def read_signed_form(
    stream: IO[bytes],
    *,
    content_type: str,
    limit: int,
    verify: Callable[[dict[str, bytes]], bool],
) -> tuple[bytes, dict[str, bytes]]:
    """The whole body and its (verified) signature fields, or ``Unverified`` as soon as the
    signature is known to be missing or wrong; ``RequestEntityTooLarge`` past ``limit`` bytes."""
    fields = _Fields()
    mimetype, options = parse_options_header(content_type)
    scanner: _UrlencodedScanner | _MultipartScanner
    if mimetype == "multipart/form-data":
        boundary = options.get("boundary", "")
        if not boundary or len(boundary) > 200:
            raise Unverified("multipart/form-data without a usable boundary")
        scanner = _MultipartScanner(fields, boundary.encode("latin-1", "replace"))
    else:
        scanner = _UrlencodedScanner(fields)
    verified = False
    size = 0
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY) as spool:
        while chunk := stream.read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise RequestEntityTooLarge()
            spool.write(chunk)
            if not verified:
                scanner.feed(chunk)
                verified = _check(fields, verify)
        if not verified:
            scanner.finish()
            if not fields.complete:
                raise Unverified("the Mailgun signature fields (timestamp, token, signature) are missing")
            verified = _check(fields, verify)
        spool.seek(0)
        return spool.read(), fields.found


def _check(fields: _Fields, verify: Callable[[dict[str, bytes]], bool]) -> bool:
    """True once all three fields are in and the signature is good; ``Unverified`` if it is not."""
    if not fields.complete:
        return False
    if not verify(fields.found):
        raise Unverified("the Mailgun signature is wrong or stale")
    return True
