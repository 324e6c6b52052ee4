"""The intake ceiling's yardstick: an empty Flask endpoint served by the same gunicorn settings.

``gunicorn -c gunicorn.conf.py bench.baseline_app:app``: one POST route that reads the body and
answers ``202 {}``, so the ratio bridge/baseline prices only what the bridge does per report
(verify, validate, store, queue, log), not Flask, gunicorn or the load generator.
"""

from __future__ import annotations

from flask import Flask, Response, request

app = Flask(__name__)


@app.post("/webhooks/chatbot")
def receive() -> Response:
    request.get_data(cache=False)
    return Response("{}", status=202, mimetype="application/json")


@app.get("/healthz")
def healthz() -> Response:
    return Response('{"status": "ok"}', mimetype="application/json")
