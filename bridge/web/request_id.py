"""Request ids: ``X-Request-ID`` in (sanitised) or a new one, on every log line and job, and back out.

The id is kept in ``bridge.logs.request_id`` for the duration of the request: the logging filter
adds it to each record and ``Store.new_job`` stores it on each job the request creates, so the
worker's log lines for that job carry the same id.
"""

from __future__ import annotations

from contextvars import Token

from flask import Blueprint, Response, g, request

from bridge.logs import clean_request_id, new_request_id, request_id

HEADER = "X-Request-ID"

bp = Blueprint("request_id", __name__)


@bp.before_app_request
def _start() -> None:
    current = clean_request_id(request.headers.get(HEADER)) or new_request_id()
    g.request_id = current
    g.request_id_token = request_id.set(current)


@bp.after_app_request
def _answer(response: Response) -> Response:
    current = g.get("request_id")
    if current:
        response.headers[HEADER] = current
    return response


@bp.teardown_app_request
def _end(_exc: BaseException | None) -> None:
    token: Token[str | None] | None = g.pop("request_id_token", None)
    if token is not None:
        request_id.reset(token)
