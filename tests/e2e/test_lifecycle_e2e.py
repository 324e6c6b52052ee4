"""The reporter loop end to end: developers act in the tracker sandbox, the reporter hears of it.

The sandbox fires its webhooks at the bridge; the worker reads the issue fresh and moves the
ticket, which the status API shows; reporter emails arrive at the harness's SMTP server.
Runs against GitLab and Jira (the ``stack`` fixture is parametrized by ``BRIDGE_TRACKER``).
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.conftest import report_event
from tests.e2e.harness import REPO, Mail, Stack, new_event_id, wait_until

pytestmark = pytest.mark.e2e

REPORTER = "anna@kunde.dk"


def status_texts(locale: str) -> dict[str, Any]:
    """The reporter-facing status texts (mappings/templates/<locale>/status.yaml): email subjects use them."""
    data = yaml.safe_load((REPO / "mappings" / "templates" / locale / "status.yaml").read_text())
    assert isinstance(data, dict)
    return data


def report(locale: str = "da", email: str = REPORTER, name: str = "Anna Jensen") -> dict[str, Any]:
    event = report_event(event_id=new_event_id())
    event["reporter"] = {**event["reporter"], "email": email, "name": name, "locale": locale}
    return event


def wait_mail(stack: Stack, tracking_id: str, *, containing: str, timeout: float = 60, email: str = REPORTER) -> Mail:
    """The first email to the reporter about ``tracking_id`` that contains ``containing``."""

    def arrived() -> list[Mail]:
        return [m for m in stack.mail.to(email, containing=containing) if tracking_id in m.subject]

    return wait_until(arrived, timeout, what=f"an email to {email} about {tracking_id} containing {containing!r}")[0]


def test_acknowledgement_email_in_danish(stack: Stack) -> None:
    """A report with locale da is acknowledged by a Danish email carrying the tracking ID."""
    tracking_id = stack.file_report(report(locale="da"))
    received = status_texts("da")["received"]
    mail = wait_mail(stack, tracking_id, containing=received)
    assert mail.rcpt_tos == (REPORTER,)
    assert mail.subject == f"[{tracking_id}] {received}"
    assert tracking_id in mail.text
    assert mail.text.lstrip().startswith("Hej Anna")
    assert status_texts("en")["received"] not in mail.text


def test_acknowledgement_email_in_english(stack: Stack) -> None:
    """A report with an unsupported locale (fr) is acknowledged in English, with the tracking ID."""
    email = "jean.dupont@client.example"
    tracking_id = stack.file_report(report(locale="fr-FR", email=email, name="Jean Dupont"))
    received = status_texts("en")["received"]
    mail = wait_mail(stack, tracking_id, containing=received, email=email)
    assert mail.subject == f"[{tracking_id}] {received}"
    assert tracking_id in mail.text
    assert mail.text.lstrip().startswith("Hi Jean")


def test_developer_progress_reaches_status_api_and_not_fixed_reopens(stack: Stack) -> None:
    """In progress, QA and close in the tracker show as in_progress, in_qa, resolved; "not fixed" reopens the issue."""
    tracking_id = stack.file_report(report())
    issue = stack.wait_issue(tracking_id)
    stack.wait_status(tracking_id, "triaged")

    stack.act(issue, "progress")
    stack.wait_status(tracking_id, "in_progress")
    stack.act(issue, "qa")
    stack.wait_status(tracking_id, "in_qa")
    stack.act(issue, "close")
    resolved = stack.wait_status(tracking_id, "resolved")
    assert [entry["status"] for entry in resolved["history"]] == [
        "received", "triaged", "in_progress", "in_qa", "resolved",
    ]  # fmt: skip

    message = "Det virker stadig ikke efter opdateringen."
    followup = {
        "event_id": new_event_id(),
        "type": "report.followup",
        "tracking_id": tracking_id,
        "reporter": {"email": REPORTER},
        "message": message,
        "not_fixed": True,
    }
    response = stack.post_event(followup)
    assert response.status_code == 202, response.text
    assert response.json()["tracking_id"] == tracking_id

    def reopened_with_comment() -> bool:
        found = stack.issues_for(tracking_id)[0]
        return not found.closed and any(message in comment for comment in found.comments)

    wait_until(reopened_with_comment, 20, what=f"{issue.key} reopened with the reporter's message as a comment")
    stack.wait_status(tracking_id, "reopened")


def test_resolution_is_mailed_to_the_reporter(stack: Stack) -> None:
    """Closing the issue as fixed sends the reporter a (Danish) email saying it is resolved."""
    tracking_id = stack.file_report(report())
    issue = stack.wait_issue(tracking_id)
    stack.wait_status(tracking_id, "triaged")
    stack.act(issue, "close")
    stack.wait_status(tracking_id, "resolved")
    resolved = status_texts("da")["resolved"]
    mail = wait_mail(stack, tracking_id, containing=resolved)
    assert mail.subject == f"[{tracking_id}] {resolved}"


def test_public_comment_is_mailed_and_internal_comment_is_not(stack: Stack) -> None:
    """A developer's public comment reaches the reporter by email; an internal note never does."""
    tracking_id = stack.file_report(report())
    issue = stack.wait_issue(tracking_id)
    stack.wait_status(tracking_id, "triaged")

    internal = "INTERN: kunden bruger en gammel widget-version, tjek CDN-cachen"
    public = "Vi har fundet årsagen og retter den i dag."
    stack.act(issue, "comment", internal, internal=True)
    stack.act(issue, "comment", public)

    mail = wait_mail(stack, tracking_id, containing=public)
    assert mail.rcpt_tos == (REPORTER,)
    # The internal note's webhook came first and is handled in order, so it had its chance.
    leaked = [m for m in stack.mail.to(REPORTER, containing="INTERN:") if tracking_id in m.subject]
    assert leaked == []
