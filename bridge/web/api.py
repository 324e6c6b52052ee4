"""The status API for the chatbot (CONTRACT section 3).

Every call needs ``Authorization: Bearer <CHATBOT_API_TOKEN>``; without a configured token
the API answers 401 to everyone.

- ``GET /api/v1/tickets/<tracking_id>``: one ticket with its history (oldest first).
- ``GET /api/v1/tickets?email=<address>``: that reporter's tickets (the 100 newest), newest first,
  without history, in an envelope: ``{"tickets": [...]}`` (an object, so fields can be added later;
  an address without tickets gets ``{"tickets": []}``).
  The address matches case-insensitively. A ``+`` in the address must be percent-encoded
  (``%2B``); a space, which is what an unencoded ``+`` decodes to, is read back as ``+``.

Only the reporter-facing view is returned (``bridge.pipeline.notifying.ticket_view``): never tracker
keys or URLs, internal comments, the reporter's email or another reporter's data.
"""

from __future__ import annotations

import hmac
import json
import re
from typing import Any

from flask import Blueprint, Response, request

from bridge.bootstrap import current_deps
from bridge.pipeline.intake.fields import value_problem
from bridge.pipeline.notifying.ticket_view import ticket_view
from bridge.tracking import is_tracking_id
from bridge.web.problems import problem

bp = Blueprint("api", __name__)

# Deliberately loose (the chatbot sends what the reporter typed): one @, no spaces, a dot in the domain.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_MAX_EMAIL = 320


@bp.before_request
def _authenticate() -> Response | None:
    expected = current_deps().settings.chatbot.api_token
    if not expected:
        return _unauthorized("the status API is not configured (set CHATBOT_API_TOKEN)")
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _unauthorized("send Authorization: Bearer <chatbot API token>")
    if not hmac.compare_digest(token.strip().encode(), expected.encode()):
        return _unauthorized("the bearer token is not valid", error="invalid_token")
    return None


@bp.after_request
def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"  # personal data: no shared or browser caches
    return response


@bp.get("/api/v1/tickets/<tracking_id>")
def ticket(tracking_id: str) -> Response:
    deps = current_deps()
    tracking_id = tracking_id.strip().upper()
    found = deps.store.ticket_by_tracking_id(tracking_id) if is_tracking_id(tracking_id) else None
    if found is None:
        return problem(404, "Unknown ticket", "no ticket with that tracking ID", slug="unknown-ticket")
    view = ticket_view(found, deps.store.history(found.id), deps.mappings.wording, categories=deps.mappings.categories)
    return _json(view.as_json())


@bp.get("/api/v1/tickets")
def tickets_of_reporter() -> Response:
    deps = current_deps()
    email = request.args.get("email", "").strip().replace(" ", "+")
    if not email:
        return problem(400, "Missing email", "give the reporter's address as ?email=", slug="email")
    refused = value_problem(email)
    if refused is not None:
        return problem(
            400, "Invalid email", f"email {refused}", slug="email", errors=[{"field": "email", "message": refused}]
        )
    if len(email) > _MAX_EMAIL or not _EMAIL.fullmatch(email):
        return problem(400, "Invalid email", "the email parameter is not an email address", slug="email")
    wording, categories = deps.mappings.wording, deps.mappings.categories
    tickets = [
        ticket_view(t, (), wording, categories=categories).as_json(with_history=False)
        for t in deps.store.tickets_by_email(email)
    ]
    return _json({"tickets": tickets})


def _json(body: dict[str, Any]) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), mimetype="application/json")


def _unauthorized(detail: str, *, error: str | None = None) -> Response:
    response = problem(401, "Unauthorized", detail, slug="unauthorized")
    response.headers["WWW-Authenticate"] = (
        f'Bearer realm="bridge", error="{error}"' if error else 'Bearer realm="bridge"'
    )
    return response
