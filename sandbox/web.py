"""Small helpers shared by the API blueprints: the current sandbox, request parameters, JSON replies."""

from __future__ import annotations

from typing import Any, cast

from flask import Response, current_app, jsonify, request

from sandbox.state import Sandbox


def sandbox() -> Sandbox:
    return cast(Sandbox, current_app.extensions["sandbox"])


def params() -> dict[str, Any]:
    """Query string, form and JSON body merged (the body wins), as GitLab's Grape API accepts them."""
    merged: dict[str, Any] = dict(request.args.items())
    merged.update(request.form.to_dict())
    body = request.get_json(silent=True) if request.data else None
    if isinstance(body, dict):
        merged.update(body)
    return merged


def json_body() -> dict[str, Any]:
    body = request.get_json(silent=True) if request.data else None
    return body if isinstance(body, dict) else {}


def reply(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = jsonify(data)
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def empty(status: int = 204) -> Response:
    return Response(status=status)


def truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")
