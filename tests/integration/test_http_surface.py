"""What the HTTP surface shows a prober: the same 404 for hidden and unknown routes, the admin API
absent from the OpenAPI document when it is off, and the baseline security headers on every answer."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from bridge import create_app
from bridge.bootstrap import Deps
from bridge.tracking import unsubscribe_url
from tests.conftest import post_event, report_event

ADMIN_TOKEN = "admin-token-for-the-surface-tests"


def client_for(make_deps: Callable[..., Deps], **sections: dict[str, object]) -> FlaskClient:
    return create_app(deps=make_deps(**sections)).test_client()


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1//admin/dead-letters",
        "/api/v1//admin/reporters/export?email=a@kunde.dk",
        "/api/v1/admin/dead-letters",
        "/api/v1/admin/no-such-thing",
        "//api/v1/admin/erasures",
    ],
)
def test_the_admin_api_when_off_answers_like_any_unknown_url(client: FlaskClient, path: str) -> None:
    """No redirect to a canonical admin route, and a body identical to a URL that never existed."""
    unknown = client.get("/api/v1/no-such-route")
    for method in ("GET", "POST"):
        answer = client.open(path, method=method)
        assert answer.status_code == 404, (method, path)
        assert "Location" not in answer.headers
        assert answer.get_data() == unknown.get_data()
        assert answer.headers.get("Cache-Control") == unknown.headers.get("Cache-Control")


def test_double_slashes_reach_no_route_when_admin_is_on(make_deps: Callable[..., Deps]) -> None:
    """With the admin API on, ``//`` is still not ``/``: 404, never a redirect to the real route."""
    client = client_for(make_deps, admin={"token": ADMIN_TOKEN})
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert client.get("/api/v1/admin/dead-letters", headers=headers).status_code == 200
    answer = client.get("/api/v1//admin/dead-letters", headers=headers)
    assert answer.status_code == 404
    assert "Location" not in answer.headers


def test_openapi_leaves_the_admin_api_out_when_it_is_off(client: FlaskClient, make_deps: Callable[..., Deps]) -> None:
    off = client.get("/openapi.json").get_json()
    assert not [path for path in off["paths"] if "/admin" in path]
    assert "admin" not in {tag["name"] for tag in off["tags"]}
    assert "/webhooks/chatbot" in off["paths"]

    on = client_for(make_deps, admin={"token": ADMIN_TOKEN}).get("/openapi.json").get_json()
    admin_paths = [path for path in on["paths"] if path.startswith("/api/v1/admin/")]
    assert "/api/v1/admin/dead-letters" in admin_paths
    assert "admin" in {tag["name"] for tag in on["tags"]}


def test_every_answer_forbids_sniffing_and_framing(client: FlaskClient, deps: Deps) -> None:
    """The unsubscribe page (which sets only its own CSP), JSON, errors and the OpenAPI document alike."""
    answer = post_event(client, report_event())
    assert answer.status_code == 202
    tracking_id = answer.get_json()["tracking_id"]
    pages = [
        client.get(unsubscribe_url("", deps.secret_key, tracking_id)),
        client.get("/healthz"),
        client.get("/openapi.json"),
        client.get("/no-such-page"),
    ]
    assert pages[0].status_code == 200
    for page in pages:
        assert page.headers["X-Content-Type-Options"] == "nosniff"
        assert page.headers["X-Frame-Options"] == "DENY"
        # published over HTTPS (the test settings' public_url): browsers are told to stay on it
        assert page.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_no_hsts_when_published_over_plain_http(make_deps: Callable[..., Deps]) -> None:
    client = client_for(make_deps, server={"public_url": "http://127.0.0.1:8000"})
    answer = client.get("/healthz")
    assert answer.status_code == 200
    assert "Strict-Transport-Security" not in answer.headers
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
