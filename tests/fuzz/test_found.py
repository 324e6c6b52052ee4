"""Inputs the fuzzing found that once got a 5xx, minimised; each now gets the documented 4xx."""

from __future__ import annotations

import hashlib
import hmac

from flask import Flask

from bridge import create_app
from bridge.bootstrap import Deps
from tests.conftest import signed_headers
from tests.fuzz.conftest import ADMIN_TOKEN, GITLAB_SECRET, JIRA_SECRET

DEEP = b"[" * 100_000 + b"]" * 100_000
"""Valid JSON nested deeper than the JSON decoder's recursion limit (it raised RecursionError)."""


def _app(deps: Deps) -> Flask:
    return create_app(deps=deps)


def test_deeply_nested_chatbot_body_is_malformed_json(fuzz_deps: Deps) -> None:
    """A signed chatbot body nested too deeply to decode is a 400, not a 500."""
    answer = _app(fuzz_deps).test_client().post("/webhooks/chatbot", data=DEEP, headers=signed_headers(DEEP))
    assert answer.status_code == 400
    assert answer.get_json()["type"].endswith("/malformed-json")


def test_deeply_nested_gitlab_body_is_not_a_webhook(fuzz_deps: Deps) -> None:
    """A GitLab body nested too deeply to decode is a 400, not a 500."""
    headers = {"X-Gitlab-Token": GITLAB_SECRET, "Content-Type": "application/json"}
    answer = _app(fuzz_deps).test_client().post("/webhooks/gitlab", data=DEEP, headers=headers)
    assert answer.status_code == 400


def test_deeply_nested_jira_body_is_not_a_webhook(fuzz_deps: Deps) -> None:
    """A signed Jira body nested too deeply to decode is a 400, not a 500."""
    signature = "sha256=" + hmac.new(JIRA_SECRET.encode(), DEEP, hashlib.sha256).hexdigest()
    headers = {"X-Hub-Signature": signature, "Content-Type": "application/json"}
    answer = _app(fuzz_deps).test_client().post("/webhooks/jira", data=DEEP, headers=headers)
    assert answer.status_code == 400


def test_replaying_a_job_id_beyond_64_bits_is_unknown(fuzz_deps: Deps) -> None:
    """A job id SQLite cannot bind (>= 2**63) is an unknown job (404), not a 500."""
    client = _app(fuzz_deps).test_client()
    for job_id in (2**63 - 1, 2**63, 10**30):
        answer = client.post(
            f"/api/v1/admin/dead-letters/{job_id}/replay", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        assert answer.status_code == 404, job_id
        assert answer.get_json()["type"].endswith("/unknown-job")
