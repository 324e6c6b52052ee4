"""From stored report to tracker issue, through the job runner, on SQLite and PostgreSQL.

The tracker is our in-memory fake; the database is real. Time is moved, not slept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from bridge import create_app
from bridge.bootstrap import Deps
from bridge.domain import Sprint, SprintWindow, Status
from bridge.errors import OutcomeUnknown, PermanentError, RetryableError
from bridge.jobs import SWEEP_GRACE
from bridge.mappings import Mappings, Route, RouteCondition
from tests.conftest import CURRENT, NEXT, Clock, post_event, report_event
from tests.fakes import FakeTracker


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bridge.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


class KilledWorker(BaseException):
    """Stands for SIGKILL: nothing in the worker catches it."""


def submit(client: FlaskClient, **overrides: object) -> str:
    response = post_event(client, report_event(**overrides))
    assert response.status_code == 202
    return str(response.get_json()["tracking_id"])


def only_job(deps: Deps, kind: str = "file_ticket") -> int:
    (job,) = [j for j in deps.store.jobs() if j.kind == kind]
    return job.id


def test_critical_report_becomes_a_hotfix_in_the_current_sprint(
    client: FlaskClient, deps: Deps, tracker: FakeTracker
) -> None:
    """The CONTRACT example: labels, milestone, title prefix, status triaged, job done."""
    tracking_id = submit(client)
    deps.runner.run(only_job(deps))
    (issue,) = tracker.issues
    assert issue.title == f"[{tracking_id}] Chat-widget indlæses ikke"
    assert set(issue.labels) == {
        "severity::critical", "type::hotfix", "source::chatbot", "needs-po-review", "category::widget",
    }  # fmt: skip
    assert issue.sprint_id == CURRENT.id
    ticket = deps.store.ticket_by_tracking_id(tracking_id)
    assert ticket is not None
    assert (ticket.status, ticket.severity, ticket.kind, ticket.sprint_name) == (
        "triaged",
        "critical",
        "hotfix",
        "Sprint 48",
    )
    assert [e.status for e in deps.store.history(ticket.id)] == ["received", "triaged"]
    assert deps.store.job(only_job(deps)).state == "done"  # type: ignore[union-attr]
    assert issue.new_issue is not None
    assert "declared-priority:kritisk" in issue.new_issue.classification.rules


def test_medium_report_is_a_bugfix_in_the_next_sprint(client: FlaskClient, deps: Deps, tracker: FakeTracker) -> None:
    """Non-critical reports are bugfixes planned into the next sprint."""
    event = report_event()
    event["report"] = {"title": "Rapporten viser forkert dato", "description": "Datoen er en dag forkert."}
    event["reporter"] = {"email": "bo@firma.dk", "locale": "da"}
    submit(client, **event)
    deps.runner.run(only_job(deps))
    (issue,) = tracker.issues
    assert set(issue.labels) == {"severity::medium", "type::bugfix", "source::chatbot", "category::other"}
    assert issue.sprint_id == NEXT.id


def test_no_sprint_files_unplanned_with_label(client: FlaskClient, deps: Deps, tracker: FakeTracker) -> None:
    """Without a suitable sprint the issue is still filed, labelled needs-planning."""
    tracker.window = type(tracker.window)(current=None, next=None)
    submit(client)
    deps.runner.run(only_job(deps))
    (issue,) = tracker.issues
    assert "needs-planning" in issue.labels
    assert issue.sprint_id is None


def test_reporter_email_stays_out_of_the_tracker_by_default(
    client: FlaskClient, deps: Deps, tracker: FakeTracker
) -> None:
    """Personal data stays in the bridge unless configured otherwise."""
    submit(client)
    deps.runner.run(only_job(deps))
    assert tracker.issues[0].new_issue is not None
    assert tracker.issues[0].new_issue.reporter_email is None
    assert tracker.issues[0].new_issue.report.organization == "Kunde A/S"


def test_tracker_outage_is_retried_after_retry_after_then_filed_once(
    client: FlaskClient, deps: Deps, tracker: FakeTracker, clock: Clock
) -> None:
    """A 429/5xx puts the job back with the server's delay; a later attempt files exactly one issue."""
    submit(client)
    job_id = only_job(deps)
    tracker.fail_next["create_issue"] = [RetryableError("gitlab: HTTP 429", retry_after=30)]
    deps.runner.run(job_id)
    job = deps.store.job(job_id)
    assert job is not None
    assert job.state == "pending"
    assert "429" in (job.last_error or "")
    delay = (job.next_attempt_at - clock.now).total_seconds()
    assert 30 <= delay <= 31
    deps.runner.run(job_id)  # too early: not claimed
    assert tracker.calls.count("create_issue") == 1
    clock.advance(31)
    deps.runner.run(job_id)
    assert len(tracker.issues) == 1
    assert deps.store.job(job_id).state == "done"  # type: ignore[union-attr]


def test_created_but_answered_502_is_adopted_not_duplicated(
    client: FlaskClient, deps: Deps, tracker: FakeTracker, clock: Clock
) -> None:
    """A create that failed after the tracker stored the issue is found by its tracking ID on retry."""
    tracking_id = submit(client)
    job_id = only_job(deps)
    tracker.lose_response.append(RetryableError("gitlab: HTTP 502"))
    deps.runner.run(job_id)
    assert len(tracker.issues) == 1
    clock.advance(3600)
    deps.runner.run(job_id)
    assert len(tracker.issues) == 1
    assert "ensure_in_sprint" in tracker.calls
    ticket = deps.store.ticket_by_tracking_id(tracking_id)
    assert ticket is not None
    assert ticket.issue_key == tracker.issues[0].key
    assert ticket.status == "triaged"


LATER = Sprint(id="13", name="Sprint 52", start_date=date(2026, 12, 21), due_date=date(2027, 1, 3))


def jira_filing(make_deps: Callable[..., Deps]) -> tuple[Deps, FakeTracker, FlaskClient]:
    """Deps filing into the (fake) Jira: the sprint is set apart from the create, as in Jira."""
    deps = make_deps(trackers={"default": "jira"})
    jira = deps.trackers["jira"]
    assert isinstance(jira, FakeTracker)
    assert jira.sprint_on_create is False
    jira.window = SprintWindow(current=CURRENT, next=NEXT)
    return deps, jira, create_app(deps=deps).test_client()


def test_issue_key_is_stored_before_the_sprint_call(make_deps: Callable[..., Deps], clock: Clock) -> None:
    """Jira: the key is kept as soon as the create answers; a failing sprint call is retried alone,
    and the ticket is triaged only once the issue is in its sprint."""
    deps, jira, client = jira_filing(make_deps)
    tracking_id = submit(client)
    job_id = only_job(deps)
    jira.fail_next["ensure_in_sprint"] = [RetryableError("jira add to sprint: HTTP 503", retry_after=30)]
    deps.runner.run(job_id)
    ticket = deps.store.ticket_by_tracking_id(tracking_id)
    assert ticket is not None
    (issue,) = jira.issues
    assert (ticket.issue_key, ticket.status, ticket.filed_at) == (issue.key, "received", None)
    assert deps.store.job(job_id).state == "pending"  # type: ignore[union-attr]
    jira.unindexed.add(issue.key)  # search would not even find it: the stored key is what counts
    clock.advance(31)
    deps.runner.run(job_id)
    assert len(jira.issues) == 1
    assert jira.calls.count("create_issue") == 1
    assert "find_issue" not in jira.calls[jira.calls.index("create_issue") :]
    assert issue.sprint_id == CURRENT.id
    ticket = deps.store.ticket(ticket.id)
    assert (ticket.status, ticket.filed_at) == ("triaged", clock.now)
    assert [e.status for e in deps.store.history(ticket.id)] == ["received", "triaged"]


def test_sprint_closed_between_create_and_plan_replans_into_the_next_open_sprint(
    make_deps: Callable[..., Deps],
) -> None:
    """Jira answers 400 for the sprint that closed while the issue was being created: the sprint is
    chosen again from fresh sprints; one issue, its key stored, in the next open sprint, triaged."""
    deps, jira, client = jira_filing(make_deps)

    def close_current_sprint(_: object) -> None:
        jira.closed_sprints.add(CURRENT.id)
        jira.window = SprintWindow(current=NEXT, next=LATER)

    jira.on_create = close_current_sprint
    tracking_id = submit(client)  # critical: a hotfix for the current sprint
    job_id = only_job(deps)
    deps.runner.run(job_id)
    (issue,) = jira.issues
    assert issue.sprint_id == NEXT.id
    assert issue.new_issue is not None
    assert issue.new_issue.sprint == CURRENT
    ticket = deps.store.ticket_by_tracking_id(tracking_id)
    assert ticket is not None
    assert (ticket.issue_key, ticket.status, ticket.sprint_id, ticket.sprint_name) == (
        issue.key,
        "triaged",
        NEXT.id,
        NEXT.name,
    )
    assert deps.store.job(job_id).state == "done"  # type: ignore[union-attr]
    assert [n.status for n in deps.store.ticket_notifications(ticket.id) if n.kind == "status"] == ["triaged"]


def test_sprint_refused_with_no_other_sprint_files_unplanned(make_deps: Callable[..., Deps]) -> None:
    """When choosing again gives no open sprint, the issue stays filed and gets needs-planning."""
    deps, jira, client = jira_filing(make_deps)

    def close_every_sprint(_: object) -> None:
        jira.closed_sprints.add(CURRENT.id)
        jira.window = SprintWindow(current=None, next=None)

    jira.on_create = close_every_sprint
    tracking_id = submit(client)
    deps.runner.run(only_job(deps))
    (issue,) = jira.issues
    assert issue.sprint_id is None
    assert "needs-planning" in issue.labels
    ticket = deps.store.ticket_by_tracking_id(tracking_id)
    assert ticket is not None
    assert (ticket.status, ticket.planned, ticket.sprint_id) == ("triaged", True, None)


def test_create_with_unknown_outcome_waits_for_the_search_index_before_creating_again(
    make_deps: Callable[..., Deps], clock: Clock
) -> None:
    """A create answered 502 may have made the issue, and Jira's search may not show it for a while:
    no second create until the search had time to show it; then the issue is adopted."""
    deps, jira, client = jira_filing(make_deps)
    jira.search_lag_seconds = 60
    submit(client)
    job_id = only_job(deps)
    jira.lose_response.append(OutcomeUnknown("jira create issue: HTTP 502", retry_after=None))
    deps.runner.run(job_id)
    (issue,) = jira.issues
    jira.unindexed.add(issue.key)  # created, but not yet in the search index
    clock.advance(5)
    deps.runner.run(job_id)  # within the lag: nothing found, nothing created
    assert jira.calls.count("create_issue") == 1
    job = deps.store.job(job_id)
    assert job is not None
    assert job.state == "pending"
    assert (job.next_attempt_at - job.created_at).total_seconds() >= 60
    jira.unindexed.clear()  # the index caught up
    clock.now = job.next_attempt_at
    deps.runner.run(job_id)
    assert len(jira.issues) == 1
    assert deps.store.job(job_id).state == "done"  # type: ignore[union-attr]
    assert issue.sprint_id == CURRENT.id


def test_create_with_unknown_outcome_that_made_nothing_is_repeated_after_the_lag(
    make_deps: Callable[..., Deps], clock: Clock
) -> None:
    """A create that timed out without making the issue: after the search lag, one new create."""
    deps, jira, client = jira_filing(make_deps)
    jira.search_lag_seconds = 60
    tracking_id = submit(client)
    job_id = only_job(deps)
    jira.fail_next["create_issue"] = [OutcomeUnknown("jira create issue: ReadTimeout")]
    deps.runner.run(job_id)
    ticket = deps.store.ticket_by_tracking_id(tracking_id)
    assert ticket is not None
    assert ticket.create_attempted_at == clock.now
    clock.advance(5)
    deps.runner.run(job_id)
    job = deps.store.job(job_id)
    assert job is not None
    assert jira.calls.count("create_issue") == 1
    assert (job.next_attempt_at - clock.now).total_seconds() >= 55 - 1
    clock.now = job.next_attempt_at
    deps.runner.run(job_id)
    assert jira.calls.count("create_issue") == 2
    assert len(jira.issues) == 1
    assert deps.store.job(job_id).state == "done"  # type: ignore[union-attr]


def test_refused_create_is_repeated_without_waiting_for_the_search_index(
    make_deps: Callable[..., Deps], clock: Clock
) -> None:
    """A 429 says the create was not done: the next attempt creates at once, no search-lag wait."""
    deps, jira, client = jira_filing(make_deps)
    jira.search_lag_seconds = 60
    tracking_id = submit(client)
    job_id = only_job(deps)
    jira.fail_next["create_issue"] = [RetryableError("jira create issue: HTTP 429", retry_after=2)]
    deps.runner.run(job_id)
    ticket = deps.store.ticket_by_tracking_id(tracking_id)
    assert ticket is not None
    assert ticket.create_attempted_at is None
    clock.advance(3)
    deps.runner.run(job_id)
    assert jira.calls.count("create_issue") == 2
    assert len(jira.issues) == 1
    assert deps.store.job(job_id).state == "done"  # type: ignore[union-attr]


def test_worker_killed_after_create_loses_and_duplicates_nothing(
    client: FlaskClient, deps: Deps, tracker: FakeTracker, clock: Clock
) -> None:
    """SIGKILL between the tracker's answer and our commit: the job is taken again after its lease."""
    submit(client)
    job_id = only_job(deps)
    tracker.lose_response.append(KilledWorker())  # type: ignore[arg-type]
    with pytest.raises(KilledWorker):
        deps.runner.run(job_id)
    assert deps.store.job(job_id).state == "running"  # type: ignore[union-attr]
    assert job_id not in deps.store.jobs_to_sweep(grace=SWEEP_GRACE)  # lease still held
    clock.advance(deps.settings.delivery.lease_seconds + 1)
    assert job_id in deps.store.jobs_to_sweep(grace=SWEEP_GRACE)
    deps.runner.run(job_id)
    assert len(tracker.issues) == 1
    assert deps.store.job(job_id).state == "done"  # type: ignore[union-attr]


def test_lost_enqueue_is_swept(client: FlaskClient, deps: Deps, clock: Clock) -> None:
    """A stored job the queue never got (crash after commit) is re-queued by the sweep."""
    submit(client)
    assert deps.store.jobs_to_sweep(grace=SWEEP_GRACE) == []  # not overdue yet
    clock.advance(31)
    assert only_job(deps) in deps.store.jobs_to_sweep(grace=SWEEP_GRACE)
    assert deps.runner.sweep() == 2  # the filing job and the acknowledgement


def test_permanent_rejection_is_a_dead_letter_with_the_reason_and_replayable(
    client: FlaskClient, deps: Deps, tracker: FakeTracker
) -> None:
    """A 400/403/404 is not retried: the job is dead with the tracker's message, and replay works."""
    submit(client)
    job_id = only_job(deps)
    tracker.fail_next["create_issue"] = [PermanentError("gitlab create issue: HTTP 403: 403 Forbidden")]
    deps.runner.run(job_id)
    job = deps.store.job(job_id)
    assert job is not None
    assert job.state == "dead"
    assert "403 Forbidden" in (job.last_error or "")
    assert tracker.issues == []
    assert deps.store.replay(job_id) is True
    deps.runner.run(job_id)
    assert len(tracker.issues) == 1
    assert deps.store.job(job_id).state == "done"  # type: ignore[union-attr]


def test_retries_stop_at_the_horizon(make_deps: Callable[..., Deps], tracker: FakeTracker, clock: Clock) -> None:
    """A tracker down for longer than the horizon ends the job dead, never retried forever."""
    deps = make_deps(delivery={"retry_horizon_hours": 2})
    submit(create_app(deps=deps).test_client())
    job_id = only_job(deps)
    tracker.fail_next["create_issue"] = [RetryableError("gitlab: HTTP 503") for _ in range(10_000)]
    for _ in range(10_000):
        job = deps.store.job(job_id)
        assert job is not None
        if job.state == "dead":
            break
        clock.now = max(clock.now, job.next_attempt_at)
        deps.runner.run(job_id)
    job = deps.store.job(job_id)
    assert job is not None
    assert job.state == "dead"
    assert "gave up after" in (job.last_error or "")
    assert "503" in (job.last_error or "")
    assert timedelta(hours=1.9) <= clock.now - job.created_at <= timedelta(hours=2)
    assert tracker.issues == []


def test_followup_waits_behind_the_filing_job_then_comments(
    client: FlaskClient, deps: Deps, tracker: FakeTracker, clock: Clock
) -> None:
    """Per-ticket order: a follow-up never overtakes the still-failing filing job."""
    tracking_id = submit(client)
    followup = {
        "event_id": "f1",
        "type": "report.followup",
        "tracking_id": tracking_id,
        "reporter": {"email": "anna@kunde.dk"},
        "message": "Også på mobil.",
    }
    assert post_event(client, followup).status_code == 202
    file_job, followup_job = only_job(deps), only_job(deps, "apply_followup")
    tracker.fail_next["create_issue"] = [RetryableError("down", retry_after=60)]
    deps.runner.run(file_job)
    deps.runner.run(followup_job)
    assert deps.store.job(followup_job).state == "pending"  # type: ignore[union-attr]
    assert "add_comment" not in tracker.calls
    clock.advance(61)
    deps.runner.run(file_job)
    deps.runner.run(followup_job)
    assert tracker.issues[0].comments == ["The reporter added:\n\nOgså på mobil."]
    assert deps.store.job(followup_job).state == "done"  # type: ignore[union-attr]


def test_followup_text_reaches_the_tracker_as_reporter_text(
    client: FlaskClient, deps: Deps, tracker: FakeTracker
) -> None:
    """The reporter's message is handed to the adapter apart from the bridge's heading, so the adapter
    makes it inert (Jira {noformat}, GitLab quote) instead of posting it as live markup."""
    tracking_id = submit(client)
    deps.runner.run(only_job(deps))
    message = "Se [~accountid:5b10ac8d82e05b22cc7d4ef5] og !https://evil.example/p.png!"
    followup = {
        "event_id": "f-markup",
        "type": "report.followup",
        "tracking_id": tracking_id,
        "reporter": {"email": "anna@kunde.dk"},
        "message": message,
    }
    assert post_event(client, followup).status_code == 202
    deps.runner.run(only_job(deps, "apply_followup"))
    assert tracker.issues[0].reporter_texts == [message]
    assert tracker.issues[0].comments == [f"The reporter added:\n\n{message}"]


def test_not_fixed_on_resolved_ticket_reopens(client: FlaskClient, deps: Deps, tracker: FakeTracker) -> None:
    """ "The fix did not work" on a resolved ticket reopens the issue and the ticket."""
    tracking_id = submit(client)
    deps.runner.run(only_job(deps))
    ticket = deps.store.ticket_by_tracking_id(tracking_id)
    assert ticket is not None
    deps.store.set_status(ticket.id, Status.RESOLVED)
    tracker.issues[0].state = "closed"
    followup = {
        "event_id": "f2",
        "type": "report.followup",
        "tracking_id": tracking_id,
        "reporter": {"email": "anna@kunde.dk"},
        "message": "Det virker stadig ikke.",
        "not_fixed": True,
    }
    post_event(client, followup)
    deps.runner.run(only_job(deps, "apply_followup"))
    assert tracker.issues[0].state == "opened"
    assert tracker.issues[0].comments[0].startswith("The reporter says the fix did not work")
    assert deps.store.ticket(ticket.id).status == "reopened"


def test_reopen_failure_after_comment_does_not_repeat_the_comment(
    client: FlaskClient, deps: Deps, tracker: FakeTracker, clock: Clock
) -> None:
    """A retry after a failed reopen does not post the reporter's comment twice."""
    tracking_id = submit(client)
    deps.runner.run(only_job(deps))
    ticket = deps.store.ticket_by_tracking_id(tracking_id)
    assert ticket is not None
    deps.store.set_status(ticket.id, Status.RESOLVED)
    post_event(
        client,
        {
            "event_id": "f3",
            "type": "report.followup",
            "tracking_id": tracking_id,
            "reporter": {"email": "anna@kunde.dk"},
            "message": "Nope",
            "not_fixed": True,
        },
    )
    tracker.fail_next["reopen"] = [RetryableError("503")]
    job_id = only_job(deps, "apply_followup")
    deps.runner.run(job_id)
    clock.advance(3600)
    deps.runner.run(job_id)
    assert len(tracker.issues[0].comments) == 1
    assert deps.store.ticket(ticket.id).status == "reopened"


def test_route_sends_matching_reports_to_jira_with_priority(make_deps: Callable[..., Deps], mappings: Mappings) -> None:
    """A routing rule on product files into Jira with Jira labels and priority."""
    routing = mappings.routing.model_copy(
        update={"routes": [Route(name="billing", when=RouteCondition(product=["billing"]), tracker="jira")]}
    )
    deps = make_deps(dataclasses.replace(mappings, routing=routing))
    client = create_app(deps=deps).test_client()
    event = report_event()
    event["report"]["product"] = "Billing"
    submit(client, **event)
    deps.runner.run(only_job(deps))
    jira = deps.trackers["jira"]
    assert isinstance(jira, FakeTracker)
    (issue,) = jira.issues
    assert issue.project == "SUP"
    assert issue.priority == "Highest"
    # the fake Jira board has no sprints, so the issue also needs planning; SUP has no components,
    # so the category is a label
    assert set(issue.labels) == {
        "severity-critical",
        "hotfix",
        "source-chatbot",
        "needs-po-review",
        "needs-planning",
        "category-billing",
    }
    assert issue.components == ()
    assert deps.trackers["gitlab"].issues == []  # type: ignore[attr-defined]
