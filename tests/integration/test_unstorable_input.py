"""Input the database can never hold is refused with a 400 naming the field, on SQLite and PostgreSQL.

PostgreSQL refuses NUL in text and NaN/Infinity in JSON. Before, such a chatbot report failed its
insert with a 503 and Retry-After, so the chatbot retried it for ever; a NUL in ``?email=`` was a 500.
One rule (``bridge.pipeline.intake.fields``) covers every text field of every endpoint.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from bridge import create_app
from bridge.adapters.store.models import Delivery, Followup, Ticket
from bridge.bootstrap import Deps
from tests.conftest import post_event, report_event, signed_headers

ADMIN_TOKEN = "admin-token-0123456789abcdef"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bridge.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture
def deps(make_deps: Callable[..., Deps]) -> Deps:
    return make_deps(admin={"token": ADMIN_TOKEN})


def stored(deps: Deps, model: type) -> int:
    with deps.store.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def text_leaves(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The path of every string in a JSON document."""
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from text_leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from text_leaves(item, (*path, str(index)))


def with_value(document: dict[str, Any], path: tuple[str, ...], change: Callable[[str], Any]) -> dict[str, Any]:
    copy = json.loads(json.dumps(document))
    *parents, last = path
    node: Any = copy
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(last)] = change(node[int(last)])
    else:
        node[last] = change(node[last])
    return copy


def followup_event(tracking_id: str) -> dict[str, Any]:
    return {
        "event_id": "evt_01JD9A7F3C",
        "type": "report.followup",
        "occurred_at": "2026-11-27T08:02:00Z",
        "tracking_id": tracking_id,
        "reporter": {"email": "anna@kunde.dk"},
        "message": "Det virker stadig ikke efter opdateringen.",
        "not_fixed": True,
    }


def assert_refused(response: Any, path: tuple[str, ...]) -> None:
    assert response.status_code == 400, (path, response.status_code, response.get_data(as_text=True)[:300])
    assert response.mimetype == "application/problem+json"
    fields = [error["field"] for error in response.get_json()["errors"]]
    dotted = ".".join(path)
    assert any(dotted == field or dotted.startswith(field + ".") for field in fields), (dotted, fields)


@pytest.mark.parametrize("bad", ["Chat\u0000widget", "Chat\ud800widget"], ids=["nul", "unpaired-surrogate"])
def test_every_text_field_of_a_report_with_unstorable_text_is_a_400_naming_it(
    client: FlaskClient, deps: Deps, bad: str
) -> None:
    """NUL or an unpaired surrogate in any string of a report: 400 naming that field, nothing stored."""
    event = report_event()
    paths = list(text_leaves(event))
    assert len(paths) >= 15  # every field of the CONTRACT example
    for path in paths:
        response = post_event(client, with_value(event, path, lambda value: value[:1] + bad + value[1:]))
        assert_refused(response, path)
    assert (stored(deps, Ticket), stored(deps, Delivery)) == (0, 0)


def test_every_text_field_of_a_followup_with_nul_is_a_400_naming_it(client: FlaskClient, deps: Deps) -> None:
    """The same rule for follow-ups."""
    tracking_id = post_event(client, report_event()).get_json()["tracking_id"]
    event = followup_event(tracking_id)
    for path in text_leaves(event):
        response = post_event(client, with_value(event, path, lambda value: value[:1] + "\u0000" + value[1:]))
        assert_refused(response, path)
    assert stored(deps, Followup) == 0


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_a_number_json_cannot_carry_in_environment_is_a_400(client: FlaskClient, deps: Deps, number: str) -> None:
    """NaN, Infinity (and 1e400, read as infinity) in ``report.environment``: 400 naming it, nothing stored."""
    body = json.dumps(report_event()).replace('"4.2.1"', number).encode()
    assert number.encode() in body
    response = client.post("/webhooks/chatbot", data=body, headers=signed_headers(body))
    assert_refused(response, ("report", "environment", "widget_version"))
    assert "finite" in response.get_json()["errors"][0]["message"]
    assert stored(deps, Ticket) == 0


def test_a_finite_number_in_environment_is_kept(client: FlaskClient, deps: Deps) -> None:
    """Ordinary numbers still pass the same rule."""
    event = report_event()
    event["report"]["environment"] = {"screen_width": 1920, "zoom": 1.25, "beta": True, "plugin": None}
    response = post_event(client, event)
    assert response.status_code == 202
    ticket = deps.store.ticket_by_tracking_id(response.get_json()["tracking_id"])
    assert ticket is not None
    assert ticket.environment == {"screen_width": 1920, "zoom": 1.25, "beta": True, "plugin": None}


def test_an_address_with_nul_in_a_lookup_is_a_400_not_a_500(deps: Deps) -> None:
    """``?email=`` of the status API and of the admin export: 400 naming ``email``."""
    client = create_app(deps=deps).test_client()
    status_api = client.get(
        "/api/v1/tickets?email=a%00b@kunde.dk", headers={"Authorization": "Bearer chatbot-api-token"}
    )
    export = client.get(
        "/api/v1/admin/reporters/export?email=a%00b@kunde.dk", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    erase = client.post(
        "/api/v1/admin/reporters/erase",
        json={"email": "a\u0000b@kunde.dk"},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    for response in (status_api, export, erase):
        assert_refused(response, ("email",))
