"""Reading a request body within its limit, whether or not the sender gave its length.

With ``Content-Length`` Werkzeug answers 413 before reading. A chunked body has no length, and
Werkzeug then stops reading at ``max_content_length`` and returns what it read as if it were the
whole body: an oversized signed report was answered 401 (its signature covers bytes that were cut
off) instead of 413. One byte more is read to tell "exactly at the limit" from "larger".
"""

from __future__ import annotations

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge


def read_body() -> bytes:
    """The whole body, or ``RequestEntityTooLarge`` (413) when it exceeds ``request.max_content_length``."""
    body = request.get_data(cache=False)
    limit = request.max_content_length
    if limit is not None and request.content_length is None and len(body) >= limit:
        stream = request.environ.get("wsgi.input")
        if stream is not None and stream.read(1):
            raise RequestEntityTooLarge()
    return body
