"""Control and inspection API under ``/_sandbox`` (no auth: a loopback tool for tests and developers)."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, request

from sandbox import devactions
from sandbox.faults import FaultRule
from sandbox.gitlab_model import GitLabError
from sandbox.jira_model import JiraError
from sandbox.web import json_body, reply, sandbox, truthy

bp = Blueprint("control", __name__, url_prefix="/_sandbox")


@bp.get("/state")
def state() -> Response:
    return reply(sandbox().snapshot())


@bp.get("/requests")
def requests_log() -> Response:
    """The API request log; filter with ``tracker``, ``endpoint``, ``method``, ``status``, ``since`` (id)."""
    sb = sandbox()
    args = request.args
    since = int(args.get("since", 0) or 0)
    with sb.lock:
        entries = [dict(e) for e in sb.requests if e["id"] > since]
    for key in ("tracker", "endpoint", "method"):
        if args.get(key):
            entries = [e for e in entries if e[key] == args[key]]
    if args.get("status"):
        entries = [e for e in entries if str(e["status"]) == args["status"]]
    return reply({"count": len(entries), "requests": entries})


@bp.get("/webhooks")
def webhooks_log() -> Response:
    """Deliveries with attempts and outcome; filter with ``tracker``, ``event``, ``outcome``, ``subject``
    (``acme/support#12``, ``SUP-3``) and ``since`` (a delivery id: only later ones)."""
    sb = sandbox()
    deliveries = sb.dispatcher.deliveries()
    since = int(request.args.get("since", 0) or 0)
    if since:
        deliveries = [d for d in deliveries if d["id"] > since]
    for key in ("tracker", "event", "outcome", "subject"):
        if request.args.get(key):
            deliveries = [d for d in deliveries if d[key] == request.args[key]]
    return reply({"count": len(deliveries), "idle": sb.dispatcher.idle(), "deliveries": deliveries})


@bp.post("/reset")
def reset() -> Response:
    sandbox().reset()
    return reply({"reset": True})


@bp.post("/webhook-target")
def webhook_target() -> Response:
    """``{"tracker": "gitlab"|"jira", "url": "..."|null, "secret": "..."}`` replaces the start-up target."""
    body = json_body()
    tracker = body.get("tracker")
    if tracker not in ("gitlab", "jira"):
        return reply({"error": "tracker must be gitlab or jira"}, 400)
    url, secret = body.get("url"), body.get("secret")
    if (url is not None and not isinstance(url, str)) or (secret is not None and not isinstance(secret, str)):
        return reply({"error": "url and secret must be strings or null"}, 400)
    sb = sandbox()
    sb.set_target(tracker, url, secret)
    return reply(sb.snapshot()["webhook_targets"])


def _faults_json() -> dict[str, Any]:
    sb = sandbox()
    now = time.time()
    with sb.lock:
        return {"rules": [r.to_json(now) for r in sb.faults.rules]}


@bp.get("/faults")
def get_faults() -> Response:
    return reply(_faults_json())


@bp.post("/faults")
def set_faults() -> Response:
    """``{"rules": [...]}`` replaces all rules; a single rule object is added; ``"seed"`` re-seeds."""
    sb = sandbox()
    body = json_body()
    now = time.time()
    try:
        if "rules" in body:
            raw = body["rules"]
            if not isinstance(raw, list):
                raise ValueError("rules must be a list")
            rules = [FaultRule.from_json(r, now=now) for r in raw]
            replace = True
        else:
            extra = {k: v for k, v in body.items() if k != "seed"}
            rules = [FaultRule.from_json(extra, now=now)] if extra else []
            replace = False
    except ValueError as exc:
        return reply({"error": str(exc)}, 400)
    with sb.lock:
        if replace:
            sb.faults.rules = rules
        else:
            sb.faults.rules.extend(rules)
        if "seed" in body:
            sb.faults.rng.seed(body["seed"])
    return reply(_faults_json())


@bp.delete("/faults")
def clear_faults() -> Response:
    sb = sandbox()
    with sb.lock:
        sb.faults.rules = []
    return reply(_faults_json())


@bp.post("/sprints/close")
def close_sprint() -> Response:
    """``{"tracker": "jira"|"gitlab", "sprint": <id>, "start_next": true}``: close the current sprint
    (or the one given). Jira completes it and starts the first future sprint; GitLab closes the
    milestone. No webhooks are sent (the bridge does not subscribe to sprint events)."""
    body = json_body()
    tracker = body.get("tracker")
    if tracker not in ("gitlab", "jira"):
        return reply({"error": "tracker must be gitlab or jira"}, 400)
    sprint_id = body.get("sprint")
    if sprint_id is not None and (isinstance(sprint_id, bool) or not isinstance(sprint_id, int)):
        return reply({"error": "sprint must be a sprint or milestone id"}, 400)
    try:
        result = sandbox().close_sprint(tracker, sprint_id, start_next=truthy(body.get("start_next", True)))
    except (JiraError, GitLabError) as exc:
        return reply({"error": str(exc)}, exc.status)
    return reply(result)


@bp.post("/act")
def act() -> Response:
    """Act as the developer: ``{"tracker", "issue", "action", "text", "internal", "resolution", "severity",
    "category"}``."""
    body = json_body()
    try:
        message = devactions.run(
            sandbox(),
            devactions.Act(
                tracker=str(body.get("tracker", "")),
                issue=str(body.get("issue", "")),
                action=str(body.get("action", "")),
                text=str(body.get("text") or ""),
                internal=truthy(body.get("internal", False)),
                resolution=str(body.get("resolution") or "fixed"),
                severity=str(body.get("severity") or ""),
                category=str(body.get("category") or ""),
            ),
        )
    except devactions.ActionError as exc:
        return reply({"error": str(exc)}, 400)
    return reply({"ok": True, "message": message})
