"""``python -m bridge stats`` and the ticket gauges of ``/metrics`` on a real database (a SQLite file
and PostgreSQL), over tickets that went through the real intake, filing job and status changes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from bridge.bootstrap import Deps
from bridge.cli import CliContext, cli
from bridge.domain import Status
from tests.conftest import REPO, Clock, post_event, report_event
from tests.integration.rows import row_counts


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bridge.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    """The shipped config.yaml and mappings over the test's database, as an operator runs the CLI."""
    config = tmp_path / "config.yaml"
    text = (REPO / "config.yaml").read_text().replace("mappings_dir: mappings", f"mappings_dir: {REPO / 'mappings'}")
    config.write_text(text)
    for key, value in {
        "BRIDGE_CONFIG": str(config),
        "CHATBOT_SIGNING_SECRET": "s",
        "GITLAB_URL": "https://gitlab.example",
        "GITLAB_TOKEN": "glpat-secret",
        "GITLAB_PROJECT": "acme/support",
        "DATABASE_URL": database_url,
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("REDIS_URL", "BRIDGE_TRACKER", "JIRA_URL"):
        monkeypatch.delenv(key, raising=False)


FIRMA_RESOLVED = 25 * 3600 - 120
"""Seconds from the Firma report's arrival to its resolution."""


@dataclass
class Seeded:
    kunde: str
    firma: str
    unfiled: str


def submit(client: FlaskClient, deps: Deps, **overrides: object) -> int:
    answer = post_event(client, report_event(**overrides))
    assert answer.status_code == 202, answer.get_data(as_text=True)
    ticket = deps.store.ticket_by_tracking_id(answer.get_json()["tracking_id"])
    assert ticket is not None
    return ticket.id


def file_ticket(deps: Deps, ticket_id: int) -> None:
    (job,) = [j for j in deps.store.ticket_jobs(ticket_id) if j.kind == "file_ticket"]
    deps.runner.run(job.id)
    assert deps.store.ticket(ticket_id).status == Status.TRIAGED.value


@pytest.fixture
def seeded(client: FlaskClient, deps: Deps, clock: Clock) -> Seeded:
    """Four reports: one 40 days old; then, within the last 30 days, a critical widget report from
    Kunde A/S (triaged after 2 min, resolved after a day, reopened, resolved again), a question from
    Firma ApS (triaged after 5 min, resolved 2 days later) and one from an "organisation" that is an
    address, not filed yet."""
    old = submit(client, deps, event_id="evt_old")
    file_ticket(deps, old)
    clock.advance(40 * 86400)

    kunde = submit(client, deps, event_id="evt_kunde")
    clock.advance(120)
    file_ticket(deps, kunde)

    question = {"title": "How do I export?", "description": "Where is the button?", "product": "reports"}
    firma = submit(
        client,
        deps,
        event_id="evt_firma",
        report=question,
        reporter={"email": "bo@firma.dk", "organization": "Firma ApS", "locale": "da"},
    )
    clock.advance(300)
    file_ticket(deps, firma)
    unfiled = submit(
        client, deps, event_id="evt_addr", reporter={"email": "eve@example.com", "organization": "eve@example.com"}
    )

    clock.advance(86400 - 420)  # a day after the Kunde report arrived
    deps.store.set_status(kunde, Status.RESOLVED)
    clock.advance(3600)
    deps.store.set_status(kunde, Status.REOPENED)
    deps.store.set_status(firma, Status.RESOLVED)
    clock.advance(3600)
    deps.store.set_status(kunde, Status.RESOLVED)
    return Seeded(
        kunde=deps.store.ticket(kunde).tracking_id,
        firma=deps.store.ticket(firma).tracking_id,
        unfiled=deps.store.ticket(unfiled).tracking_id,
    )


def run_stats(clock: Clock, *args: str) -> dict[str, object]:
    result = CliRunner().invoke(cli, ["stats", "--json", *args], obj=CliContext(clock=clock))
    assert result.exit_code == 0, result.output
    body: dict[str, object] = json.loads(result.output)
    return body


def test_stats_counts_the_window_from_the_database(env: None, seeded: Seeded, clock: Clock) -> None:
    """Reports in the last 30 days by category x severity and channel, median times from the status
    history, reopen rate and the busiest organisations; the 40-day-old report is outside."""
    body = run_stats(clock)
    assert body["reports"] == 3
    assert body["by_channel"] == {"chatbot": 3}
    assert {(row["category"], row["severity"]): row["reports"] for row in body["by_category_severity"]} == {  # type: ignore[attr-defined]
        ("widget", "critical"): 1,
        ("reports", "medium"): 1,
        ("other", "unclassified"): 1,
    }
    assert body["time_to_triage"] == {"median_seconds": (120 + 300) / 2, "tickets": 2}
    # Kunde: first resolved a day after it arrived; Firma: 25 h minus the 2 min between the two arrivals.
    assert body["time_to_resolve"] == {"median_seconds": (86400 + FIRMA_RESOLVED) / 2, "tickets": 2}
    assert body["reopen"] == {"reopened": 1, "resolved": 2, "rate": 0.5}
    assert body["top_organizations"] == [  # most reports first, then by name
        {"organization": "Firma ApS", "reports": 1},
        {"organization": "Kunde A/S", "reports": 1},
    ]
    assert "@" not in json.dumps(body)


def test_a_longer_window_takes_in_the_older_report(env: None, seeded: Seeded, clock: Clock) -> None:
    body = run_stats(clock, "--since", "7w")
    assert body["reports"] == 4
    assert body["top_organizations"] == [
        {"organization": "Kunde A/S", "reports": 2},
        {"organization": "Firma ApS", "reports": 1},
    ]
    assert body["time_to_triage"] == {"median_seconds": 120, "tickets": 3}  # 0, 120 and 300 s


def test_a_short_window_sees_only_the_last_changes(env: None, seeded: Seeded, clock: Clock) -> None:
    """In the last 90 minutes nothing was received or triaged; Kunde was resolved again (not first
    resolved), so it counts as resolved and reopened but not in the time to resolve."""
    body = run_stats(clock, "--since", "90m")
    assert body["reports"] == 0
    assert body["time_to_triage"] == {"median_seconds": None, "tickets": 0}
    assert body["time_to_resolve"] == {"median_seconds": FIRMA_RESOLVED, "tickets": 1}
    assert body["reopen"] == {"reopened": 1, "resolved": 2, "rate": 0.5}


def test_stats_as_text_for_people(env: None, seeded: Seeded, clock: Clock) -> None:
    result = CliRunner().invoke(cli, ["stats"], obj=CliContext(clock=clock))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].endswith(": 3")
    assert "by channel: chatbot 3" in lines
    assert "time to triage (received -> triaged): median 3m 30s over 2 ticket(s)" in lines
    assert "reopen rate: 50.0% (1 reopened / 2 resolved)" in lines
    assert any(line.split() == ["Kunde", "A/S", "1"] for line in lines)
    assert "eve@example.com" not in result.output


@pytest.mark.parametrize("since", ["30", "0d", "3y", "yesterday"])
def test_a_bad_window_is_a_usage_error(env: None, since: str) -> None:
    result = CliRunner().invoke(cli, ["stats", "--since", since])
    assert result.exit_code == 2
    assert "such as 30d" in result.output


def test_stats_writes_nothing(env: None, seeded: Seeded, clock: Clock, deps: Deps) -> None:
    """Every table holds as many rows after ``stats`` as before, and nothing changed in them."""
    before = row_counts(deps.store.engine)
    latest = deps.store.tickets(limit=10)
    run_stats(clock)
    assert row_counts(deps.store.engine) == before
    assert [(t.id, t.status, t.updated_at) for t in deps.store.tickets(limit=10)] == [
        (t.id, t.status, t.updated_at) for t in latest
    ]


# --- /metrics --------------------------------------------------------------------------------------


def scrape(client: FlaskClient) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    answer = client.get("/metrics")
    assert answer.status_code == 200
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(answer.get_data(as_text=True)):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def labels(**values: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(values.items()))


def test_metrics_show_every_ticket_by_bounded_labels(client: FlaskClient, seeded: Seeded, deps: Deps) -> None:
    """``bridge_tickets`` counts every ticket by category, severity, channel and current status, with
    label values only from the mapping and the enums; status changes are counted by status."""
    samples = scrape(client)
    tickets = samples["bridge_tickets"]
    assert tickets == {
        labels(category="widget", severity="critical", channel="chatbot", status="triaged"): 1,  # the old one
        labels(category="widget", severity="critical", channel="chatbot", status="resolved"): 1,
        labels(category="reports", severity="medium", channel="chatbot", status="resolved"): 1,
        labels(category="other", severity="unclassified", channel="chatbot", status="received"): 1,
    }
    names = set(deps.mappings.categories.names)
    for key in tickets:
        values = dict(key)
        assert values["category"] in names
        assert values["severity"] in {"critical", "high", "medium", "low", "unclassified", "other"}
    assert samples["bridge_status_changes_total"] == {
        labels(status="received"): 4,
        labels(status="triaged"): 3,
        labels(status="resolved"): 3,
        labels(status="reopened"): 1,
    }


def test_metrics_without_tickets_have_no_ticket_samples(client: FlaskClient) -> None:
    samples = scrape(client)
    assert samples.get("bridge_tickets", {}) == {}
    assert samples.get("bridge_status_changes_total", {}) == {}
    assert samples["bridge_database_up"] == {(): 1}
