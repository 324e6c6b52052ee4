"""``POST /webhooks/chatbot`` (CONTRACT section 2): verify, store, queue, answer."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from flask import Blueprint, Response, request
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import RequestEntityTooLarge

from bridge import metrics
from bridge.adapters.store.repository import KeyReused
from bridge.bootstrap import Deps, current_deps
from bridge.limits import RateLimited, ReporterLimits
from bridge.pipeline.intake.chatbot import ReportCreated, UnknownTicket, accept_followup, accept_report, chatbot_event
from bridge.tracking import status_url
from bridge.web.bodies import read_body
from bridge.web.problems import problem
from bridge.web.signatures import SignatureError, verify_chatbot_signature

log = logging.getLogger(__name__)

bp = Blueprint("chatbot", __name__)

CHANNEL = "chatbot"


def _rejected(status: int, title: str, detail: str, *, slug: str, **extra: Any) -> Response:
    """A refusal: one log line, one count (``rejected_<slug>``), the problem answer."""
    reason = slug.replace("-", "_")
    log.info("chatbot.rejected", extra={"reason": reason, "status": status})
    metrics.report(CHANNEL, f"rejected_{reason}")
    return problem(status, title, detail, slug=slug, **extra)


@bp.post("/webhooks/chatbot")
def receive() -> Response:
    deps = current_deps()
    if request.mimetype != "application/json":
        return _rejected(415, "Unsupported Media Type", "send the event as application/json", slug="content-type")
    try:
        body = read_body()
    except RequestEntityTooLarge:
        log.info("chatbot.rejected", extra={"reason": "too_large", "status": 413})
        metrics.report(CHANNEL, "rejected_too_large")
        raise
    chatbot = deps.settings.chatbot
    try:
        verify_chatbot_signature(
            request.headers.get("X-Smarttalk-Signature"),
            body,
            secrets=chatbot.signing_secrets,
            now=time.time(),
            tolerance=chatbot.replay_window_seconds,
        )
    except SignatureError as exc:
        return _rejected(401, "Invalid signature", str(exc), slug="signature")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: deeply nested JSON
        return _rejected(400, "Malformed JSON", f"the body is not valid JSON: {exc}", slug="malformed-json")
    try:
        event = chatbot_event.validate_python(payload)
    except ValidationError as exc:
        return _rejected(
            400, "Invalid event", "the event does not match the schema", slug="schema", errors=field_errors(exc)
        )

    delivery_key = request.headers.get("Idempotency-Key", "").strip() or event.event_id
    respond = _response_builder(deps)
    # Limited per reporter address (never per connection), counted from what is stored; a repeated
    # delivery is answered before the check, so it never counts twice (bridge/limits.py).
    admit = ReporterLimits(deps.settings.limits).for_event(event.type, event.reporter.email)
    try:
        if isinstance(event, ReportCreated):
            accepted = accept_report(
                deps.store,
                event,
                delivery_key=delivery_key,
                response_for=respond,
                admit=admit,
                fetch_attachments=bool(deps.settings.attachments.allowed_hosts),
            )
        else:
            accepted = accept_followup(deps.store, event, delivery_key=delivery_key, response_for=respond, admit=admit)
    except RateLimited as exc:
        # Nothing was stored: the chatbot keeps the event and sends it again after Retry-After.
        limited = _rejected(
            429,
            "Too Many Requests",
            f"{exc}; send it again after Retry-After seconds",
            slug="rate-limited",
            retry_after=exc.retry_after,
        )
        limited.headers["Retry-After"] = str(exc.retry_after)
        return limited
    except UnknownTicket:
        return _rejected(
            404, "Unknown ticket", "no ticket with that tracking ID for this reporter", slug="unknown-ticket"
        )
    except KeyReused:
        # Never another reporter's (or another kind of event's) stored answer: nothing is created either.
        return _rejected(
            409,
            "Conflict",
            "this event_id or Idempotency-Key was already used for a different event (another reporter "
            "or event type); send a new event with its own event_id",
            slug="idempotency-conflict",
        )
    except DBAPIError:
        # Nothing was stored: say so, so the chatbot retries instead of believing it was accepted.
        log.exception("chatbot.store_failed")
        metrics.report(CHANNEL, "rejected_store_failed")
        unavailable = problem(503, "Service Unavailable", "the report could not be stored; retry shortly", slug="store")
        unavailable.headers["Retry-After"] = "5"
        return unavailable
    log.info(
        "chatbot.accepted",
        extra={
            "event_type": event.type,
            "tracking_id": accepted.response.get("tracking_id"),
            "duplicate": accepted.duplicate,
        },
    )
    metrics.report(CHANNEL, "duplicate" if accepted.duplicate else "accepted")
    return Response(
        json.dumps(accepted.response), status=200 if accepted.duplicate else 202, mimetype="application/json"
    )


def _response_builder(deps: Deps) -> Any:
    def build(tracking_id: str, status: str) -> dict[str, Any]:
        url = status_url(deps.settings.server.public_url, deps.secret_key, tracking_id)
        return {"tracking_id": tracking_id, "status": status, "status_url": url}

    return build


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Pydantic errors as ``{"field": "report.title", "message": ...}``, one per problem."""
    errors = []
    for err in exc.errors(include_url=False):
        loc = list(err["loc"])
        if loc and loc[0] in ("report.created", "report.followup"):
            loc = loc[1:]  # the discriminator's own name is not a field
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc = ["type"]  # pydantic reports the discriminator at the root
        field = ".".join(str(part) for part in loc)
        message = "required" if err["type"] == "missing" else str(err["msg"])
        errors.append({"field": field or "(body)", "message": message})
    return errors
