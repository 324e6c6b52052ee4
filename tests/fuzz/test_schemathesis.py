"""Schemathesis against ``bridge/web/openapi.yaml``: every operation, called in-process on the app
built from the test fixtures (a real SQLite file, fake trackers), with valid credentials.

Checks: no 5xx, and every answer conforms to the document (status code, content type, headers,
body schema). The run is bounded and derandomized (fixed seed), so it repeats exactly.

Credentials follow what was generated: a request that carries a credential (a signature
header, a bearer/basic token, ``?token=``, the GitLab token, Mailgun's signature fields) gets a
valid one in its place; a request generated without one, or a negative case about the signature
header itself, is sent as it is, so the refusals are exercised too. ``SEEDED`` placeholders
stand for a ticket created before the run.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import time
from typing import Any

import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet
from schemathesis.generation.meta import negated_parameters
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bridge.tracking import status_signature, unsubscribe_signature
from bridge.web.openapi import document_for
from bridge.web.signatures import sign
from tests.conftest import SIGNING_SECRET
from tests.fuzz.conftest import (
    ADMIN_TOKEN,
    API_TOKEN,
    EMAIL_TOKEN,
    GITLAB_SECRET,
    JIRA_SECRET,
    MAILGUN_KEY,
    PUBLIC_URL,
    REPORTER,
    SECRET_KEY,
)

SEEDED = "ST-SEEDED00"
"""Placeholder for the seeded ticket's tracking ID (path parameters and follow-up bodies)."""
SEEDED_SIGNATURE = "seeded-signature"
"""Placeholder for the seeded ticket's status or unsubscribe signature (``?s=``)."""

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@schemathesis.serializer("message/rfc822")
def _rfc822(_ctx: schemathesis.SerializationContext, value: Any) -> bytes:
    """A generated message as bytes (negative cases may generate other JSON values: sent as JSON text)."""
    if isinstance(value, bytes):
        return value
    text = value if isinstance(value, str) else json.dumps(value)
    return text.encode("utf-8", "surrogatepass")


schema = schemathesis.openapi.from_dict(
    copy.deepcopy(document_for(PUBLIC_URL)),  # schemathesis may add to it; the app's copy stays as loaded
    config=schemathesis.Config.from_dict({"seed": 20261125}),
)


@schema.hook
def flatmap_case(_context: schemathesis.HookContext, case: schemathesis.Case) -> st.SearchStrategy[Any]:
    """Besides the generated case, the same request about the seeded ticket (so 200s are reached too)."""
    seeded = case.derive(keep_auth=True)
    if "tracking_id" in seeded.path_parameters:
        seeded.path_parameters["tracking_id"] = SEEDED
        if seeded.operation.path in ("/t/{tracking_id}", "/u/{tracking_id}"):
            seeded.query = {**(seeded.query or {}), "s": SEEDED_SIGNATURE}
    elif seeded.operation.path == "/api/v1/tickets":
        seeded.query = {**(seeded.query or {}), "email": REPORTER.upper()}
    elif isinstance(seeded.body, dict) and seeded.body.get("type") == "report.followup":
        seeded.body = {**seeded.body, "tracking_id": SEEDED.lower(), "reporter": {"email": REPORTER}}
    else:
        return st.just(case)
    return st.sampled_from([case, seeded])


def test_the_fuzzed_document_is_the_served_one(fuzz_app: Flask) -> None:
    """The app serves the document fuzzed here, valid OpenAPI 3.1, for its public URL."""
    served = fuzz_app.test_client().get("/openapi.json")
    assert served.status_code == 200
    assert served.get_json() == document_for(PUBLIC_URL) == schema.raw_schema
    schema.validate()


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api(case: schemathesis.Case, fuzz_app: Flask) -> None:
    """No request the document allows (or almost allows) gets a 5xx or an answer the document does not describe."""
    tracking_id = fuzz_app.config["SEEDED_TRACKING_ID"]
    _fill_in_seeded(case, tracking_id)
    headers, extra = _credentials(case)
    case.call_and_validate(app=fuzz_app, headers=headers, checks=CHECKS, **extra)


# --- helpers ---------------------------------------------------------------------------------


def _fill_in_seeded(case: schemathesis.Case, tracking_id: str) -> None:
    if case.path_parameters.get("tracking_id") == SEEDED:
        case.path_parameters["tracking_id"] = tracking_id
    if case.query and case.query.get("s") == SEEDED_SIGNATURE:
        signed = unsubscribe_signature if case.operation.path.startswith("/u/") else status_signature
        case.query["s"] = signed(SECRET_KEY, tracking_id)
    if isinstance(case.body, dict) and case.body.get("tracking_id") == SEEDED.lower():
        case.body = {**case.body, "tracking_id": tracking_id.lower()}


def _credentials(case: schemathesis.Case) -> tuple[dict[str, str], dict[str, Any]]:
    """Valid credentials in place of generated ones; ``extra`` is the exact body when it is signed."""
    path = case.operation.path
    generated = case.headers or {}
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if path == "/webhooks/chatbot" and _to_sign(case, "X-Smarttalk-Signature"):
        body = _wire_body(case)
        t = int(time.time())
        headers["X-Smarttalk-Signature"] = f"t={t},v1={sign(SIGNING_SECRET, t, body)}"
        extra["data"] = body
    elif path == "/webhooks/jira" and _to_sign(case, "X-Hub-Signature"):
        body = _wire_body(case)
        headers["X-Hub-Signature"] = "sha256=" + hmac.new(JIRA_SECRET.encode(), body, hashlib.sha256).hexdigest()
        extra["data"] = body
    elif path == "/webhooks/gitlab" and "X-Gitlab-Token" in generated:
        headers["X-Gitlab-Token"] = GITLAB_SECRET
    elif path.startswith("/api/v1/admin/") and "Authorization" in generated:
        headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
    elif path.startswith("/api/v1/") and "Authorization" in generated:
        headers["Authorization"] = f"Bearer {API_TOKEN}"
    elif path.startswith("/webhooks/email/"):
        authorization = str(generated.get("Authorization", ""))
        if authorization.lower().startswith("basic"):
            headers["Authorization"] = "Basic " + base64.b64encode(f"intake:{EMAIL_TOKEN}".encode()).decode()
        elif authorization:
            headers["Authorization"] = f"Bearer {EMAIL_TOKEN}"
        elif case.query and "token" in case.query:
            extra["params"] = {"token": EMAIL_TOKEN}
        elif path.endswith("/mailgun"):
            _sign_mailgun_fields(case)
    return headers, extra


def _to_sign(case: schemathesis.Case, name: str) -> bool:
    """Whether to put a valid signature in header ``name``: when the case has the header and is not a
    negative case about that header itself (those, and cases without it, are sent as generated)."""
    negated = {parameter.lower() for parameter, _ in negated_parameters(case._meta)}
    return name in (case.headers or {}) and name.lower() not in negated


def _wire_body(case: schemathesis.Case) -> bytes:
    """The bytes the transport would send for the generated body (signed, then sent as they are)."""
    if isinstance(case.body, NotSet):
        return b""
    serialized = case.as_transport_kwargs()
    if "json" in serialized:
        return json.dumps(serialized["json"]).encode()
    data = serialized.get("data", b"")
    return data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data or b"")


def _sign_mailgun_fields(case: schemathesis.Case) -> None:
    """A generated Mailgun form with any of the signature fields gets a valid, fresh signature."""
    if not isinstance(case.body, dict) or not {"timestamp", "token", "signature"} & case.body.keys():
        return
    timestamp, token = str(int(time.time())), str(case.body.get("token", "t0k3n"))
    signature = hmac.new(MAILGUN_KEY.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    case.body = {**case.body, "timestamp": timestamp, "token": token, "signature": signature}
