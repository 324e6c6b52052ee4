"""Reporter follow-ups after resolution or decline, and reconciliation of lost webhooks."""

from __future__ import annotations

from datetime import timedelta

from flask.testing import FlaskClient
from sqlalchemy import select

from bridge.adapters.store.models import Followup, Ticket
from bridge.bootstrap import Deps
from bridge.domain import Status
from bridge.errors import RetryableError
from tests.conftest import Clock, post_event, report_event
from tests.fakes import FakeTracker


def filed(client: FlaskClient, deps: Deps) -> Ticket:
    tracking_id = post_event(client, report_event()).get_json()["tracking_id"]
    run(deps, "file_ticket")
    ticket = deps.store.ticket_by_tracking_id(tracking_id)
    assert ticket is not None
    assert ticket.issue_key is not None
    return ticket


def run(deps: Deps, kind: str) -> None:
    for job in sorted(deps.store.jobs(state="pending", limit=1000), key=lambda j: j.id):
        if job.kind == kind:
            deps.runner.run(job.id)


def not_fixed(client: FlaskClient, ticket: Ticket, event_id: str = "f1") -> None:
    response = post_event(
        client,
        {
            "event_id": event_id,
            "type": "report.followup",
            "tracking_id": ticket.tracking_id,
            "reporter": {"email": ticket.reporter_email},
            "message": "Stadig i stykker.",
            "not_fixed": True,
        },
    )
    assert response.status_code == 202


def test_not_fixed_long_after_resolution_opens_a_linked_ticket(
    client: FlaskClient, deps: Deps, tracker: FakeTracker, clock: Clock
) -> None:
    """Past the reopen window a new ticket is opened, linked to the old one, which stays resolved."""
    ticket = filed(client, deps)
    deps.store.set_status(ticket.id, Status.RESOLVED)
    tracker.issues[0].state = "closed"
    clock.advance(timedelta(days=31).total_seconds())
    not_fixed(client, ticket)
    run(deps, "apply_followup")
    run(deps, "apply_followup")  # a second run must not open a second ticket
    with deps.store.session() as session:
        new = session.scalars(select(Ticket).where(Ticket.linked_ticket_id == ticket.id)).all()
        followup = session.scalars(select(Followup)).one()
    assert len(new) == 1
    assert new[0].tracking_id != ticket.tracking_id
    assert new[0].reporter_email == ticket.reporter_email
    assert ticket.tracking_id in new[0].description
    assert followup.spawned_ticket_id == new[0].id
    assert deps.store.ticket(ticket.id).status == "resolved"
    assert tracker.issues[0].state == "closed"
    assert "new linked ticket" in tracker.issues[0].comments[0]
    run(deps, "file_ticket")
    assert len(tracker.issues) == 2
    assert tracker.issues[1].title.startswith(f"[{new[0].tracking_id}]")


def test_not_fixed_within_window_reopens(client: FlaskClient, deps: Deps, tracker: FakeTracker, clock: Clock) -> None:
    """Inside the window the same issue is reopened with the message."""
    ticket = filed(client, deps)
    deps.store.set_status(ticket.id, Status.RESOLVED)
    tracker.issues[0].state = "closed"
    clock.advance(timedelta(days=29).total_seconds())
    not_fixed(client, ticket)
    run(deps, "apply_followup")
    assert tracker.issues[0].state == "opened"
    assert deps.store.ticket(ticket.id).status == "reopened"


def test_not_fixed_on_declined_flags_support_without_reopening(
    client: FlaskClient, deps: Deps, tracker: FakeTracker
) -> None:
    """A declined ticket is not reopened by the reporter: comment plus a label for support."""
    ticket = filed(client, deps)
    deps.store.set_status(ticket.id, Status.DECLINED, reason="wont_fix")
    tracker.issues[0].state = "closed"
    not_fixed(client, ticket)
    run(deps, "apply_followup")
    issue = tracker.issues[0]
    assert issue.state == "closed"
    assert "needs-support-review" in issue.labels
    assert issue.comments == ["The reporter says the fix did not work:\n\nStadig i stykker."]
    assert deps.store.ticket(ticket.id).status == "declined"


def test_reconciliation_catches_a_lost_webhook(
    client: FlaskClient, deps: Deps, tracker: FakeTracker, clock: Clock
) -> None:
    """A change the tracker never announced is found by the periodic reconciliation."""
    ticket = filed(client, deps)
    deps.reconciler.run()  # first run sets the cursor
    run(deps, "sync_ticket")
    tracker.now = lambda: clock.now
    clock.advance(600)
    issue = tracker.issues[0]
    issue.labels, issue.updated_at = (*issue.labels, "workflow::in progress"), clock.now
    assert deps.reconciler.run() == 1
    assert deps.reconciler.run() == 0  # already waiting: not queued twice
    run(deps, "sync_ticket")
    assert deps.store.ticket(ticket.id).status == "in_progress"


def test_reconciliation_keeps_its_cursor_when_the_tracker_is_down(
    client: FlaskClient, deps: Deps, tracker: FakeTracker, clock: Clock
) -> None:
    """A failed poll is retried over the same window next time."""
    filed(client, deps)
    deps.reconciler.run()
    before = deps.store.cursor("gitlab:acme/support")
    clock.advance(600)
    tracker.fail_next["changed_since"] = [RetryableError("503")]
    assert deps.reconciler.run() == 0
    assert deps.store.cursor("gitlab:acme/support") == before
    clock.advance(600)
    deps.reconciler.run()
    assert deps.store.cursor("gitlab:acme/support") == clock.now


def file_several(client: FlaskClient, deps: Deps, count: int) -> list[Ticket]:
    for n in range(count):
        assert post_event(client, report_event(event_id=f"evt_many_{n}")).status_code == 202
    run(deps, "file_ticket")
    with deps.store.session() as session:
        return list(session.scalars(select(Ticket).order_by(Ticket.id)).all())


def test_reconciliation_reads_on_where_a_cut_listing_stopped(
    client: FlaskClient, deps: Deps, tracker: FakeTracker, clock: Clock
) -> None:
    """A listing holds at most so many changes (the adapters: 20 pages of 100). With more, the cursor
    moves only to the last change listed, so the next run finds the rest instead of skipping them."""
    tickets = file_several(client, deps, 3)
    deps.reconciler.run()
    run(deps, "sync_ticket")
    tracker.now = lambda: clock.now
    clock.advance(600)
    for offset, issue in enumerate(tracker.issues):
        issue.labels, issue.updated_at = (*issue.labels, "workflow::in progress"), clock.now + timedelta(seconds=offset)
    tracker.changed_limit = 2
    clock.advance(600)

    assert deps.reconciler.run() == 2
    run(deps, "sync_ticket")
    clock.advance(600)
    deps.reconciler.run()
    run(deps, "sync_ticket")

    assert [deps.store.ticket(t.id).status for t in tickets] == ["in_progress"] * 3
    clock.advance(600)
    deps.reconciler.run()  # complete again: the cursor is back at the run's start
    assert deps.store.cursor("gitlab:acme/support") == clock.now


def test_reconciliation_steps_past_an_instant_with_more_changes_than_a_listing_holds(
    client: FlaskClient, deps: Deps, tracker: FakeTracker, clock: Clock
) -> None:
    """Changes that all share one instant and fill every listing: the cursor still moves on each run,
    instead of reading the same listing for ever."""
    file_several(client, deps, 3)
    deps.reconciler.run()
    tracker.now = lambda: clock.now
    clock.advance(600)
    for issue in tracker.issues:
        issue.updated_at = clock.now
    tracker.changed_limit = 2
    clock.advance(600)

    cursors = []
    for _ in range(3):
        deps.reconciler.run()
        cursors.append(deps.store.cursor("gitlab:acme/support"))
        clock.advance(600)

    assert cursors == sorted(set(cursors))  # strictly increasing
