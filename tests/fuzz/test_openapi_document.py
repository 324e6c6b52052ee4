"""``bridge/web/openapi.yaml`` stays in step with the code: every route, the chatbot event schema."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from bridge import create_app
from bridge.bootstrap import Deps
from bridge.pipeline.intake.chatbot import chatbot_event
from bridge.web.openapi import document_for, openapi_document

IMPLICIT_METHODS = {"HEAD", "OPTIONS"}  # added by Flask to every route


def _route_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def _routes(app: Flask) -> dict[str, set[str]]:
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        routes.setdefault(_route_path(rule.rule), set()).update((rule.methods or set()) - IMPLICIT_METHODS)
    return routes


def _documented(document: dict[str, Any]) -> dict[str, set[str]]:
    return {
        path: {method.upper() for method in item if method in ("get", "post", "put", "patch", "delete")}
        for path, item in document["paths"].items()
    }


def test_every_route_is_documented_with_its_methods(make_deps: Callable[..., Deps], app: Flask) -> None:
    """The document names exactly the app's routes and methods: all of them with the admin API on,
    and the served document (admin paths left out) those of an app with it off."""
    with_admin = create_app(deps=make_deps(admin={"token": "admin-token-for-the-route-list"}))
    assert _documented(openapi_document()) == _routes(with_admin)
    assert _documented(document_for("https://bridge.example", admin=False)) == _routes(app)


def test_served_with_the_public_url_as_server(client: FlaskClient) -> None:
    """``GET /openapi.json`` is the YAML document with ``servers`` set to ``server.public_url``."""
    answer = client.get("/openapi.json")
    assert answer.status_code == 200
    assert answer.mimetype == "application/json"
    body = answer.get_json()
    assert body["openapi"].startswith("3.1.")
    assert body["servers"] == [{"url": "https://bridge.example"}]
    assert body == document_for("https://bridge.example", admin=False)  # the test settings have no admin token
    assert answer.headers["X-Request-ID"]


def test_every_error_answer_is_a_problem_or_a_page() -> None:
    """Every 4xx/5xx is described as ``application/problem+json`` (or HTML for the status page)."""
    document = openapi_document()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            for code, response in operation["responses"].items():
                response = _resolve(document, response)
                if int(code) >= 400:
                    expected = {"text/html"} if path == "/t/{tracking_id}" else {"application/problem+json"}
                    if path == "/readyz":
                        expected = {"application/json"}
                    assert set(response["content"]) == expected, (method, path, code)


def test_chatbot_event_schema_matches_the_pydantic_models() -> None:
    """Required fields, lengths, counts and nullability of the chatbot events match ``pipeline/intake/chatbot.py``."""
    document = openapi_document()
    models = chatbot_event.json_schema()
    for name in ("ReportCreated", "ReportFollowup"):
        _compare(models, models["$defs"][name], document, document["components"]["schemas"][name], name)


LIMITS = ("maxLength", "minLength", "maxItems", "maxProperties", "const")


def _compare(models: dict[str, Any], model: dict[str, Any], document: dict[str, Any], doc: Any, where: str) -> None:
    model, doc = _resolve(models, model), _resolve(document, doc)
    model_nullable, model = _split_null(model)
    doc_nullable, doc = _split_null(doc)
    assert model_nullable == doc_nullable, f"{where}: nullable"
    for limit in LIMITS:
        assert model.get(limit) == doc.get(limit), f"{where}: {limit}"
    if "propertyNames" in model:
        assert model["propertyNames"] == doc.get("propertyNames"), f"{where}: propertyNames"
    if "properties" in model:
        assert set(model.get("required", [])) == set(doc.get("required", [])), f"{where}: required"
        assert set(model["properties"]) == set(doc.get("properties", {})), f"{where}: properties"
        for prop, sub in model["properties"].items():
            _compare(models, sub, document, doc["properties"][prop], f"{where}.{prop}")
    if "items" in model:
        _compare(models, model["items"], document, doc["items"], f"{where}[]")


def _resolve(root: dict[str, Any], schema: Any) -> Any:
    """Follow ``$ref`` and merge single-branch ``allOf`` (used to add a description to a reference)."""
    while isinstance(schema, dict) and ("$ref" in schema or "allOf" in schema):
        if "$ref" in schema:
            target: Any = root
            for part in schema["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            schema = {**{k: v for k, v in schema.items() if k != "$ref"}, **target}
        else:
            (branch,) = schema["allOf"]
            schema = {**{k: v for k, v in schema.items() if k != "allOf"}, **_resolve(root, branch)}
    return schema


def _split_null(schema: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """(accepts null, the schema of the other values) for pydantic's and the document's spellings."""
    branches = schema.get("anyOf")
    if branches and {"type": "null"} in branches:
        (other,) = [b for b in branches if b != {"type": "null"}]
        return True, other
    kind = schema.get("type")
    if isinstance(kind, list) and "null" in kind:
        rest = [k for k in kind if k != "null"]
        return True, {**schema, "type": rest[0] if len(rest) == 1 else rest}
    return False, schema


def test_problem_schema_names_the_rfc_9457_members() -> None:
    """The Problem schema carries ``type``, ``title``, ``status``, ``detail`` and ``errors[]`` (and ``retry_after``)."""
    problem = openapi_document()["components"]["schemas"]["Problem"]
    assert set(problem["properties"]) == {"type", "title", "status", "detail", "errors", "retry_after"}
    assert set(problem["required"]) == {"type", "title", "status"}
    assert "application/problem+json" in openapi_document()["components"]["responses"]["BadRequest"]["content"]
