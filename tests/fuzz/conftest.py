"""The app the fuzz tests call: the shared fixtures' real SQLite file and fake trackers, with every
credential configured (chatbot, status API, admin API, email intake, Mailgun, GitLab, Jira)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask

from bridge import create_app
from bridge.bootstrap import Deps
from tests.conftest import post_event, report_event

PUBLIC_URL = "https://bridge.example"  # tests/conftest.make_settings
SECRET_KEY = "status-link-key"  # tests/conftest.make_settings
API_TOKEN = "chatbot-api-token"  # tests/conftest.make_settings
ADMIN_TOKEN = "admin-token-for-the-fuzz-run"
EMAIL_TOKEN = "email-intake-token"
MAILGUN_KEY = "mailgun-signing-key"
GITLAB_SECRET = "gitlab-webhook-secret"
JIRA_SECRET = "jira-webhook-secret"
REPORTER = "anna@kunde.dk"  # tests/conftest.report_event


@pytest.fixture
def fuzz_deps(make_deps: Callable[..., Deps]) -> Deps:
    gitlab = {"url": "https://gitlab.example", "token": "glpat-x", "project": "acme/support"}
    jira = {"url": "https://jira.example", "user": "bot@example.com", "api_token": "jira-x", "project": "SUP"}
    return make_deps(
        intake={"email_inbound_token": EMAIL_TOKEN, "mailgun_signing_key": MAILGUN_KEY},
        admin={"token": ADMIN_TOKEN},
        trackers={
            "default": "gitlab",
            "gitlab": {**gitlab, "webhook_secret": GITLAB_SECRET},
            "jira": {**jira, "board_id": 1, "webhook_secret": JIRA_SECRET},
        },
    )


@pytest.fixture
def fuzz_app(fuzz_deps: Deps) -> Flask:
    """The app, with one ticket (``app.config["SEEDED_TRACKING_ID"]``) reported by ``REPORTER``."""
    app = create_app(deps=fuzz_deps)
    answer = post_event(app.test_client(), report_event(event_id="evt_seeded"))
    assert answer.status_code == 202, answer.get_data(as_text=True)
    app.config["SEEDED_TRACKING_ID"] = answer.get_json()["tracking_id"]
    return app


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Name each schemathesis test after its operation (``test_api[POST /webhooks/chatbot]``).

    Schemathesis 4.32 names the items so, but pytest 9.2 builds node ids from the function name and
    parametrization only, so every operation's id read ``test_api``: reports, ``--lf`` and
    selection by id could not tell them apart.
    """
    for item in items:
        label = getattr(item, "operation_label", None)
        node_id = getattr(item, "_id", None)
        if label and node_id is not None and getattr(node_id, "params", "") is None and hasattr(node_id, "with_params"):
            item._id = node_id.with_params(label)
