"""Reporter emails end to end: webhook -> jobs -> Notifier -> mailer, and the unsubscribe page."""

from __future__ import annotations

import re
from collections.abc import Sequence
from email.message import EmailMessage
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from bridge.adapters.store.models import Job, Notification, Ticket
from bridge.bootstrap import Deps
from bridge.domain import Status
from bridge.errors import PermanentError, RetryableError
from bridge.pipeline.intake.chatbot import open_ticket
from bridge.tracking import status_signature, status_url, unsubscribe_url
from tests.conftest import NEXT, Clock, post_event, report_event
from tests.fakes import RecordingMailer

MAIL = {"mail_from": "Kundeservice <support@example.com>", "reply_to": "support+{token}@example.com"}
DEBOUNCE = 60
DASH = "\N{EN DASH}"  # between the dates of a sprint
XSS = '<script>alert("x")</script><img src=x onerror=alert(1)> Prøv igen & skriv'


@pytest.fixture
def deps(make_deps: Any) -> Deps:
    """The conftest deps with a configured sender and reply address."""
    built: Deps = make_deps(mail=MAIL)
    return built


# --- helpers --------------------------------------------------------------------------------


def drain(deps: Deps) -> None:
    """Run every job that is due, as the worker would, until none is left to run now."""
    for _ in range(20):
        now = deps.clock()
        due = sorted(j.id for j in deps.store.jobs(state="pending", limit=1000) if j.next_attempt_at <= now)
        if not due:
            return
        for job_id in due:
            deps.runner.run(job_id)


def submit(client: FlaskClient, deps: Deps, **reporter: str) -> Ticket:
    event = report_event()
    event["reporter"] = {**event["reporter"], **reporter}
    response = post_event(client, event)
    assert response.status_code == 202, response.json
    ticket = deps.store.ticket_by_tracking_id(response.json["tracking_id"])
    assert ticket is not None
    return ticket


def filed(client: FlaskClient, deps: Deps, clock: Clock, mailer: RecordingMailer, **reporter: str) -> Ticket:
    """A report acknowledged, filed and announced as triaged: two emails sent."""
    ticket = submit(client, deps, **reporter)
    drain(deps)
    clock.advance(DEBOUNCE)
    drain(deps)
    assert len(mailer.sent) == 2
    return deps.store.ticket(ticket.id)


def bodies(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert isinstance(text, EmailMessage)
    assert isinstance(html, EmailMessage)
    return text.get_content(), html.get_content()


def notifications(deps: Deps, ticket_id: int) -> Sequence[Notification]:
    with deps.store.session() as session:
        return session.scalars(
            select(Notification).where(Notification.ticket_id == ticket_id).order_by(Notification.id)
        ).all()


def notify_jobs(deps: Deps) -> list[Job]:
    return sorted((j for j in deps.store.jobs(limit=1000) if j.kind == "notify"), key=lambda j: j.id)


def make_pending(deps: Deps, job_id: int) -> None:
    """What a worker killed before finishing the job leaves behind: the job runs again."""
    with deps.store.session() as session:
        session.execute(update(Job).where(Job.id == job_id).values(state="pending", next_attempt_at=deps.clock()))


# --- the acknowledgement --------------------------------------------------------------------


def test_ack_email_in_danish_with_every_header(client: FlaskClient, deps: Deps, mailer: RecordingMailer) -> None:
    """The Danish acknowledgement: summary, status link, reply token, unsubscribe and loop-prevention headers."""
    ticket = submit(client, deps)
    drain(deps)

    assert len(mailer.sent) == 1
    msg = mailer.sent[0]
    tid = ticket.tracking_id
    assert msg["Subject"] == f"[{tid}] Vi har modtaget din fejlrapport"
    assert msg["From"] == "Kundeservice <support@example.com>"
    assert msg["To"].addresses[0].addr_spec == "anna@kunde.dk"
    assert msg["Reply-To"] == f"support+{ticket.reply_token}@example.com"
    assert re.fullmatch(rf"<{tid.lower()}\.n\d+@example\.com>", msg["Message-ID"])
    assert msg["In-Reply-To"] is None
    assert msg["References"] is None
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Auto-Response-Suppress"] == "All"
    unsubscribe = unsubscribe_url("https://bridge.example", deps.secret_key, tid)
    assert msg["List-Unsubscribe"] == (
        f"<{unsubscribe}>, <mailto:support+{ticket.reply_token}@example.com?subject=unsubscribe%20{tid}>"
    )
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Content-Language"] == "da"
    assert msg.get_content_type() == "multipart/alternative"

    text, html = bodies(msg)
    link = status_url("https://bridge.example", deps.secret_key, tid)
    for body in (text, html):
        assert tid in body
        assert link in body
        assert "Chat-widget indlæses ikke" in body
        assert "Siden viser kun en spinner siden i morges." in body
        assert "Ingen af vores kunder kan skrive til os" in body
        assert "Kritisk" in body
        assert unsubscribe in body
    assert text.startswith("Hej Anna\n\nTak, fordi du tog dig tid til at skrive til os.")
    assert '<html lang="da">' in html
    [note] = [n for n in notifications(deps, ticket.id) if n.kind == "ack"]
    assert (note.state, note.message_id, note.sent_at) == ("sent", msg["Message-ID"], deps.clock())


def test_ack_email_in_english(client: FlaskClient, deps: Deps, mailer: RecordingMailer) -> None:
    """A reporter with locale en-GB is written to in English."""
    ticket = submit(client, deps, locale="en-GB")
    drain(deps)
    [msg] = mailer.sent
    assert msg["Subject"] == f"[{ticket.tracking_id}] We have received your problem report"
    assert msg["Content-Language"] == "en"
    text, html = bodies(msg)
    assert text.startswith("Hi Anna,\n\nThank you for taking the time to write to us.")
    assert "Vi har" not in text
    assert '<html lang="en">' in html


# --- status emails --------------------------------------------------------------------------


def test_triaged_email_waits_for_the_debounce_and_names_sprint_and_dates(
    client: FlaskClient, deps: Deps, mailer: RecordingMailer, clock: Clock
) -> None:
    """After filing, the triaged email goes once the debounce has passed, with kind, sprint and dates."""
    ticket = submit(client, deps)
    drain(deps)
    assert deps.store.ticket(ticket.id).status == "triaged"
    assert len(mailer.sent) == 1  # only the acknowledgement: the status email waits

    clock.advance(DEBOUNCE)
    drain(deps)
    assert len(mailer.sent) == 2
    msg = mailer.sent[1]
    assert msg["Subject"] == f"[{ticket.tracking_id}] Planlagt som hotfix i den aktuelle sprint"
    text, html = bodies(msg)
    for body in (text, html):
        assert "Sprint 48" in body
        assert f"23. november {DASH} 6. december 2026" in body
        assert "hotfix" in body


def test_threading_headers_chain_to_the_first_and_the_previous_email(
    client: FlaskClient, deps: Deps, mailer: RecordingMailer, clock: Clock
) -> None:
    """In-Reply-To is the previous email; References the first (ack) and the previous one."""
    ticket = filed(client, deps, clock, mailer)
    ack, triaged = mailer.sent
    assert triaged["In-Reply-To"] == ack["Message-ID"]
    assert triaged["References"] == ack["Message-ID"]

    deps.store.set_status(ticket.id, Status.IN_PROGRESS)
    clock.advance(DEBOUNCE)
    drain(deps)
    third = mailer.sent[2]
    assert third["Subject"] == f"[{ticket.tracking_id}] En udvikler arbejder på fejlen"
    assert third["In-Reply-To"] == triaged["Message-ID"]
    assert third["References"] == f"{ack['Message-ID']} {triaged['Message-ID']}"
    assert len({m["Message-ID"] for m in mailer.sent}) == 3


def test_flapping_inside_the_window_sends_one_email_with_the_final_state(
    client: FlaskClient, deps: Deps, mailer: RecordingMailer, clock: Clock
) -> None:
    """Three status changes within the debounce window: one email, saying where the ticket ended."""
    ticket = filed(client, deps, clock, mailer)
    for status in (Status.IN_PROGRESS, Status.IN_QA, Status.RESOLVED):
        deps.store.set_status(ticket.id, status)
        clock.advance(10)
        drain(deps)
    assert len(mailer.sent) == 2

    clock.advance(DEBOUNCE)
    drain(deps)
    assert len(mailer.sent) == 3
    assert mailer.sent[2]["Subject"] == f"[{ticket.tracking_id}] Fejlen er rettet"
    states = [(n.status, n.state) for n in notifications(deps, ticket.id) if n.kind == "status"]
    assert states == [("triaged", "sent"), ("in_progress", "superseded"), ("in_qa", "superseded"),
                      ("resolved", "sent")]  # fmt: skip


def test_status_email_tells_the_current_status_not_the_one_that_scheduled_it(
    client: FlaskClient, deps: Deps, mailer: RecordingMailer, clock: Clock
) -> None:
    """The newest notification announces where the ticket is when the email goes, and records that."""
    ticket = filed(client, deps, clock, mailer, locale="en")
    deps.store.set_status(ticket.id, Status.IN_PROGRESS)
    with deps.store.session() as session:  # a later state reached without a newer notification
        session.execute(update(Ticket).where(Ticket.id == ticket.id).values(status=Status.IN_QA.value))
    clock.advance(DEBOUNCE)
    drain(deps)
    assert mailer.sent[2]["Subject"] == f"[{ticket.tracking_id}] The fix is being tested"
    assert [n.status for n in notifications(deps, ticket.id) if n.kind == "status"] == ["triaged", "in_qa"]


def test_change_and_change_back_sends_nothing(
    client: FlaskClient, deps: Deps, mailer: RecordingMailer, clock: Clock
) -> None:
    """Back where the reporter already is before the window ends: no email at all."""
    ticket = filed(client, deps, clock, mailer)
    deps.store.set_status(ticket.id, Status.IN_PROGRESS)
    deps.store.set_status(ticket.id, Status.TRIAGED)
    clock.advance(DEBOUNCE)
    drain(deps)
    assert len(mailer.sent) == 2
    states = [n.state for n in notifications(deps, ticket.id) if n.kind == "status"]
    assert states == ["sent", "superseded", "skipped"]


def test_declined_email_gives_the_reason(
    client: FlaskClient, deps: Deps, mailer: RecordingMailer, clock: Clock
) -> None:
    """Closed without a fix: subject and body carry the reason, worded for people."""
    ticket = filed(client, deps, clock, mailer, locale="en")
    deps.store.set_status(ticket.id, Status.DECLINED, reason="cannot_reproduce")
    clock.advance(DEBOUNCE)
    drain(deps)
    msg = mailer.sent[2]
    assert msg["Subject"] == f"[{ticket.tracking_id}] Closed without a fix: we could not reproduce the problem"
    text, html = bodies(msg)
    assert "Reason: We could not reproduce the problem." in text
    assert "Reason: We could not reproduce the problem." in html


def test_plan_change_email_names_the_new_kind_and_sprint(
    client: FlaskClient, deps: Deps, mailer: RecordingMailer, clock: Clock
) -> None:
    """Support lowered the severity: the reporter hears the new kind and sprint."""
    ticket = filed(client, deps, clock, mailer)
    with deps.store.session() as session:
        row = session.get(Ticket, ticket.id)
        assert row is not None
        row.kind, row.sprint_slot, row.sprint_name = "bugfix", "next", "Sprint 50"
        row.sprint_start, row.sprint_due = NEXT.start_date, NEXT.due_date
        deps.notices.plan_changed(session, row, change_key="severity:1", now=clock())
    clock.advance(DEBOUNCE)
    drain(deps)
    msg = mailer.sent[2]
    assert msg["Subject"] == f"[{ticket.tracking_id}] Din sag er blevet omprioriteret"
    text, _ = bodies(msg)
    assert f"planlagt som fejlrettelse i næste sprint, Sprint 50 (7. december {DASH} 20. december 2026)" in text


# --- exactly once ---------------------------------------------------------------------------


def test_rerun_of_a_sent_notification_sends_nothing(client: FlaskClient, deps: Deps, mailer: RecordingMailer) -> None:
    """A notify job run again after its email was recorded as sent (redelivery) sends nothing."""
    submit(client, deps)
    drain(deps)
    ack_job = notify_jobs(deps)[0]
    make_pending(deps, ack_job.id)
    deps.runner.run(ack_job.id)
    assert len(mailer.sent) == 1
    job = deps.store.job(ack_job.id)
    assert job is not None
    assert job.state == "done"


def test_resend_after_a_lost_commit_keeps_the_message_id(
    client: FlaskClient, deps: Deps, mailer: RecordingMailer
) -> None:
    """Crash between SMTP accept and our commit: the unavoidable resend has the same Message-ID."""
    ticket = submit(client, deps)
    drain(deps)
    ack_job = notify_jobs(deps)[0]
    with deps.store.session() as session:  # as if the "sent" commit never happened
        session.execute(
            update(Notification)
            .where(Notification.ticket_id == ticket.id)
            .values(state="pending", message_id=None, sent_at=None)
        )
    make_pending(deps, ack_job.id)
    deps.runner.run(ack_job.id)
    assert len(mailer.sent) == 2
    assert mailer.sent[0]["Message-ID"] == mailer.sent[1]["Message-ID"]


def test_mailer_outage_is_retried_and_the_email_sent_exactly_once(
    client: FlaskClient, deps: Deps, mailer: RecordingMailer, clock: Clock
) -> None:
    """A RetryableError keeps the notification pending; the retry sends it, once."""
    mailer.fail_next = [RetryableError("smtp mail.example:587: connect: ConnectionRefusedError")]
    ticket = submit(client, deps)
    drain(deps)
    assert mailer.sent == []
    ack_job = notify_jobs(deps)[0]
    job = deps.store.job(ack_job.id)
    assert job is not None
    assert (job.state, job.attempts) == ("pending", 1)
    assert "ConnectionRefusedError" in (job.last_error or "")
    assert [n.state for n in notifications(deps, ticket.id) if n.kind == "ack"] == ["pending"]

    clock.advance(15)  # past the backoff, before the triaged email is due
    drain(deps)
    clock.advance(3600)
    drain(deps)
    acks = [m for m in mailer.sent if "modtaget" in m["Subject"]]
    assert len(acks) == 1
    assert [n.state for n in notifications(deps, ticket.id)] == ["sent", "sent"]


def test_permanent_mail_failure_dead_letters_and_a_replay_sends_it(
    client: FlaskClient, deps: Deps, mailer: RecordingMailer
) -> None:
    """A PermanentError dead-letters the job, the notification stays pending; replay sends it once."""
    mailer.fail_next = [PermanentError("smtp mail.example:587: send: 554 5.7.1 rejected")]
    ticket = submit(client, deps)
    drain(deps)
    ack_job = notify_jobs(deps)[0]
    job = deps.store.job(ack_job.id)
    assert job is not None
    assert job.state == "dead"
    assert [n.state for n in notifications(deps, ticket.id) if n.kind == "ack"] == ["pending"]
    assert deps.store.replay(ack_job.id)
    drain(deps)
    assert len(mailer.sent) == 1


def test_list_unsubscribe_urls_stay_readable_on_the_wire(
    client: FlaskClient, deps: Deps, mailer: RecordingMailer
) -> None:
    """A mail client reads the raw header: the mailto URL must not become RFC 2047 encoded-words,
    which the default folding makes of any token longer than a line."""
    ticket = submit(client, deps)
    drain(deps)
    raw = mailer.sent[0].as_bytes().decode("ascii")
    header = re.search(r"^List-Unsubscribe: .*?\r\n(?! )", raw, re.MULTILINE | re.DOTALL)
    assert header is not None
    assert "=?" not in header.group(0)
    mailto = f"<mailto:support+{ticket.reply_token}@example.com?subject=unsubscribe%20{ticket.tracking_id}>"
    assert mailto in header.group(0)
    unsubscribe = unsubscribe_url("https://bridge.example", deps.secret_key, ticket.tracking_id)
    assert f"<{unsubscribe}>" in header.group(0)
    assert all(len(line) <= 998 for line in raw.split("\r\n"))


# --- muting and unsubscribing ---------------------------------------------------------------


def unsubscribe_path(deps: Deps, tracking_id: str) -> str:
    return unsubscribe_url("", deps.secret_key, tracking_id)


def test_an_email_that_cannot_be_addressed_is_a_dead_letter_at_once(
    deps: Deps, mailer: RecordingMailer, clock: Clock
) -> None:
    """A ticket stored before addresses were checked, with ``x@kunde.dk.``: building To: fails, and
    always will, so the acknowledgement is dead after one attempt (not retried for 72 h), with a
    reason that names the ticket and not the address."""
    now = clock.now
    ticket = Ticket(
        status=Status.RECEIVED.value,
        channel="chatbot",
        locale="da",
        reporter_email="x@kunde.dk.",
        reporter_name="Anna Jensen",
        title="Chat-widget indlæses ikke",
        description="Siden viser kun en spinner.",
        environment={},
        attachments=[],
        reply_token="b" * 32,
        created_at=now,
        updated_at=now,
    )
    with deps.store.session() as session:
        open_ticket(deps.store, session, ticket, now)
    (ack,) = [j for j in deps.store.jobs() if j.kind == "notify"]

    deps.runner.run(ack.id)

    job = deps.store.job(ack.id)
    assert job is not None
    assert (job.state, job.attempts) == ("dead", 1)
    assert ticket.tracking_id in (job.last_error or "")
    assert "cannot address the email" in (job.last_error or "")
    assert "kunde.dk" not in (job.last_error or "")
    assert mailer.sent == []


def test_muted_ticket_gets_no_email(client: FlaskClient, deps: Deps, mailer: RecordingMailer, clock: Clock) -> None:
    """After unsubscribing nothing is sent: every pending notification ends skipped."""
    ticket = submit(client, deps)
    assert client.post(unsubscribe_path(deps, ticket.tracking_id)).status_code == 200
    drain(deps)
    clock.advance(DEBOUNCE)
    drain(deps)
    assert mailer.sent == []
    assert [n.state for n in notifications(deps, ticket.id)] == ["skipped", "skipped"]


def test_unsubscribe_page_get_confirms_without_muting(client: FlaskClient, deps: Deps) -> None:
    """GET shows a Danish confirmation page with a button; it does not mute (link scanners fetch links)."""
    ticket = submit(client, deps)
    path = unsubscribe_path(deps, ticket.tracking_id)
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "Afmeld mails om sag" in page
    assert f'action="{path}"' in page
    assert response.headers["Content-Language"] == "da"
    assert deps.store.ticket(ticket.id).notifications_muted is False


def test_unsubscribe_button_post_mutes_and_confirms(client: FlaskClient, deps: Deps) -> None:
    """POST from the page's button mutes the ticket and says so."""
    ticket = submit(client, deps, locale="en")
    response = client.post(unsubscribe_path(deps, ticket.tracking_id), data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert "You are unsubscribed" in response.get_data(as_text=True)
    assert deps.store.ticket(ticket.id).notifications_muted is True
    again = client.get(unsubscribe_path(deps, ticket.tracking_id))
    assert "You are unsubscribed" in again.get_data(as_text=True)


def test_rfc8058_one_click_post_mutes(client: FlaskClient, deps: Deps) -> None:
    """The mail client's one-click POST (body List-Unsubscribe=One-Click) mutes the ticket."""
    ticket = submit(client, deps)
    response = client.post(
        unsubscribe_path(deps, ticket.tracking_id),
        data=b"List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert deps.store.ticket(ticket.id).notifications_muted is True


@pytest.mark.parametrize("method", ["get", "post"])
def test_unsubscribe_with_a_wrong_signature_is_404(client: FlaskClient, deps: Deps, method: str) -> None:
    """Wrong, missing or status-link signatures, and unknown tickets: 404, and nothing muted."""
    ticket = submit(client, deps)
    tid = ticket.tracking_id
    status_sig = status_signature(deps.secret_key, tid)
    for path in (f"/u/{tid}?s=AAAAAAAAAAAAAAAAAAAAAA", f"/u/{tid}", f"/u/{tid}?s={status_sig}", f"/u/{tid}?s=ø",
                 unsubscribe_path(deps, "ST-0000000A"), "/u/not-a-ticket?s=x"):  # fmt: skip
        assert getattr(client, method)(path).status_code == 404, path
    assert deps.store.ticket(ticket.id).notifications_muted is False


# --- comments -------------------------------------------------------------------------------


def test_comment_email_escapes_developer_html(
    client: FlaskClient, deps: Deps, mailer: RecordingMailer, clock: Clock
) -> None:
    """A developer's public comment reaches the reporter; markup in it stays inert text in the HTML part."""
    ticket = filed(client, deps, clock, mailer)
    with deps.store.session() as session:
        row = session.get(Ticket, ticket.id)
        assert row is not None
        assert deps.notices.comment(session, row, comment_key="note:1", body=XSS, now=clock())
    drain(deps)
    assert len(mailer.sent) == 3
    msg = mailer.sent[2]
    assert msg["Subject"] == f"[{ticket.tracking_id}] Ny kommentar fra vores udviklere"
    text, html = bodies(msg)
    assert XSS in text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<script" not in html
    assert "<img" not in html
    assert "Prøv igen &amp; skriv" in html
