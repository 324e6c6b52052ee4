"""``GET /openapi.json``: the OpenAPI 3.1 description of every endpoint (``openapi.yaml`` beside this file).

The YAML is read once per process; ``servers`` is the configured ``server.public_url``, so the
document names the address the bridge is reached at. Without an admin token the admin API does not
exist, and the served document does not describe it either.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import yaml
from flask import Blueprint, Response

from bridge.bootstrap import current_deps

bp = Blueprint("openapi", __name__)

DOCUMENT = Path(__file__).with_name("openapi.yaml")


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The document as written in ``openapi.yaml`` (without ``servers``), loaded once. Do not modify it."""
    data = yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "paths" not in data:
        raise RuntimeError(f"{DOCUMENT} is not an OpenAPI document")
    return data


ADMIN_PREFIX = "/api/v1/admin/"


def document_for(public_url: str, *, admin: bool = True) -> dict[str, Any]:
    """The served document: ``servers`` set to ``public_url``, placed after ``info``; without
    ``admin`` the admin paths and their tag are left out."""
    loaded = openapi_document()
    head: dict[str, Any] = {key: loaded[key] for key in ("openapi", "info") if key in loaded}
    rest = {key: value for key, value in loaded.items() if key not in head and key != "servers"}
    if not admin:
        rest["paths"] = {path: item for path, item in rest["paths"].items() if not path.startswith(ADMIN_PREFIX)}
        rest["tags"] = [tag for tag in rest.get("tags", []) if tag.get("name") != "admin"]
    return {**head, "servers": [{"url": public_url.rstrip("/") or "/"}], **rest}


@functools.lru_cache(maxsize=8)
def _rendered_for(public_url: str, admin: bool) -> bytes:
    return json.dumps(document_for(public_url, admin=admin), ensure_ascii=False).encode("utf-8")


@bp.get("/openapi.json")
def openapi_json() -> Response:
    settings = current_deps().settings
    body = _rendered_for(settings.server.public_url, bool(settings.admin.token))
    return Response(body, mimetype="application/json")
