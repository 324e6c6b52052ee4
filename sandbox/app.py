"""The Flask app factory: blueprints, fault injection in front of the tracker APIs, the request log."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from flask import Flask, Response, g, request

from sandbox import control, devpage, gitlab_api, jira_agile_api, jira_api
from sandbox.config import SandboxConfig
from sandbox.faults import Decision, Rejection
from sandbox.state import Sandbox
from sandbox.web import reply, sandbox

TRACKER_PREFIXES = (("/api/v4/", "gitlab"), ("/rest/", "jira"))


def tracker_of(path: str) -> str | None:
    return next((tracker for prefix, tracker in TRACKER_PREFIXES if path.startswith(prefix)), None)


def create_app(config: SandboxConfig | Mapping[str, Any] | None = None, *, start_webhooks: bool = True) -> Flask:
    """The sandbox app; its :class:`~sandbox.state.Sandbox` is ``app.extensions["sandbox"]``."""
    if config is None:
        config = SandboxConfig()
    elif not isinstance(config, SandboxConfig):
        config = SandboxConfig.from_mapping(dict(config))
    app = Flask(__name__)
    app.secret_key = secrets.token_hex(16)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    state = Sandbox(config)
    app.extensions["sandbox"] = state
    for blueprint in (
        gitlab_api.bp,
        jira_api.bp,
        jira_api.hooks_bp,
        jira_agile_api.bp,
        control.bp,
        devpage.bp,
    ):
        app.register_blueprint(blueprint)
    app.before_request(_inject_faults)
    app.after_request(_finish)
    app.register_error_handler(404, _not_found)
    app.register_error_handler(405, _not_allowed)
    if start_webhooks:
        state.dispatcher.start()
    return app


def _endpoint() -> str:
    return (request.endpoint or "unknown").rsplit(".", 1)[-1]


def _inject_faults() -> Response | None:
    g.started = time.time()
    tracker = tracker_of(request.path)
    if tracker is None:
        return None
    sb = sandbox()
    with sb.lock:
        decision = sb.faults.decide(tracker, _endpoint(), request.path, request.method, time.time())
    g.decision = decision
    if decision.latency_s:
        time.sleep(decision.latency_s)
    if decision.rejection is not None:
        return fault_response(tracker, decision.rejection)
    return None


def fault_response(tracker: str, rejection: Rejection) -> Response:
    """The body a real server (or its proxy) sends for the injected status."""
    status = rejection.status
    phrase = HTTPStatus(status).phrase
    if tracker == "gitlab" and status == 429:
        response = Response("Retry later\n", status=429, mimetype="text/plain")
    elif tracker == "gitlab":
        response = reply({"message": f"{status} {phrase}"}, status)
    else:
        text = "Rate limit exceeded." if status == 429 else f"{phrase} (sandbox fault: {rejection.reason})"
        response = reply({"errorMessages": [text], "errors": {}}, status)
    for key, value in rejection.headers.items():
        response.headers[key] = value
    response.headers["X-Sandbox-Fault"] = rejection.reason
    return response


def _finish(response: Response) -> Response:
    tracker = tracker_of(request.path)
    if tracker is None:
        return response
    decision: Decision | None = g.get("decision")
    fault = response.headers.get("X-Sandbox-Fault")
    if decision is not None and decision.close_sprint and response.status_code == 201:
        # The sprint closes while the create's answer is on its way: the client plans into it next.
        _close_sprint(tracker, decision)
    if decision is not None and decision.create_then_502 and response.status_code == 201 and _spend(decision):
        response = Response(
            "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>",
            status=502,
            mimetype="text/html",
        )
        fault = "create_then_502"
        response.headers["X-Sandbox-Fault"] = fault
    started: float = g.get("started", time.time())
    sandbox().log_request(
        {
            "time": started,
            "method": request.method,
            "path": request.path,
            "query": request.query_string.decode(errors="replace"),
            "status": response.status_code,
            "tracker": tracker,
            "endpoint": _endpoint(),
            "fault": fault,
            "duration_ms": int((time.time() - started) * 1000),
        }
    )
    return response


def _spend(decision: Decision) -> bool:
    """Use one unit of the create-then-502 budget (the issue was created; the reply will be lost)."""
    rule = decision.create_then_502
    with sandbox().lock:
        if rule is None or rule.create_then_502 <= 0:
            return False
        rule.create_then_502 -= 1
        return True


def _close_sprint(tracker: str, decision: Decision) -> None:
    """Use one unit of the close-sprint budget: the current sprint closes (and the next starts)."""
    rule = decision.close_sprint
    sb = sandbox()
    with sb.lock:
        if rule is None or rule.close_sprint_after_create <= 0:
            return
        rule.close_sprint_after_create -= 1
        sb.close_sprint(tracker)


def _not_found(error: Exception) -> Response:
    tracker = tracker_of(request.path)
    if tracker == "jira":
        return reply({"errorMessages": ["Not Found"], "errors": {}}, 404)
    return reply({"message": "404 Not Found"} if tracker == "gitlab" else {"error": "not found"}, 404)


def _not_allowed(error: Exception) -> Response:
    tracker = tracker_of(request.path)
    if tracker == "jira":
        return reply({"errorMessages": ["Method Not Allowed"], "errors": {}}, 405)
    return reply({"message": "405 Method Not Allowed"} if tracker == "gitlab" else {"error": "method not allowed"}, 405)
