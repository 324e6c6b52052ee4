"""Tracker webhook bodies that no database can store as sent: refused with a 400 (never a 503 the
tracker retries for ever) or cleaned, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from bridge import create_app
from bridge.adapters.store.models import Notification
from bridge.bootstrap import Deps
from tests.fakes import FakeTracker
from tests.integration.test_tracker_loop import GITLAB_SECRET, file_report, hook_settings, note_hook, run_all


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bridge.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture
def deps(make_deps: Callable[..., Deps]) -> Deps:
    return make_deps(trackers=hook_settings())


@pytest.fixture
def client(deps: Deps) -> FlaskClient:
    return create_app(deps=deps).test_client()


def post_raw(client: FlaskClient, body: str) -> object:
    headers = {"Content-Type": "application/json", "X-Gitlab-Event": "Note Hook", "X-Gitlab-Token": GITLAB_SECRET}
    return client.post("/webhooks/gitlab", data=body.encode(), headers=headers)


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_numbers_json_cannot_carry_are_a_400(
    client: FlaskClient, deps: Deps, tracker: FakeTracker, number: str
) -> None:
    tracking_id = file_report(client, deps)
    body = json.dumps(note_hook(tracking_id, tracker.issues[0].key, "Vi kigger på det."))
    body = body.replace('"system": false', f'"system": false, "x": {number}')
    answer = post_raw(client, body)
    assert answer.status_code == 400  # type: ignore[attr-defined]
    assert answer.mimetype == "application/problem+json"  # type: ignore[attr-defined]


def test_a_nul_in_a_comment_is_removed_and_the_comment_relayed(
    client: FlaskClient, deps: Deps, tracker: FakeTracker
) -> None:
    tracking_id = file_report(client, deps)
    body = json.dumps(note_hook(tracking_id, tracker.issues[0].key, "Vi har fundet\u0000 fejlen."))
    assert "\\u0000" in body
    answer = post_raw(client, body)
    assert answer.status_code == 200, answer.get_data(as_text=True)  # type: ignore[attr-defined]
    run_all(deps, "relay_comment")
    ticket = deps.store.ticket_by_tracking_id(tracking_id)
    assert ticket is not None
    with deps.store.session() as session:
        comments = list(
            session.scalars(
                select(Notification.body).where(Notification.ticket_id == ticket.id, Notification.kind == "comment")
            )
        )
    assert comments == ["Vi har fundet fejlen."]
