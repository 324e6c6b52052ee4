"""Inbound email webhooks (CONTRACT section 4): authenticate, store as delivered, queue, answer.

``POST /webhooks/email/mailgun`` (route forward; HMAC signature or the shared token),
``/sendgrid`` (Inbound Parse, parsed or raw mode), ``/postmark`` (inbound JSON) and ``/raw``
(``message/rfc822``). Nothing is decided here: the ``process_email`` job reads the stored
message. A repeat of a stored message answers 200 and stores nothing.

Answers are chosen for each provider's retry rules: Mailgun stops on 406 (sent for input it
can never accept), Postmark stops on 403 (sent only when authentication fails), everything
else that is not a 2xx is retried by the sender. Errors are problem+json; bad input is never
a 500.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, request
from sqlalchemy.exc import DBAPIError

from bridge.bootstrap import Deps, current_deps
from bridge.pipeline.intake.email import providers as email_providers
from bridge.pipeline.intake.email.process import Delivered, ReplayedToken, Stored, Unstorable
from bridge.web.bodies import read_body
from bridge.web.problems import problem
from bridge.web.signed_form import SIGNATURE_FIELDS, Unverified, read_signed_form

log = logging.getLogger(__name__)

bp = Blueprint("email_intake", __name__)

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class BadInput(Exception):
    """The body cannot be read as the provider's format; the text is safe to show."""


# --- endpoints -------------------------------------------------------------------------------


@bp.post("/webhooks/email/mailgun")
def mailgun() -> Response:
    """Authenticated before the body is trusted: by the shared token (header or query: checked
    before anything is read), else by Mailgun's signature, whose fields are inside the body, so
    that is streamed holding only them until they check out (``signed_form``); with neither a
    token nor a signing key nothing is read at all."""
    deps = current_deps()
    intake = deps.settings.intake
    if request.mimetype not in _FORM_TYPES:
        return _unsupported("a Mailgun route forward is application/x-www-form-urlencoded or multipart/form-data")
    if _token_ok(deps):
        body, replay_token = _body(deps), None  # the signature is not needed
    elif not intake.mailgun_signing_key:
        return _mailgun_unauthorized("no valid token was given, and no Mailgun signing key is configured")
    else:
        request.max_content_length = intake.max_email_bytes
        try:
            body, signature = read_signed_form(
                request.stream,
                content_type=request.content_type or "",
                limit=intake.max_email_bytes,
                verify=lambda fields: _mailgun_signature_ok(deps, fields),
            )
        except Unverified as exc:
            return _mailgun_unauthorized(f"{exc}, and no valid token was given")
        replay_token = _text(signature["token"])
    try:
        fields, files = _read_form(body)
        delivered = _mailgun_delivered(fields, files)
    except BadInput as exc:
        return _refuse_mailgun(str(exc))
    return _store(deps, delivered, mailgun_token=replay_token)


@bp.post("/webhooks/email/sendgrid")
def sendgrid() -> Response:
    deps = current_deps()
    if not _token_ok(deps):
        return _unauthorized("give the email intake token (basic auth password, bearer token or ?token=)")
    if request.mimetype != "multipart/form-data":
        return _unsupported("SendGrid Inbound Parse posts multipart/form-data")
    body = _body(deps)
    try:
        fields, files = _read_form(body)
        delivered = _sendgrid_delivered(fields, files)
    except BadInput as exc:
        return problem(400, "Unreadable email", str(exc), slug="email-format")
    return _store(deps, delivered)


@bp.post("/webhooks/email/postmark")
def postmark() -> Response:
    deps = current_deps()
    if not _token_ok(deps):
        # 403 is the one answer that stops Postmark's retries: used for authentication only.
        return problem(
            403,
            "Forbidden",
            "give the email intake token (basic auth password, bearer token or ?token=)",
            slug="email-auth",
        )
    if request.mimetype != "application/json":
        return _unsupported("Postmark posts application/json")
    body = _body(deps)
    try:
        payload = json.loads(body, parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        return problem(400, "Malformed JSON", f"the body is not valid JSON: {exc}", slug="malformed-json")
    try:
        delivered = _postmark_delivered(payload)
    except BadInput as exc:
        return problem(400, "Unreadable email", str(exc), slug="email-format")
    return _store(deps, delivered)


@bp.post("/webhooks/email/raw")
def raw() -> Response:
    deps = current_deps()
    if not _token_ok(deps):
        return _unauthorized("give the email intake token (basic auth password, bearer token or ?token=)")
    if request.mimetype != "message/rfc822":
        return _unsupported("send the whole message as message/rfc822")
    body = _body(deps)
    if not body.strip():
        return problem(400, "Empty message", "the body holds no message", slug="email-format")
    return _store(deps, Delivered(source="raw", raw=body))


# --- storing ---------------------------------------------------------------------------------


def _store(deps: Deps, delivered: Delivered, *, mailgun_token: str | None = None) -> Response:
    try:
        stored: Stored = deps.email_intake.store(delivered, mailgun_token=mailgun_token)
    except ReplayedToken:
        log.info("email.rejected", extra={"source": delivered.source, "reason": "replayed token"})
        return problem(406, "Replayed signature", "this Mailgun signature token was used before", slug="replayed-token")
    except Unstorable as exc:
        # Kept as ``rejected`` with the reason for an operator; a retry by the provider would
        # never succeed, so the delivery is acknowledged.
        body = {"status": "rejected", "id": exc.inbound_id}
        return Response(json.dumps(body), status=200, mimetype="application/json")
    except DBAPIError:
        # Nothing was stored: a 503 makes the provider deliver again later.
        log.exception("email.store_failed", extra={"source": delivered.source})
        unavailable = problem(503, "Service Unavailable", "the email could not be stored; retry shortly", slug="store")
        unavailable.headers["Retry-After"] = "30"
        return unavailable
    body = {"status": "duplicate" if stored.duplicate else "stored", "id": stored.inbound_id}
    return Response(json.dumps(body), status=200, mimetype="application/json")


def _body(deps: Deps) -> bytes:
    """The request body, at most ``intake.max_email_bytes`` (413 problem above: raised by Werkzeug)."""
    request.max_content_length = deps.settings.intake.max_email_bytes
    return read_body()


def _read_form(body: bytes) -> tuple[dict[str, bytes], list[email_providers.FormFile]]:
    """Form fields as bytes (decoded later, per the provider's charsets) and the uploaded files."""
    try:
        fields, files = email_providers.read_form(request.content_type or "", body)
    except (ValueError, LookupError, UnicodeError) as exc:
        raise BadInput(f"the form cannot be read: {exc}") from None
    return dict(fields), list(files)


# --- providers -------------------------------------------------------------------------------


def _mailgun_delivered(fields: dict[str, bytes], files: list[email_providers.FormFile]) -> Delivered:
    # The signature fields are not part of the message (and would make every delivery look new).
    fields = {k: v for k, v in fields.items() if k not in SIGNATURE_FIELDS}
    stored = _stored(email_providers.mailgun_to_stored, fields, files)
    raw = _pop_raw(stored)
    if raw is None and not any(name in fields for name in ("from", "From", "body-plain", "message-headers")):
        raise BadInput("not a Mailgun route forward: neither body-mime nor from, body-plain or message-headers")
    return Delivered(source="mailgun", raw=raw, fields=stored)


def _sendgrid_delivered(fields: dict[str, bytes], files: list[email_providers.FormFile]) -> Delivered:
    stored = _stored(email_providers.sendgrid_to_stored, fields, files)
    raw = _pop_raw(stored)  # raw mode: the full message in the `email` field
    if raw is None and not any(name in fields for name in ("headers", "from", "text", "html")):
        raise BadInput("not a SendGrid Inbound Parse post: no email, headers, from, text or html field")
    return Delivered(source="sendgrid", raw=raw, fields=stored)


def _postmark_delivered(payload: Any) -> Delivered:
    if not isinstance(payload, dict):
        raise BadInput("a Postmark inbound payload is a JSON object")
    if not any(name in payload for name in ("From", "FromFull", "Headers", "RawEmail")):
        raise BadInput("not a Postmark inbound payload: no From, FromFull, Headers or RawEmail")
    raw_email = payload.get("RawEmail")
    if isinstance(raw_email, str) and raw_email.strip():
        # "Include raw email content": keep the message itself, the rest of the payload beside it.
        rest = {k: v for k, v in payload.items() if k != "RawEmail"}
        return Delivered(source="postmark", raw=raw_email.encode("utf-8", "surrogateescape"), fields=rest)
    return Delivered(source="postmark", fields=payload)


def _stored(
    convert: Callable[[dict[str, bytes], list[email_providers.FormFile]], dict[str, Any]],
    fields: dict[str, bytes],
    files: list[email_providers.FormFile],
) -> dict[str, Any]:
    try:
        return convert(fields, files)
    except (ValueError, LookupError, TypeError, UnicodeError, binascii.Error) as exc:
        raise BadInput(f"the fields cannot be read: {exc}") from None


def _pop_raw(stored: dict[str, Any]) -> bytes | None:
    """Take a raw message out of the stored fields: it is kept as ``InboundEmail.raw`` instead."""
    raw = stored.pop("raw", None)
    if not isinstance(raw, str):
        return None
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise BadInput("the raw message could not be read") from None


def _no_constants(name: str) -> Any:
    """NaN and Infinity are not JSON (and a JSON column may refuse them): the body is malformed."""
    raise ValueError(f"{name} is not allowed")


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "replace")


# --- authentication --------------------------------------------------------------------------


def _token_ok(deps: Deps) -> bool:
    """``EMAIL_INBOUND_TOKEN`` as basic-auth password (any user), bearer token or ``?token=``.

    Every presented candidate is compared in constant time; no token configured accepts none.
    """
    expected = deps.settings.intake.email_inbound_token
    if not expected:
        return False
    candidates: list[str] = []
    auth = request.authorization
    if auth is not None:
        if auth.type == "basic":
            candidates.append(auth.parameters.get("password") or "")
        elif auth.type == "bearer":
            candidates.append(auth.token or "")
    candidates += request.args.getlist("token")
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(candidate.encode(), expected.encode())
    return matched


def _mailgun_signature_ok(deps: Deps, fields: dict[str, bytes]) -> bool:
    intake = deps.settings.intake
    return email_providers.mailgun_signature_ok(
        intake.mailgun_signing_key or "",
        _text(fields.get("timestamp")) or "",
        _text(fields.get("token")) or "",
        _text(fields.get("signature")) or "",
        now=time.time(),
        tolerance=intake.mailgun_max_age_seconds,
    )


# --- answers ---------------------------------------------------------------------------------


def _mailgun_unauthorized(detail: str) -> Response:
    log.info("email.rejected", extra={"source": "mailgun", "reason": "auth"})
    return _unauthorized(detail)


def _unauthorized(detail: str) -> Response:
    response = problem(401, "Unauthorized", detail, slug="email-auth")
    response.headers["WWW-Authenticate"] = 'Basic realm="bridge email intake"'
    return response


def _unsupported(detail: str) -> Response:
    return problem(415, "Unsupported Media Type", detail, slug="content-type")


def _refuse_mailgun(detail: str) -> Response:
    # 406 is Mailgun's "rejected, do not retry": the same post can never be accepted.
    log.info("email.rejected", extra={"source": "mailgun", "reason": "format"})
    return problem(406, "Unreadable email", detail, slug="email-format")
