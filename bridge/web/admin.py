"""The admin API (CONTRACT section 7): dead letters, replays and reporters' personal data.

Everything lives under ``/api/v1/admin/`` and needs ``Authorization: Bearer <BRIDGE_ADMIN_TOKEN>``,
compared in constant time. The chatbot's API token is a different secret and never works here
(the configuration refuses the two being equal).

**Off unless configured**: without ``BRIDGE_ADMIN_TOKEN`` the blueprint is not registered at all
(``create_app``), so every admin URL is an ordinary unknown URL and there is no surface to probe.
With a token, a missing or wrong one is ``401``. Errors are ``application/problem+json``.

- ``GET  /api/v1/admin/dead-letters``: dead jobs (kind, tracking ID, attempts, last error with
  addresses masked, times), newest first; ``?limit=`` (default 100, at most 1000).
- ``POST /api/v1/admin/dead-letters/<job id>/replay``: a fresh retry horizon, queued again;
  ``404`` for an unknown job, ``409`` for one that is not dead.
- ``POST /api/v1/admin/dead-letters/replay-all``: every dead job.
- ``GET  /api/v1/admin/reporters/export?email=<address>``: everything held about the reporter (audited).
- ``POST /api/v1/admin/reporters/erase`` ``{"email": ..., "redact_tracker": false}``: erase it (audited).
- ``GET  /api/v1/admin/erasures``: the audit log (never an address), newest first; ``?limit=``.
- ``POST /api/v1/admin/explain``: what the bridge would decide about a report (fields, or
  ``{"event": {...}}``), without filing or storing anything; sprints are not asked for (the web
  process never calls a tracker: ``python -m bridge explain --online`` does).
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from flask import Blueprint, Response, request
from pydantic import ValidationError

from bridge.adapters.mail import mask_addresses
from bridge.bootstrap import current_deps, personal_data
from bridge.operations import replay_dead_letters
from bridge.pipeline.filing.explain import Candidate, ExplainFields, NoSprints, NotAReport, candidate_from_event
from bridge.pipeline.filing.explain import explain as explain_report
from bridge.pipeline.filing.explain_output import LANGS
from bridge.pipeline.filing.explain_output import as_json as explanation_json
from bridge.pipeline.intake.fields import value_problem
from bridge.pipeline.notifying.ticket_view import iso_utc
from bridge.pipeline.privacy.gdpr import ADMIN_API_ACTOR, AuditRecord
from bridge.web.chatbot import field_errors
from bridge.web.problems import problem

log = logging.getLogger(__name__)

bp = Blueprint("admin", __name__, url_prefix="/api/v1/admin")

_MAX_EMAIL = 320
_MAX_LIMIT = 1000


@bp.before_app_request
def _authenticate() -> Response | None:
    """Guards every path under the prefix, routed or not, before routing errors (404/405) can show
    which admin URLs exist."""
    if request.path.rstrip("/") != bp.url_prefix and not request.path.startswith(f"{bp.url_prefix}/"):
        return None
    expected = current_deps().settings.admin.token or ""  # registered only when a token is set
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _no_store(_unauthorized("send Authorization: Bearer <admin token>"))
    if not hmac.compare_digest(token.strip().encode(), expected.encode()):
        return _no_store(_unauthorized("the bearer token is not valid", error="invalid_token"))
    return None


@bp.after_request
def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"  # personal data: no shared or browser caches
    return response


# --- dead letters ---------------------------------------------------------------------------------


@bp.get("/dead-letters")
def dead_letters() -> Response:
    limit = _limit()
    if isinstance(limit, Response):
        return limit
    rows = current_deps().store.dead_letters(limit=limit)
    items = [
        {
            "id": job.id,
            "kind": job.kind,
            "lane": job.lane,
            "tracking_id": tracking_id,
            "subject_id": job.subject_id,
            "attempts": job.attempts,
            "last_error": mask_addresses(job.last_error) if job.last_error else None,
            "request_id": job.request_id,
            "created_at": iso_utc(job.created_at),
            "updated_at": iso_utc(job.updated_at),
            "finished_at": iso_utc(job.finished_at) if job.finished_at else None,
        }
        for job, tracking_id in rows
    ]
    return _json({"dead_letters": items})


@bp.post("/dead-letters/<int:job_id>/replay")
def replay(job_id: int) -> Response:
    deps = current_deps()
    if job_id >= 2**63 or deps.store.job(job_id) is None:  # no id that large (SQLite cannot bind it: 500)
        return problem(404, "Unknown job", f"there is no job {job_id}", slug="unknown-job")
    if not replay_dead_letters(deps, [job_id]):
        return problem(409, "Not a dead letter", f"job {job_id} is not dead; it was left alone", slug="not-dead")
    log.info("admin.replayed", extra={"job_id": job_id})
    return _json({"replayed": [job_id]})


@bp.post("/dead-letters/replay-all")
def replay_all() -> Response:
    deps = current_deps()
    replayed = replay_dead_letters(deps, None)
    log.info("admin.replayed_all", extra={"count": len(replayed)})
    return _json({"replayed": replayed})


# --- personal data --------------------------------------------------------------------------------


@bp.get("/reporters/export")
def export() -> Response:
    email = _email(request.args.get("email", "").replace(" ", "+"))
    if isinstance(email, Response):
        return email
    result = personal_data(current_deps()).export(email, actor=ADMIN_API_ACTOR)
    response = _json(result.document)
    response.headers["Content-Disposition"] = f'attachment; filename="personal-data-{result.audit.reference}.json"'
    return response


@bp.post("/reporters/erase")
def erase() -> Response:
    if not request.is_json:
        return problem(415, "Unsupported Media Type", "send application/json", slug="content-type")
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # absurdly deep nesting
        body = None
    if not isinstance(body, dict):
        return problem(400, "Malformed JSON", "the body must be a JSON object", slug="malformed")
    errors = []
    redact = body.get("redact_tracker", False)
    if not isinstance(redact, bool):
        errors.append({"field": "redact_tracker", "message": "must be true or false"})
    unknown = sorted(set(body) - {"email", "redact_tracker"})
    errors += [{"field": name, "message": "unknown field"} for name in unknown]
    raw_email = body.get("email")
    if not isinstance(raw_email, str):
        errors.append({"field": "email", "message": "required: the reporter's email address"})
    if errors:
        return problem(400, "Invalid request", "the request has invalid fields", slug="validation", errors=errors)
    assert isinstance(raw_email, str)
    email = _email(raw_email)
    if isinstance(email, Response):
        return email
    audit = personal_data(current_deps()).erase(email, actor=ADMIN_API_ACTOR, redact_tracker=bool(redact))
    return _json(audit.as_json())


@bp.get("/erasures")
def erasures() -> Response:
    limit = _limit()
    if isinstance(limit, Response):
        return limit
    rows = current_deps().store.erasures(limit=limit)
    return _json({"erasures": [AuditRecord.of(row).as_json() for row in rows]})


# --- tuning the mappings --------------------------------------------------------------------------

_EXPLAIN_OPTIONS = {"lang"}


@bp.post("/explain")
def explain() -> Response:
    """The decisions of ``bridge.pipeline.filing.explain`` for the report in the body; nothing is written."""
    if not request.is_json:
        return problem(415, "Unsupported Media Type", "send application/json", slug="content-type")
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # absurdly deep nesting
        body = None
    if not isinstance(body, dict):
        return problem(400, "Malformed JSON", "the body must be a JSON object", slug="malformed")
    lang = body.get("lang", "en")
    errors: list[dict[str, str]] = []
    if lang not in LANGS:
        errors.append({"field": "lang", "message": "must be da or en"})
    report = {key: value for key, value in body.items() if key not in _EXPLAIN_OPTIONS}
    candidate: Candidate | None = None
    try:
        if "event" in report:
            errors += [
                {"field": name, "message": "unknown field beside event"} for name in sorted(report) if name != "event"
            ]
            candidate = candidate_from_event(report["event"])
        else:
            candidate = ExplainFields.model_validate(report).candidate()
    except ValidationError as exc:
        errors += [
            {**error, "field": _event_field(error["field"]) if "event" in report else error["field"]}
            for error in field_errors(exc)
        ]
    except NotAReport as exc:
        errors.append({"field": "event.type", "message": str(exc)})
    if errors or candidate is None:
        return problem(400, "Invalid request", "the report has invalid fields", slug="validation", errors=errors)
    deps = current_deps()
    explanation = explain_report(candidate, mappings=deps.mappings, settings=deps.settings, sprints=NoSprints())
    return _json(explanation_json(explanation, lang=lang))


# --- helpers --------------------------------------------------------------------------------------


def _event_field(field: str) -> str:
    """A field of the chatbot event, named from the body's root (``event.report.title``)."""
    return "event" if field == "(body)" else f"event.{field}"


def _email(value: str) -> str | Response:
    email = value.strip()
    if not email:
        return problem(400, "Missing email", "give the reporter's address", slug="email")
    if len(email) > _MAX_EMAIL or "@" not in email or any(ch.isspace() for ch in email):
        return problem(400, "Invalid email", "that is not an email address", slug="email")
    refused = value_problem(email)
    if refused is not None:
        return problem(
            400, "Invalid email", f"email {refused}", slug="email", errors=[{"field": "email", "message": refused}]
        )
    return email


def _limit() -> int | Response:
    raw = request.args.get("limit", "100")
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= _MAX_LIMIT:
        return problem(400, "Invalid limit", f"limit must be a number from 1 to {_MAX_LIMIT}", slug="limit")
    return limit


def _json(body: dict[str, Any]) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), mimetype="application/json")


def _unauthorized(detail: str, *, error: str | None = None) -> Response:
    response = problem(401, "Unauthorized", detail, slug="unauthorized")
    response.headers["WWW-Authenticate"] = (
        f'Bearer realm="bridge-admin", error="{error}"' if error else 'Bearer realm="bridge-admin"'
    )
    return response
