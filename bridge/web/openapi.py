"""``GET /openapi.json``: the OpenAPI 3.1 description of every endpoint (``openapi.yaml`` beside this file).

The YAML is read once per process; ``servers`` is the configured ``server.public_url``, so the
document names the address the bridge is reached at.
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


def document_for(public_url: str) -> dict[str, Any]:
    """The served document: ``servers`` set to ``public_url``, placed after ``info``."""
    loaded = openapi_document()
    head: dict[str, Any] = {key: loaded[key] for key in ("openapi", "info") if key in loaded}
    rest = {key: value for key, value in loaded.items() if key not in head and key != "servers"}
    return {**head, "servers": [{"url": public_url.rstrip("/") or "/"}], **rest}


@functools.lru_cache(maxsize=8)
def _rendered_for(public_url: str) -> bytes:
    return json.dumps(document_for(public_url), ensure_ascii=False).encode("utf-8")


@bp.get("/openapi.json")
def openapi_json() -> Response:
    body = _rendered_for(current_deps().settings.server.public_url)
    return Response(body, mimetype="application/json")
