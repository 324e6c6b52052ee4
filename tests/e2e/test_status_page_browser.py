"""The status page in a real headless Chromium, served over real HTTP on loopback.

Chromium comes from `make test-deps` (Debian's chromium); without it the tests fail.
"""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from bridge.bootstrap import Deps
from bridge.domain import Status
from tests.conftest import Clock, post_event, report_event
from tests.tools import require_program

pytestmark = pytest.mark.e2e

XSS_TITLE = (
    "<img src=x onerror=\"document.body.setAttribute('data-pwned','1')\">"
    "<script>document.body.setAttribute('data-pwned','2')</script>"
)
CHROMIUM_TIMEOUT = 90


@pytest.fixture(scope="module")
def chromium() -> str:
    return require_program("chromium", "chromium")


@pytest.fixture
def base_url(app: Flask) -> Iterator[str]:
    """The app (with the test's deps) on a free loopback port, in a thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="status-page-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def run_chromium(chromium: str, tmp_path: Path, url: str, *extra: str) -> str:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    command = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--no-proxy-server", f"--user-data-dir={profile}", *extra, url,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT, check=False)
    assert result.returncode == 0, f"chromium failed ({result.returncode}): {result.stderr[-2000:]}"
    return result.stdout


def dump_dom(chromium: str, tmp_path: Path, url: str) -> str:
    return run_chromium(chromium, tmp_path, url, "--dump-dom")


def text_of(dom: str) -> str:
    body = re.sub(r"<(style|script)\b.*?</\1>", " ", dom, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", body).split())


def signed_path(client: FlaskClient, deps: Deps, clock: Clock, title: str) -> tuple[str, str]:
    """A filed da report moved to in_progress; its tracking ID and signed page path."""
    event = report_event()
    event["report"] = event["report"] | {"title": title}
    response = post_event(client, event)
    assert response.status_code == 202
    body = response.get_json()
    clock.advance(2)
    (filing,) = [j for j in deps.store.jobs() if j.kind == "file_ticket"]
    deps.runner.run(filing.id)
    ticket = deps.store.ticket_by_tracking_id(body["tracking_id"])
    assert ticket is not None
    clock.advance(3600)
    deps.store.set_status(ticket.id, Status.IN_PROGRESS)
    url = urlsplit(body["status_url"])
    return body["tracking_id"], f"{url.path}?{url.query}"


def test_danish_page_renders_status_and_history(
    chromium: str, base_url: str, client: FlaskClient, deps: Deps, clock: Clock, tmp_path: Path
) -> None:
    """Chromium renders the signed page in Danish with status text and history, and paints a screenshot."""
    tracking_id, path = signed_path(client, deps, clock, "Chat-widget indlæses ikke")
    dom = dump_dom(chromium, tmp_path, base_url + path)
    assert '<html lang="da">' in dom
    text = text_of(dom)
    assert tracking_id in text
    assert "Chat-widget indlæses ikke" in text
    assert "Under udvikling En udvikler arbejder på fejlen" in text
    assert "Sprint 48" in text
    assert "23. november \N{EN DASH} 6. december 2026" in text
    assert (
        "Forløb Modtaget 25. november 2026 kl. 11.15 Planlagt 25. november 2026 kl. 11.15 "
        "Under udvikling 25. november 2026 kl. 12.15"
    ) in text

    shot = tmp_path / "status.png"
    run_chromium(chromium, tmp_path, base_url + path, f"--screenshot={shot}", "--window-size=900,1200")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000  # a painted page, not an empty canvas


def test_markup_in_title_is_text_and_never_runs(
    chromium: str, base_url: str, client: FlaskClient, deps: Deps, clock: Clock, tmp_path: Path
) -> None:
    """An XSS payload in the title shows as text in the heading; neither the handler nor the script runs."""
    _, path = signed_path(client, deps, clock, XSS_TITLE)
    dom = dump_dom(chromium, tmp_path, base_url + path)
    assert "data-pwned" in dom  # as escaped text, inside the heading ...
    assert "data-pwned=" not in dom  # ... but never as an attribute set by the payload
    heading = re.search(r'<h1 id="ticket-title">(.*?)</h1>', dom, flags=re.S)
    assert heading is not None
    assert heading.group(1).startswith("&lt;img src=x onerror=")
    assert "&lt;script&gt;" in heading.group(1)
    assert "<img" not in dom
    assert "<script" not in dom


def test_wrong_signature_shows_the_404_page(
    chromium: str, base_url: str, client: FlaskClient, deps: Deps, clock: Clock, tmp_path: Path
) -> None:
    """A tampered link opens the not-found page, without the ticket's data."""
    tracking_id, _ = signed_path(client, deps, clock, "Chat-widget indlæses ikke")
    dom = dump_dom(chromium, tmp_path, f"{base_url}/t/{tracking_id}?s=AAAAAAAAAAAAAAAAAAAAAA")
    text = text_of(dom)
    assert "Siden findes ikke" in text
    assert "Page not found" in text
    assert "Chat-widget" not in text
    assert "Under udvikling" not in text
