"""Operating the bridge: /readyz, /metrics, request ids in logs and jobs, no secrets in logs, the
ticket CLI and setup-webhooks (against ``responses`` and the tracker sandbox)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from click.testing import CliRunner
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine

from bridge import create_app, metrics
from bridge.adapters.mail.log import LogMailer
from bridge.adapters.store.db import upgrade
from bridge.adapters.trackers.gitlab import GitLabTracker
from bridge.adapters.trackers.jira import JiraTracker
from bridge.bootstrap import Deps
from bridge.cli import cli
from bridge.domain import Destination, IssueRef
from bridge.errors import PermanentError, RetryableError
from bridge.logs import JsonFormatter, RequestIdFilter
from bridge.metrics import endpoint_name
from tests.conftest import REPO, SIGNING_SECRET, Clock, post_event, report_event
from tests.fakes import FakeTracker

GITLAB = "https://gitlab.example"
JIRA = "https://jira.example"
PUBLIC = "https://bridge.example"

GITLAB_TOKEN = "glpat-OPS-gitlab-api-token-1"
JIRA_TOKEN = "ATATT-OPS-jira-api-token-2"
GITLAB_SECRET = "ops-gitlab-webhook-secret-3"
JIRA_SECRET = "ops-jira-webhook-secret-4"
CHATBOT_TOKEN = "ops-chatbot-api-token-5"
ADMIN_TOKEN = "ops-admin-token-6"
REPORTER = "anna@kunde.dk"


def tracker_settings() -> dict[str, Any]:
    return {
        "default": "gitlab",
        "gitlab": {"url": GITLAB, "token": GITLAB_TOKEN, "project": "acme/support", "webhook_secret": GITLAB_SECRET},
        "jira": {
            "url": JIRA,
            "user": "bot@example.com",
            "api_token": JIRA_TOKEN,
            "project": "SUP",
            "board_id": 1,
            "webhook_secret": JIRA_SECRET,
        },
    }


@pytest.fixture
def mailer() -> LogMailer:
    """The log mailer: its DEBUG line with the message body is part of what the log scan reads."""
    return LogMailer()


@pytest.fixture
def deps(make_deps: Callable[..., Deps]) -> Deps:
    return make_deps(
        trackers=tracker_settings(),
        chatbot={"api_token": CHATBOT_TOKEN},
        admin={"token": ADMIN_TOKEN},
    )


# --- helpers -----------------------------------------------------------------------------------


class Capture(logging.Handler):
    """Every record reaching the root logger, with the request id filter the real handler has."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.addFilter(RequestIdFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def events(self) -> list[str]:
        return [r.getMessage() for r in self.records]


@contextmanager
def captured_logs() -> Iterator[Capture]:
    root = logging.getLogger()
    handler = Capture()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def scrape(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``/metrics`` parsed: (sample name, sorted labels) -> value."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def run_due(deps: Deps, clock: Clock, *, rounds: int = 8) -> None:
    """Run every due pending job, moving time on between rounds, until none is left (as the worker would)."""
    for _ in range(rounds):
        pending = sorted(deps.store.jobs(state="pending", limit=1000), key=lambda j: j.id)
        if not pending:
            return
        for job in pending:
            deps.runner.run(job.id)
        clock.advance(61)


def post_gitlab(client: FlaskClient, payload: dict[str, Any], event: str = "Issue Hook", **headers: str) -> Any:
    base = {"Content-Type": "application/json", "X-Gitlab-Event": event, "X-Gitlab-Token": GITLAB_SECRET}
    return client.post("/webhooks/gitlab", data=json.dumps(payload), headers={**base, **headers})


def issue_hook(tracking_id: str, iid: str) -> dict[str, Any]:
    return {
        "object_kind": "issue",
        "event_type": "issue",
        "user": {"id": 7, "username": "dev"},
        "object_attributes": {"iid": int(iid), "title": f"[{tracking_id}] Chat", "action": "update", "state": "opened"},
        "changes": {"labels": {"previous": [], "current": [{"title": "workflow::in progress"}]}},
    }


def note_hook(tracking_id: str, iid: str, note: str) -> dict[str, Any]:
    return {
        "object_kind": "note",
        "event_type": "note",
        "user": {"id": 7, "username": "dev"},
        "object_attributes": {"id": 4711, "note": note, "noteable_type": "Issue", "system": False, "internal": False},
        "issue": {"iid": int(iid), "title": f"[{tracking_id}] Chat", "state": "opened"},
    }


# --- readiness -----------------------------------------------------------------------------------


def test_readyz_is_503_when_the_database_is_down(
    client: FlaskClient, deps: Deps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the database no report can be accepted: 503 with the database check failing."""
    broken = create_engine("sqlite:////nonexistent-directory/bridge.db")
    monkeypatch.setattr(deps.store, "engine", broken)
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"].startswith("error")
    assert body["checks"]["queue"] == "ok"
    broken.dispose()


def test_readyz_reports_a_failing_tracker_but_stays_ready(client: FlaskClient, tracker: FakeTracker) -> None:
    """A tracker answering 503 is reported with its error class and status; readyz stays 200."""
    tracker.fail_next["account"] = [RetryableError("gitlab probe: HTTP 503: Service Unavailable")]
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ready"
    assert body["checks"] == {"database": "ok", "queue": "ok", "configuration": "ok"}
    assert body["trackers"]["gitlab"]["status"] == "error"
    assert body["trackers"]["gitlab"]["error"] == "RetryableError"
    assert body["trackers"]["gitlab"]["http_status"] == 503
    assert body["trackers"]["jira"]["status"] == "ok"


def test_readyz_caches_tracker_probes(client: FlaskClient, tracker: FakeTracker) -> None:
    """A burst of readiness probes makes one tracker call, not one each."""
    for _ in range(5):
        assert client.get("/readyz").status_code == 200
    assert tracker.calls.count("account") == 1


@responses.activate
def test_readyz_probes_a_real_adapter_uncached(deps: Deps) -> None:
    """A real adapter is probed with a fresh authenticated call (GET /user), not its cached account."""
    responses.get(f"{GITLAB}/api/v4/user", json={"id": 1, "username": "bridge-bot"})
    responses.get(f"{GITLAB}/api/v4/user", status=401, json={"message": "401 Unauthorized"})
    real = GitLabTracker(url=GITLAB, token=GITLAB_TOKEN)
    deps.trackers = {"gitlab": real}
    real.account()  # cached from now on
    client = create_app(deps=deps).test_client()
    body = client.get("/readyz").get_json()
    assert body["trackers"]["gitlab"] == {**body["trackers"]["gitlab"], "status": "error", "http_status": 401}
    assert GITLAB_TOKEN not in json.dumps(body)


# --- metrics -------------------------------------------------------------------------------------


def test_metrics_count_reports_by_outcome(client: FlaskClient) -> None:
    """A report counts accepted, its repeat duplicate, refusals rejected_<reason> (signature, type, size)."""
    before = scrape(client)
    assert post_event(client, report_event()).status_code == 202
    assert post_event(client, report_event()).status_code == 200
    body = json.dumps(report_event(event_id="evt_other")).encode()
    bad = {"Content-Type": "application/json", "X-Smarttalk-Signature": "t=1,v1=00"}
    assert client.post("/webhooks/chatbot", data=body, headers=bad).status_code == 401
    assert client.post("/webhooks/chatbot", data=b"x", headers={"Content-Type": "text/plain"}).status_code == 415
    huge = client.post("/webhooks/chatbot", data=b"x" * 2_000_000, headers={"Content-Type": "application/json"})
    assert huge.status_code == 413
    after = scrape(client)
    name = "bridge_reports_total"
    for outcome in ("accepted", "duplicate", "rejected_signature", "rejected_content_type", "rejected_too_large"):
        delta = value(after, name, channel="chatbot", outcome=outcome) - value(
            before, name, channel="chatbot", outcome=outcome
        )
        assert delta == 1, outcome


def test_metrics_count_webhook_deliveries(client: FlaskClient, deps: Deps, clock: Clock) -> None:
    """Tracker webhooks count accepted, duplicate, ignored and rejected per source."""
    tracking_id = post_event(client, report_event()).get_json()["tracking_id"]
    run_due(deps, clock, rounds=1)
    iid = deps.store.ticket_by_tracking_id(tracking_id).issue_key  # type: ignore[union-attr]
    before = scrape(client)
    post_gitlab(client, issue_hook(tracking_id, str(iid)), **{"Idempotency-Key": "k1"})
    post_gitlab(client, issue_hook(tracking_id, str(iid)), **{"Idempotency-Key": "k1"})
    post_gitlab(client, {"object_kind": "push"}, "Push Hook")
    post_gitlab(client, issue_hook(tracking_id, str(iid)), **{"X-Gitlab-Token": "wrong"})
    after = scrape(client)
    name = "bridge_webhook_deliveries_total"
    for outcome in ("accepted", "duplicate", "ignored", "rejected"):
        delta = value(after, name, source="gitlab", outcome=outcome) - value(
            before, name, source="gitlab", outcome=outcome
        )
        assert delta == 1, outcome


def test_metrics_count_job_outcomes_and_show_queue_gauges(
    client: FlaskClient, deps: Deps, clock: Clock, tracker: FakeTracker
) -> None:
    """Job runs count by outcome with their duration; pending, oldest-due age and dead letters are gauges."""
    before = scrape(client)
    post_event(client, report_event())
    clock.advance(90)
    waiting = scrape(client)
    assert value(waiting, "bridge_database_up") == 1
    assert value(waiting, "bridge_jobs_pending", lane="tracker") == 1
    assert value(waiting, "bridge_jobs_pending", lane="notify") == 1
    assert value(waiting, "bridge_jobs_oldest_due_age_seconds") == pytest.approx(90)

    file_job = next(j for j in deps.store.jobs(state="pending") if j.kind == "file_ticket")
    deps.runner.run(file_job.id)
    post_event(client, report_event(event_id="evt_two"))
    tracker.fail_next["find_issue"] = [PermanentError("gitlab find issue: HTTP 403: Forbidden")]
    second = max(j.id for j in deps.store.jobs(state="pending") if j.kind == "file_ticket")
    deps.runner.run(second)
    after = scrape(client)

    runs = "bridge_job_runs_total"
    for outcome in ("done", "dead"):
        delta = value(after, runs, kind="file_ticket", outcome=outcome) - value(
            before, runs, kind="file_ticket", outcome=outcome
        )
        assert delta == 1, outcome
    count = "bridge_job_duration_seconds_count"
    assert value(after, count, kind="file_ticket") - value(before, count, kind="file_ticket") == 2
    assert value(after, "bridge_jobs_dead") == 1
    assert value(after, "bridge_jobs_pending", lane="tracker") == 0


def test_metrics_count_notifications_and_reconcile(client: FlaskClient, deps: Deps, clock: Clock) -> None:
    """Sent notifications, reconcile runs and the syncs they queue are counted."""
    before = scrape(client)
    post_event(client, report_event())
    run_due(deps, clock)
    issue = deps.trackers["gitlab"]
    assert isinstance(issue, FakeTracker)
    issue.issues[0].labels = (*issue.issues[0].labels, "workflow::in progress")
    clock.advance(60)
    assert deps.reconciler.run() == 1
    after = scrape(client)
    sent = "bridge_notifications_total"
    assert value(after, sent, kind="ack", outcome="sent") - value(before, sent, kind="ack", outcome="sent") == 1
    runs = "bridge_reconcile_runs_total"
    assert value(after, runs, tracker="gitlab", outcome="ok") - value(before, runs, tracker="gitlab", outcome="ok") >= 1
    syncs = "bridge_reconcile_syncs_queued_total"
    assert value(after, syncs, tracker="gitlab") - value(before, syncs, tracker="gitlab") == 1


def test_tracker_calls_are_counted_with_429_and_5xx_statuses(client: FlaskClient) -> None:
    """A real adapter's 429 (GitLab) and 503 (Jira) appear with endpoint name and exact status."""
    before = scrape(client)
    gitlab_tracker = GitLabTracker(url=GITLAB, token=GITLAB_TOKEN)
    jira_tracker = JiraTracker(url=JIRA, user="bot@example.com", api_token=JIRA_TOKEN)
    with responses.RequestsMock() as mock:
        mock.get(
            f"{GITLAB}/api/v4/projects/acme%2Fsupport/issues",
            status=429,
            headers={"Retry-After": "7"},
            body="Retry later",
        )
        mock.get(f"{GITLAB}/api/v4/user", json={"id": 1, "username": "bridge-bot"})
        mock.get(f"{JIRA}/rest/api/2/issue/SUP-12", status=503, json={"errorMessages": ["down"]})
        with pytest.raises(RetryableError):
            gitlab_tracker.find_issue(Destination(tracker="gitlab", project="acme/support"), tracking_id="ST-7K3Q9X2M")
        gitlab_tracker.account()
        with pytest.raises(RetryableError):
            jira_tracker.reopen(Destination(tracker="jira", project="SUP"), IssueRef(key="SUP-12"))
    after = scrape(client)
    name = "bridge_tracker_requests_total"
    limited = {"tracker": "gitlab", "endpoint": "list_issues", "status_class": "4xx", "status": "429"}
    assert value(after, name, **limited) - value(before, name, **limited) == 1
    ok = {"tracker": "gitlab", "endpoint": "get_user", "status_class": "2xx", "status": "2xx"}
    assert value(after, name, **ok) - value(before, name, **ok) == 1
    down = {"tracker": "jira", "endpoint": "get_issue", "status_class": "5xx", "status": "503"}
    assert value(after, name, **down) - value(before, name, **down) == 1
    latency = "bridge_tracker_request_duration_seconds_count"
    assert value(after, latency, tracker="gitlab", endpoint="list_issues") > value(
        before, latency, tracker="gitlab", endpoint="list_issues"
    )


@pytest.mark.parametrize(
    ("method", "url", "name"),
    [
        ("POST", f"{GITLAB}/api/v4/projects/acme%2Fsupport/issues", "create_issue"),
        ("GET", f"{GITLAB}/api/v4/projects/acme%2Fsupport/issues/42?foo=1", "get_issue"),
        ("PUT", f"{GITLAB}/gitlab/api/v4/projects/7/issues/42", "update_issue"),
        ("GET", f"{GITLAB}/api/v4/projects/7/milestones?state=active", "list_milestones"),
        ("GET", f"{JIRA}/rest/api/2/search/jql?jql=summary~ST-7K3Q9X2M", "search_jql"),
        ("POST", f"{JIRA}/rest/api/2/issue/SUP-7/transitions", "do_transition"),
        ("POST", f"{JIRA}/rest/agile/1.0/sprint/3/issue", "add_sprint_issues"),
        ("GET", f"{JIRA}/rest/api/2/project/SUP/components", "list_components"),
        ("DELETE", f"{JIRA}/rest/api/2/issue/SUP-7", "other"),
        ("GET", "https://elsewhere.example/anna@kunde.dk", "other"),
    ],
)
def test_endpoint_names_are_templates_without_ids(method: str, url: str, name: str) -> None:
    """Tracker endpoints are named from method and path template; ids, keys and queries never leak in."""
    assert endpoint_name(method, url) == name


def test_metrics_labels_carry_no_personal_data(client: FlaskClient, deps: Deps, clock: Clock) -> None:
    """After a whole flow, no label value holds an email address, a tracking ID or a token."""
    tracking_id = post_event(client, report_event()).get_json()["tracking_id"]
    run_due(deps, clock)
    text = client.get("/metrics").get_data(as_text=True)
    families = list(text_string_to_metric_families(text))
    assert families
    labels = [v for f in families for s in f.samples for v in s.labels.values()]
    assert labels
    for forbidden in (REPORTER, tracking_id, tracking_id.lower(), GITLAB_TOKEN, SIGNING_SECRET):
        assert all(forbidden not in label for label in labels), forbidden
    assert all("@" not in label for label in labels)


def test_label_values_that_look_like_personal_data_are_recorded_as_other(client: FlaskClient) -> None:
    """Whatever a caller passes, an address or an odd value never becomes a label value."""
    before = scrape(client)
    metrics.report("chatbot", REPORTER)
    metrics.report("chatbot", "Has Spaces")
    after = scrape(client)
    name = "bridge_reports_total"
    assert (
        value(after, name, channel="chatbot", outcome="other") - value(before, name, channel="chatbot", outcome="other")
        == 2
    )
    assert value(after, name, channel="chatbot", outcome=REPORTER) == 0


MULTIPROCESS_WRITER = """
import sys
from pathlib import Path
from bridge import metrics
metrics.use_multiprocess_dir(Path(sys.argv[1]))
metrics.report("chatbot", "accepted")
metrics.job_run("file_ticket", "done", 0.2)
"""

MULTIPROCESS_READER = """
import sys
from pathlib import Path
from bridge import metrics
metrics.use_multiprocess_dir(Path(sys.argv[1]))
sys.stdout.write(metrics.exposition()[0].decode())
"""


def test_multiprocess_mode_adds_up_every_process(tmp_path: Path) -> None:
    """Counts from several processes in the metrics directory are summed; dead processes' files are cleaned up."""
    env = {k: v for k, v in os.environ.items() if k != metrics.MULTIPROC_ENV}
    directory = tmp_path / "prometheus"
    for _ in range(2):
        subprocess.run([sys.executable, "-c", MULTIPROCESS_WRITER, str(directory)], cwd=REPO, env=env, check=True)
    read = subprocess.run(
        [sys.executable, "-c", MULTIPROCESS_READER, str(directory)],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    found = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(read.stdout)
        for s in family.samples
    }
    assert found[("bridge_reports_total", (("channel", "chatbot"), ("outcome", "accepted")))] == 2
    assert found[("bridge_job_duration_seconds_count", (("kind", "file_ticket"),))] == 2
    assert metrics.remove_dead_process_files(directory) >= 2
    assert not list(directory.glob("*.db"))


def test_gunicorn_config_puts_the_metrics_directory_under_the_instance_directory(cli_env: Path) -> None:
    """gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR to <instance>/prometheus when it is unset."""
    env = {k: v for k, v in os.environ.items() if k != metrics.MULTIPROC_ENV}
    script = "import os, runpy; runpy.run_path('gunicorn.conf.py'); print(os.environ['PROMETHEUS_MULTIPROC_DIR'])"
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, check=True, capture_output=True, text=True)
    assert Path(done.stdout.strip()) == cli_env / "instance" / "prometheus"
    assert (cli_env / "instance" / "prometheus").is_dir()


def test_metrics_report_a_database_outage(client: FlaskClient, deps: Deps, monkeypatch: pytest.MonkeyPatch) -> None:
    """/metrics still answers when the database is down, with bridge_database_up 0."""

    def down() -> Any:
        raise RuntimeError("database is down")

    monkeypatch.setattr(deps.store, "queue_stats", down)
    assert value(scrape(client), "bridge_database_up") == 0


# --- request ids ---------------------------------------------------------------------------------


def test_request_id_travels_from_the_request_into_the_job_and_its_logs(
    client: FlaskClient, deps: Deps, clock: Clock
) -> None:
    """X-Request-ID comes back, is stored on the job, and tags the job run's log lines and child jobs."""
    response = post_event(client, report_event(), **{"X-Request-ID": "ops-req-42"})
    assert response.headers["X-Request-ID"] == "ops-req-42"
    job = next(j for j in deps.store.jobs(state="pending") if j.kind == "file_ticket")
    assert job.request_id == "ops-req-42"
    with captured_logs() as logs:
        deps.runner.run(job.id)
    done = [r for r in logs.records if r.getMessage() == "job.done"]
    filed = [r for r in logs.records if r.getMessage() == "ticket.filed"]
    assert done
    assert filed
    assert {getattr(r, "request_id", None) for r in done + filed} == {"ops-req-42"}
    children = [j for j in deps.store.jobs(state="pending") if j.id > job.id]
    assert children  # the "triaged" notification the filing job scheduled
    assert {j.request_id for j in children} == {"ops-req-42"}


def test_request_id_is_sanitised_or_generated(client: FlaskClient) -> None:
    """An unsafe X-Request-ID is reduced to safe characters and 64 of them; none given: one is made."""
    unsafe = client.get("/healthz", headers={"X-Request-ID": "a b<script>" + "x" * 100})
    assert unsafe.headers["X-Request-ID"] == ("abscript" + "x" * 100)[:64]
    made = client.get("/healthz").headers["X-Request-ID"]
    other = client.get("/healthz").headers["X-Request-ID"]
    assert len(made) == 32
    assert made != other


# --- no secrets in logs --------------------------------------------------------------------------


def test_no_secret_or_reporter_email_in_any_log_record(client: FlaskClient, deps: Deps, clock: Clock) -> None:
    """A whole flow at DEBUG (report, retry, emails, follow-up, webhooks, sync, reconcile) logs no email or secret."""
    fake = deps.trackers["gitlab"]
    assert isinstance(fake, FakeTracker)
    secrets = [
        REPORTER,
        SIGNING_SECRET,
        CHATBOT_TOKEN,
        ADMIN_TOKEN,
        GITLAB_TOKEN,
        JIRA_TOKEN,
        GITLAB_SECRET,
        JIRA_SECRET,
    ]
    secrets.append(deps.secret_key)
    with captured_logs() as logs:
        tracking_id = post_event(client, report_event()).get_json()["tracking_id"]
        fake.fail_next["create_issue"] = [RetryableError("gitlab create issue: HTTP 502: Bad Gateway")]
        run_due(deps, clock)
        iid = fake.issues[0].key
        followup = {
            "event_id": "evt_followup",
            "type": "report.followup",
            "tracking_id": tracking_id,
            "reporter": {"email": REPORTER},
            "message": "Det virker stadig ikke.",
        }
        assert post_event(client, followup).status_code == 202
        fake.issues[0].labels = (*fake.issues[0].labels, "workflow::in progress")
        assert post_gitlab(client, issue_hook(tracking_id, iid)).status_code == 200
        assert post_gitlab(client, note_hook(tracking_id, iid, "Vi kigger på det"), "Note Hook").status_code == 200
        run_due(deps, clock)
        deps.reconciler.run()
        post_gitlab(client, issue_hook(tracking_id, iid), **{"X-Gitlab-Token": "wrong"})
        body = json.dumps(report_event(event_id="evt_bad")).encode()
        client.post("/webhooks/chatbot", data=body, headers={"Content-Type": "application/json"})
        client.get(f"/api/v1/tickets?email={REPORTER}", headers={"Authorization": f"Bearer {CHATBOT_TOKEN}"})

    events = logs.events()
    for expected in (
        "chatbot.accepted",
        "job.retry",
        "ticket.filed",
        "mail.logged",
        "mail.body",
        "tracker_hook.accepted",
    ):
        assert expected in events, expected
    assert deps.store.ticket_by_tracking_id(tracking_id).reporter_email == REPORTER  # type: ignore[union-attr]
    formatter = JsonFormatter()
    for record in logs.records:
        text = formatter.format(record) + " " + repr(vars(record))
        for secret in secrets:
            assert secret not in text, f"{record.getMessage()} logs {secret!r}"


# --- the ticket CLI ------------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped config.yaml and mappings with a scratch database, GitLab and Jira over ``responses``."""
    config = tmp_path / "config.yaml"
    text = (REPO / "config.yaml").read_text().replace("mappings_dir: mappings", f"mappings_dir: {REPO / 'mappings'}")
    config.write_text(text)
    for key, val in {
        "BRIDGE_CONFIG": str(config),
        "BRIDGE_PUBLIC_URL": PUBLIC,
        "CHATBOT_SIGNING_SECRET": SIGNING_SECRET,
        "GITLAB_URL": GITLAB,
        "GITLAB_TOKEN": GITLAB_TOKEN,
        "GITLAB_PROJECT": "acme/support",
        "GITLAB_WEBHOOK_SECRET": GITLAB_SECRET,
        "JIRA_URL": JIRA,
        "JIRA_USER": "bot@example.com",
        "JIRA_API_TOKEN": JIRA_TOKEN,
        "JIRA_PROJECT": "SUP",
        "JIRA_BOARD_ID": "1",
        "JIRA_WEBHOOK_SECRET": JIRA_SECRET,
        "BRIDGE_TRACKER": "gitlab",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'bridge.db'}",
    }.items():
        monkeypatch.setenv(key, val)
    monkeypatch.delenv("REDIS_URL", raising=False)
    return tmp_path


def test_cli_tickets_and_ticket_hide_personal_data_by_default(cli_env: Path) -> None:
    """`tickets` and `ticket` show no email address unless --show-personal-data is given."""
    upgrade(f"sqlite:///{cli_env / 'bridge.db'}")
    web = create_app().test_client()
    event = report_event()
    event["report"]["description"] = f"Skriv til {REPORTER} hvis I har spørgsmål."
    tracking_id = post_event(web, event).get_json()["tracking_id"]

    listing = CliRunner().invoke(cli, ["tickets"])
    assert listing.exit_code == 0, listing.output
    assert tracking_id in listing.output
    assert "received" in listing.output
    assert REPORTER not in listing.output
    assert "Anna Jensen" not in listing.output

    shown = CliRunner().invoke(cli, ["ticket", tracking_id])
    assert shown.exit_code == 0, shown.output
    for part in ("history:", "jobs:", "file_ticket", "notifications:", "ack", "a***@kunde.dk"):
        assert part in shown.output, part
    assert REPORTER not in shown.output
    assert "Anna Jensen" not in shown.output

    personal = CliRunner().invoke(cli, ["ticket", tracking_id, "--show-personal-data"])
    assert personal.exit_code == 0, personal.output
    assert f"Anna Jensen <{REPORTER}>" in personal.output

    assert CliRunner().invoke(cli, ["tickets", "--status", "resolved"]).output.count("\n") == 1  # the header only
    assert CliRunner().invoke(cli, ["ticket", "ST-NOTHERE"]).exit_code == 1


# --- setup-webhooks ------------------------------------------------------------------------------

GITLAB_HOOKS = f"{GITLAB}/api/v4/projects/acme%2Fsupport/hooks"
JIRA_HOOKS = f"{JIRA}/rest/webhooks/1.0/webhook"


def test_setup_webhooks_creates_the_gitlab_hook(cli_env: Path) -> None:
    """No hook yet: one POST with the URL, the secret as token, issue and note events, no push events."""
    with responses.RequestsMock() as mock:
        mock.get(GITLAB_HOOKS, json=[{"id": 3, "url": "https://other.example/hook"}])
        mock.post(GITLAB_HOOKS, status=201, json={"id": 9, "url": f"{PUBLIC}/webhooks/gitlab"})
        result = CliRunner().invoke(cli, ["setup-webhooks", "--tracker", "gitlab"])
        sent = json.loads(mock.calls[1].request.body or b"{}")
    assert result.exit_code == 0, result.output
    assert "created hook #9" in result.output
    assert sent == {
        "url": f"{PUBLIC}/webhooks/gitlab",
        "token": GITLAB_SECRET,
        "issues_events": True,
        "confidential_issues_events": True,
        "note_events": True,
        "confidential_note_events": True,
        "push_events": False,
        "enable_ssl_verification": True,
    }
    assert GITLAB_SECRET not in result.output


def test_setup_webhooks_updates_an_existing_hook_instead_of_adding_one(cli_env: Path) -> None:
    """A hook with the bridge's URL is updated (PUT) in GitLab and Jira; nothing is POSTed."""
    with responses.RequestsMock() as mock:
        mock.get(GITLAB_HOOKS, json=[{"id": 4, "url": f"{PUBLIC}/webhooks/gitlab"}])
        mock.put(f"{GITLAB_HOOKS}/4", json={"id": 4, "url": f"{PUBLIC}/webhooks/gitlab"})
        mock.get(JIRA_HOOKS, json=[{"self": f"{JIRA_HOOKS}/12", "url": f"{PUBLIC}/webhooks/jira", "events": []}])
        mock.put(f"{JIRA_HOOKS}/12", json={"self": f"{JIRA_HOOKS}/12"})
        gitlab_result = CliRunner().invoke(cli, ["setup-webhooks", "--tracker", "gitlab"])
        jira_result = CliRunner().invoke(cli, ["setup-webhooks", "--tracker", "jira"])
        jira_body = json.loads(mock.calls[3].request.body or b"{}")
        methods = [call.request.method for call in mock.calls]
    assert gitlab_result.exit_code == 0, gitlab_result.output
    assert jira_result.exit_code == 0, jira_result.output
    assert "updated hook #4" in gitlab_result.output
    assert "updated webhook #12" in jira_result.output
    assert methods == ["GET", "PUT", "GET", "PUT"]
    assert jira_body["events"] == ["jira:issue_created", "jira:issue_updated", "jira:issue_deleted", "comment_created"]
    assert jira_body["filters"] == {"issue-related-events-section": "project = SUP"}
    assert jira_body["secret"] == JIRA_SECRET
    assert jira_body["url"] == f"{PUBLIC}/webhooks/jira"


def test_setup_webhooks_dry_run_changes_nothing(cli_env: Path) -> None:
    """--dry-run only lists the hooks and says what it would do."""
    with responses.RequestsMock() as mock:
        mock.get(GITLAB_HOOKS, json=[])
        mock.get(JIRA_HOOKS, json=[{"self": f"{JIRA_HOOKS}/2", "url": f"{PUBLIC}/webhooks/jira"}])
        result = CliRunner().invoke(cli, ["setup-webhooks", "--dry-run", "--tracker", "gitlab"])
        jira = CliRunner().invoke(cli, ["setup-webhooks", "--dry-run", "--tracker", "jira"])
        methods = [call.request.method for call in mock.calls]
    assert result.exit_code == 0, result.output
    assert "would create hook" in result.output
    assert "would update webhook #2" in jira.output
    assert methods == ["GET", "GET"]


def test_setup_webhooks_errors_are_typed_and_keep_the_secret_out(cli_env: Path) -> None:
    """A refused registration exits 1 with the tracker's reason and without token or secret."""
    with responses.RequestsMock() as mock:
        mock.get(GITLAB_HOOKS, json=[])
        mock.post(GITLAB_HOOKS, status=422, json={"message": {"url": [f"is blocked: {GITLAB_SECRET}"]}})
        result = CliRunner().invoke(cli, ["setup-webhooks", "--tracker", "gitlab"])
    assert result.exit_code == 1
    assert "HTTP 422" in result.output
    assert GITLAB_SECRET not in result.output
    assert GITLAB_TOKEN not in result.output


def test_setup_webhooks_against_the_sandbox(cli_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tracker sandbox receives one GitLab hook and one Jira webhook; a dry run afterwards finds them."""
    from sandbox.config import SandboxConfig
    from sandbox.server import SandboxServer

    server = SandboxServer(
        SandboxConfig(gitlab_token=GITLAB_TOKEN, jira_user="bot@example.com", jira_token=JIRA_TOKEN), quiet=True
    ).start()
    try:
        for key in ("GITLAB_URL", "JIRA_URL"):
            monkeypatch.setenv(key, server.url)
        first = CliRunner().invoke(cli, ["setup-webhooks", "--tracker", "gitlab"])
        second = CliRunner().invoke(cli, ["setup-webhooks", "--tracker", "jira"])
        assert first.exit_code == 0, first.output
        assert second.exit_code == 0, second.output
        again = CliRunner().invoke(cli, ["setup-webhooks", "--dry-run", "--tracker", "gitlab"])
        assert "would update hook #" in again.output
        state = requests.get(f"{server.url}/_sandbox/state", timeout=5).json()
    finally:
        server.stop()
    [hook] = state["gitlab"]["hooks"]
    assert hook["url"] == f"{PUBLIC}/webhooks/gitlab"
    assert (hook["issues_events"], hook["note_events"], hook["confidential_note_events"], hook["push_events"]) == (
        True,
        True,
        True,
        False,
    )
    [jira_hook] = state["jira"]["webhooks"]
    assert jira_hook["url"] == f"{PUBLIC}/webhooks/jira"
    assert jira_hook["events"] == ["jira:issue_created", "jira:issue_updated", "jira:issue_deleted", "comment_created"]
    assert jira_hook["filters"] == {"issue-related-events-section": "project = SUP"}
