"""The reporter's signed status page: locale, content, security headers, and the single 404 answer."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient

from bridge.bootstrap import Deps
from bridge.domain import Status
from bridge.tracking import status_signature
from tests.conftest import Clock, post_event, report_event

XSS_TITLE = (
    "<img src=x onerror=\"document.body.setAttribute('data-pwned','1')\">"
    "<script>document.body.setAttribute('data-pwned','2')</script>"
)
EXPECTED_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def submit(client: FlaskClient, **overrides: Any) -> tuple[str, str]:
    """File a report; return its tracking ID and the signed page path from the webhook's answer."""
    response = post_event(client, report_event(**overrides))
    assert response.status_code == 202
    body = response.get_json()
    url = urlsplit(body["status_url"])
    return body["tracking_id"], f"{url.path}?{url.query}"


def file_all(deps: Deps) -> None:
    for job in deps.store.jobs(state="pending"):
        if job.kind == "file_ticket":
            deps.runner.run(job.id)


def ticket_id(deps: Deps, tracking_id: str) -> int:
    ticket = deps.store.ticket_by_tracking_id(tracking_id)
    assert ticket is not None
    return ticket.id


def text_of(html: str) -> str:
    """The visible text, roughly: tags dropped, whitespace collapsed."""
    body = html.split("</style>", 1)[-1]
    return " ".join(re.sub(r"<[^>]+>", " ", body).split())


def test_danish_page_shows_status_plan_and_history(client: FlaskClient, deps: Deps, clock: Clock) -> None:
    """A da ticket: Danish page with title, status text, sprint and dates, history in Copenhagen time."""
    tracking_id, path = submit(client)
    clock.advance(2)
    file_all(deps)
    clock.advance(3 * 3600)
    deps.store.set_status(ticket_id(deps, tracking_id), Status.IN_PROGRESS)

    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert '<html lang="da">' in html
    text = text_of(html)
    assert tracking_id in text
    assert "Chat-widget indlæses ikke" in text
    assert "Status Under udvikling En udvikler arbejder på fejlen" in text  # badge, then the sentence
    assert "Type Hotfix Sprint Sprint 48 Periode 23. november \N{EN DASH} 6. december 2026" in text
    # 10:15Z is 11:15 in Copenhagen (CET); each step of the history with its localized name
    assert (
        "Forløb Modtaget 25. november 2026 kl. 11.15 Planlagt 25. november 2026 kl. 11.15 "
        "Under udvikling 25. november 2026 kl. 14.15"
    ) in text
    assert '<time datetime="2026-11-25T13:15:02Z">' in html


def test_the_page_names_the_category_in_the_reporters_language(client: FlaskClient, deps: Deps) -> None:
    """Once filed, the page says the ticket's category (Danish text); before, it says none."""
    _, path = submit(client)
    assert "Kategori" not in text_of(client.get(path).get_data(as_text=True))
    file_all(deps)
    html = client.get(path).get_data(as_text=True)
    assert "Kategori Chat-widget" in text_of(html)
    assert '<dd id="category" data-category="widget">Chat-widget</dd>' in html


def test_english_page_in_summer_time(client: FlaskClient, deps: Deps, clock: Clock) -> None:
    """An en ticket: English page; times follow Copenhagen's daylight saving (UTC+2 in June)."""
    from datetime import UTC, datetime

    clock.now = datetime(2026, 6, 3, 8, 5, tzinfo=UTC)
    reporter = {"email": "tom@customer.example", "locale": "en-US"}
    _, path = submit(client, reporter=reporter)
    html = client.get(path).get_data(as_text=True)
    assert '<html lang="en">' in html
    text = text_of(html)
    assert "We have received your problem report" in text
    assert "Sprint Not planned yet" in text
    assert "History Received 3 June 2026, 10:05" in text


def test_security_headers_on_page_and_404(client: FlaskClient) -> None:
    """CSP, nosniff, no-referrer, no framing and no-store on the page and on its 404."""
    tracking_id, path = submit(client)
    for response in (client.get(path), client.get(f"/t/{tracking_id}?s=wrong")):
        for name, value in EXPECTED_HEADERS.items():
            assert response.headers.get(name) == value, name


def test_page_has_no_script_and_no_external_resources(client: FlaskClient) -> None:
    """It works without JavaScript and loads nothing from elsewhere."""
    _, path = submit(client)
    html = client.get(path).get_data(as_text=True).lower()
    assert "<script" not in html
    assert "src=" not in html
    assert "<link" not in html
    assert "http://" not in html
    assert "https://" not in html


@pytest.mark.parametrize(
    "make_path",
    [
        lambda tid, sig: f"/t/{tid}?s=wrong",
        lambda tid, sig: f"/t/{tid}",
        lambda tid, sig: f"/t/{tid}?s=",
        lambda tid, sig: f"/t/{tid}?s={sig[:-1]}",
        lambda tid, sig: f"/t/{tid}?s={sig}x",
        lambda tid, sig: f"/t/{tid}?s=%C3%A6%C3%B8",  # non-ASCII signature
        lambda tid, sig: f"/t/{tid.lower()}?s={sig}",
        lambda tid, sig: f"/t/ST-00000000?s={sig}",
        lambda tid, sig: f"/t/ST-00000000?s={status_signature('status-link-key', 'ST-00000000')}",  # signed, unknown
        lambda tid, sig: f"/t/nonsense?s={sig}",
    ],
)
def test_wrong_signature_or_unknown_ticket_is_the_same_404(client: FlaskClient, make_path: Any) -> None:
    """Wrong/missing signature and unknown ticket give byte-identical 404 pages: existence is not revealed."""
    tracking_id, path = submit(client)
    signature = path.split("?s=", 1)[1]
    reference = client.get("/t/ST-00000000?s=x")
    response = client.get(make_path(tracking_id, signature))
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert response.get_data() == reference.get_data()
    html = response.get_data(as_text=True)
    assert "Siden findes ikke" in html
    assert "Page not found" in html
    assert tracking_id not in html
    assert "Chat-widget" not in html


def test_customer_title_is_escaped(client: FlaskClient) -> None:
    """Markup in the title is shown as text: no tag or handler from the customer reaches the page."""
    report = report_event()["report"] | {"title": XSS_TITLE}
    _, path = submit(client, report=report)
    html = client.get(path).get_data(as_text=True)
    assert "<script" not in html
    assert "<img" not in html
    assert "&lt;img src=x onerror=&#34;document.body.setAttribute(&#39;data-pwned&#39;,&#39;1&#39;)&#34;&gt;" in html
    assert "&lt;script&gt;" in html


def test_no_tracker_internals_or_personal_data_on_the_page(client: FlaskClient, deps: Deps) -> None:
    """The page shows the reporter's view only: no issue URL, project, email, name or description."""
    tracking_id, path = submit(client)
    file_all(deps)
    ticket = deps.store.ticket(ticket_id(deps, tracking_id))
    assert ticket.issue_url
    html = client.get(path).get_data(as_text=True)
    for secret in (
        ticket.issue_url, "tracker.example", "gitlab", "acme/support", "anna@kunde.dk", "Anna Jensen", "Kunde A/S",
        "Siden viser kun en spinner", "critical", "needs-po-review", ticket.reply_token,
    ):  # fmt: skip
        assert secret not in html, secret


def test_declined_page_shows_the_reason(client: FlaskClient, deps: Deps) -> None:
    """A declined ticket's page says why it was closed, in the reporter's language."""
    tracking_id, path = submit(client)
    file_all(deps)
    deps.store.set_status(ticket_id(deps, tracking_id), Status.DECLINED, reason="wont_fix")
    text = text_of(client.get(path).get_data(as_text=True))
    assert "Lukket uden rettelse Sagen er lukket uden rettelse: vi har valgt ikke at rette den" in text
