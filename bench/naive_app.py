"""The comparison for tracker independence: a naive synchronous handler.

It verifies nothing and stores nothing: it POSTs an issue to the tracker sandbox's GitLab API
with ``requests`` inside the request and answers when the tracker has answered. Served by the
same gunicorn settings as the bridge (``gunicorn -c gunicorn.conf.py bench.naive_app:app``), with the
bridge's ``GITLAB_URL`` and ``GITLAB_TOKEN`` pointing at the sandbox.
"""

from __future__ import annotations

import json
import os
import threading

import requests
from flask import Flask, Response, request

app = Flask(__name__)
GITLAB_URL = os.environ.get("GITLAB_URL", "http://127.0.0.1:8900")
GITLAB_TOKEN = os.environ.get("GITLAB_TOKEN", "glpat-sandbox-token")
_local = threading.local()


def _session() -> requests.Session:
    session: requests.Session | None = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
    return session


@app.post("/webhooks/chatbot")
def receive() -> Response:
    event = json.loads(request.get_data(cache=False))
    report = event.get("report") or {}
    answer = _session().post(
        f"{GITLAB_URL}/api/v4/projects/1/issues",
        headers={"PRIVATE-TOKEN": GITLAB_TOKEN},
        json={"title": str(report.get("title", "report")), "description": str(report.get("description", ""))},
        timeout=30,
    )
    if answer.status_code != 201:
        return Response(json.dumps({"error": answer.status_code}), status=502, mimetype="application/json")
    return Response(json.dumps({"issue": answer.json().get("iid")}), status=202, mimetype="application/json")


@app.get("/healthz")
def healthz() -> Response:
    return Response('{"status": "ok"}', mimetype="application/json")
