"""``POST /webhooks/gitlab`` and ``POST /webhooks/jira`` (CONTRACT section 5).

Authenticate, store the delivery once, queue the work, answer 200 fast. GitLab disables
hooks that fail, so anything valid but irrelevant is acknowledged, not refused.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy.exc import DBAPIError

from bridge import metrics
from bridge.bootstrap import Deps, current_deps
from bridge.pipeline.following.events import NotOurs, TrackerHook, parse_gitlab, parse_jira
from bridge.pipeline.following.webhooks import accept_tracker_hook
from bridge.web.bodies import read_body
from bridge.web.problems import problem
from bridge.web.strict_json import loads_strict

log = logging.getLogger(__name__)

bp = Blueprint("tracker_hooks", __name__)


@bp.post("/webhooks/gitlab")
def gitlab() -> Response:
    deps = current_deps()
    secret = deps.settings.trackers.gitlab.webhook_secret
    if not secret:
        _rejected("gitlab", "not_configured")
        return problem(401, "Not configured", "GitLab webhooks are not configured (GITLAB_WEBHOOK_SECRET)")
    given = request.headers.get("X-Gitlab-Token", "")
    if not hmac.compare_digest(given.encode(), secret.encode()):
        _rejected("gitlab", "token")
        return problem(401, "Invalid token", "X-Gitlab-Token does not match the configured secret", slug="token")
    body = _body(deps)
    payload = _json_object(body)
    if payload is None:
        _rejected("gitlab", "malformed")
        return problem(400, "Not a GitLab webhook", "expected a JSON object", slug="malformed-json")
    event = request.headers.get("X-Gitlab-Event", "")
    if "object_kind" not in payload:
        # Group hooks also send member and subgroup events, which have no object_kind. A 4xx would
        # count as a failure, and GitLab disables hooks that keep failing (CONTRACT section 5).
        return _ignored("gitlab", f"GitLab event {event[:60]!r} without object_kind is not used")
    key = request.headers.get("Idempotency-Key") or f"{request.headers.get('X-Gitlab-Event-UUID', '')}:{_digest(body)}"
    try:
        hook = parse_gitlab(event, payload)
    except NotOurs as exc:
        return _ignored("gitlab", str(exc))
    return _accept(deps, hook, key)


@bp.post("/webhooks/jira")
def jira() -> Response:
    deps = current_deps()
    secret = deps.settings.trackers.jira.webhook_secret
    if not secret:
        _rejected("jira", "not_configured")
        return problem(401, "Not configured", "Jira webhooks are not configured (JIRA_WEBHOOK_SECRET)")
    body = _body(deps)
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    given = request.headers.get("X-Hub-Signature", "").strip().lower()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        _rejected("jira", "signature")
        return problem(401, "Invalid signature", "X-Hub-Signature is not sha256=<HMAC of the body>", slug="signature")
    payload = _json_object(body)
    if payload is None or "webhookEvent" not in payload:
        _rejected("jira", "malformed")
        return problem(400, "Not a Jira webhook", "expected a JSON object with webhookEvent", slug="malformed-json")
    key = request.headers.get("X-Atlassian-Webhook-Identifier") or _digest(body)
    try:
        hook = parse_jira(payload)
    except NotOurs as exc:
        return _ignored("jira", str(exc))
    return _accept(deps, hook, key)


def _body(deps: Deps) -> bytes:
    """The request body, at most ``limits.tracker_webhook_max_bytes``: above, Werkzeug raises 413
    (a problem answer) from the Content-Length before reading anything."""
    request.max_content_length = deps.settings.limits.tracker_webhook_max_bytes
    return read_body()


def _accept(deps: Deps, hook: TrackerHook, key: str) -> Response:
    try:
        outcome = accept_tracker_hook(deps.store, hook, delivery_key=key)
    except NotOurs as exc:
        return _ignored(hook.tracker, str(exc))
    except DBAPIError:
        log.exception("tracker_hook.store_failed", extra={"tracker": hook.tracker})
        metrics.webhook(hook.tracker, "failed")
        unavailable = problem(503, "Service Unavailable", "the event could not be stored; retry", slug="store")
        unavailable.headers["Retry-After"] = "5"
        return unavailable
    log.info(
        "tracker_hook.accepted",
        extra={
            "tracker": hook.tracker,
            "hook_event": hook.event,
            "tracking_id": hook.tracking_id,
            "duplicate": outcome.duplicate,
        },
    )
    metrics.webhook(hook.tracker, "duplicate" if outcome.duplicate else "accepted")
    return jsonify(status="duplicate" if outcome.duplicate else "accepted", tracking_id=hook.tracking_id)


def _ignored(tracker: str, reason: str) -> Response:
    log.info("tracker_hook.ignored", extra={"tracker": tracker, "reason": reason})
    metrics.webhook(tracker, "ignored")
    return jsonify(status="ignored", reason=reason)


def _rejected(tracker: str, reason: str) -> None:
    log.info("tracker_hook.rejected", extra={"tracker": tracker, "reason": reason})
    metrics.webhook(tracker, "rejected")


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        payload = loads_strict(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: deeply nested JSON
        return None
    return payload if isinstance(payload, dict) else None


def _digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()
