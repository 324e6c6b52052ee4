"""The soak's own checks, on made-up results: each says what it must say when the bridge misbehaves."""

from __future__ import annotations

import random
from typing import Any

import pytest

from harness.issues import Issue
from soak.db import NotificationRow, TicketRow
from soak.inbound import NUL_PLACEMENTS, PROVIDERS, Mail, encode, ref_number, soak_ref
from soak.load import Planned, plan_reports
from soak.stack import SeenMail
from soak.verify import Verdict, _check_placement, _check_storms, _in_order

MAIL = Mail(
    sender="soak.r1.5@kunde.dk",
    name="Soak Reporter",
    message_id="<soak.r1.5@mail.kunde.dk>",
    subject="Faktura viser forkert moms (r1 #5)",
    text="Momsen bliver beregnet to gange.\n\nMvh\nSoak Reporter 5\n",
    ref=soak_ref("r1", 5),
)
_NUL_FORMS = (b"\x00", b"=00", b"\\u0000", b"%00", b"%5Cu0000")


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("placement", [None, *NUL_PLACEMENTS])
def test_every_post_carries_its_reference_and_a_nul_only_where_planned(provider: str, placement: str | None) -> None:
    post = encode(MAIL, provider, placement)
    assert ref_number(post.body, "r1") == 5
    assert ref_number(post.body, "r2") is None
    assert any(form in post.body for form in _NUL_FORMS) == (placement is not None)


def test_the_full_soak_sends_every_placement_through_every_endpoint() -> None:
    plans = plan_reports(
        300,
        rng=random.Random(7),
        run_id="r1",
        email_fraction=0.25,
        jira_fraction=0.2,
        permanent=6,
        chain_fraction=0.3,
        nul_mails=len(NUL_PLACEMENTS) * len(PROVIDERS),
        storms=8,
    )
    sent = {(p.nul, p.provider) for p in plans if p.nul}
    assert sent >= {(n, p) for n in NUL_PLACEMENTS for p in PROVIDERS if n != "body-encoded"}
    assert not [p for p in plans if p.nul and (p.chain or p.storm)]
    assert {p.tracker for p in plans if p.storm} == {"gitlab", "jira"}


def test_in_order() -> None:
    assert _in_order(["in_progress", "declined"], ["triaged", "in_progress", "resolved", "declined"])
    assert not _in_order(["declined", "in_progress"], ["triaged", "in_progress", "resolved", "declined"])
    assert not _in_order(["resolved", "resolved"], ["triaged", "resolved"])


def _ticket(**overrides: Any) -> TicketRow:
    fields: dict[str, Any] = {
        "id": 1,
        "tracking_id": "ST-AAAAAAAA",
        "status": "resolved",
        "channel": "chatbot",
        "reporter_email": "a@kunde.dk",
        "tracker": "jira",
        "project": "SUP",
        "issue_key": "SUP-1",
        "sprint_id": "2",
        "filed_at": "2026-12-02 10:00:05",
    }
    fields.update(overrides)
    return TicketRow(**fields)


def _jira_issue(sprints: list[dict[str, Any]], labels: list[str] | None = None) -> Issue:
    return Issue.jira(
        {
            "key": "SUP-1",
            "fields": {
                "summary": "[ST-AAAAAAAA] Faktura",
                "labels": labels or [],
                "customfield_10020": sprints,
                "status": {"statusCategory": {"key": "new"}},
            },
        }
    )


STATE = {"jira": {"sprints": [{"id": 2, "state": "closed", "completeDate": "2026-12-02T10:00:00.000Z"}]}}
CLOSED = [{"id": 2, "name": "SUP Sprint 48", "state": "closed"}]
ACTIVE = [{"id": 2, "name": "SUP Sprint 48", "state": "active"}]


def test_placement_flags_a_filing_into_a_sprint_closed_before_it() -> None:
    verdict = Verdict()
    _check_placement(verdict, [(_ticket(), _jira_issue(CLOSED))], STATE)
    assert len(verdict.failures) == 1
    assert "filed into sprint 2 after it had closed" in verdict.failures[0]

    verdict = Verdict()
    before = _ticket(filed_at="2026-12-02 09:59:59")
    _check_placement(verdict, [(before, _jira_issue(CLOSED))], STATE)
    assert verdict.failures == []


def test_placement_flags_a_ticket_whose_sprint_the_issue_is_not_in_or_no_plan_without_label() -> None:
    verdict = Verdict()
    _check_placement(verdict, [(_ticket(sprint_id="3"), _jira_issue(ACTIVE))], STATE)
    assert "planned into sprint 3, the issue is in {'2': 'active'}" in verdict.failures[0]

    verdict = Verdict()
    _check_placement(verdict, [(_ticket(sprint_id=None), _jira_issue([]))], STATE)
    assert "not labelled needs-planning" in verdict.failures[0]

    verdict = Verdict()
    _check_placement(verdict, [(_ticket(sprint_id=None), _jira_issue([], ["needs-planning"]))], STATE)
    assert verdict.failures == []


def _storm_setup(mail_order: list[int]) -> tuple[Verdict, list[Any]]:
    """A fired storm with two comments whose webhooks were taken c1 first (job 10) then c2 (job 11);
    the comment emails arrived in ``mail_order`` (notification ids 3 and 4)."""
    planned = Planned(n=1, channel="chatbot", key="e1", reporter="a@kunde.dk", body=b"", tracker="jira", chain=None)
    planned.accepted, planned.tracking_id = True, "ST-AAAAAAAA"
    planned.storm, planned.storm_state = "flip-resolved", "fired"
    planned.storm_comments = ["one", "two"]
    ticket = _ticket()
    notes = {
        1: NotificationRow(1, 1, "ack", "received", "sent", "m1", "status:1", None),
        2: NotificationRow(2, 1, "status", "resolved", "sent", "m2", "status:2", None),
        3: NotificationRow(3, 1, "comment", None, "sent", "m3", "comment:jira:c1", "one"),
        4: NotificationRow(4, 1, "comment", None, "sent", "m4", "comment:jira:c2", "two"),
    }
    times = {1: 1.0, 2: 9.0} | {nid: 2.0 + i for i, nid in enumerate(mail_order)}
    mails = {f"m{nid}": SeenMail("ST-AAAAAAAA", f"m{nid}", nid, "s", "a@kunde.dk", at) for nid, at in times.items()}
    verdict = Verdict()
    _check_storms(
        verdict,
        [planned],
        {"ST-AAAAAAAA": ticket},
        {1: ["received", "triaged", "resolved"]},
        notes,
        {"ST-AAAAAAAA": mails},
        {mid: mail.at for mid, mail in mails.items()},
        {1: [(10, "c1"), (11, "c2"), (12, "c1")]},
    )
    return verdict, [planned]


def test_storm_comments_in_the_order_their_webhooks_were_taken_pass() -> None:
    verdict, _ = _storm_setup([3, 4])
    assert verdict.failures == []
    assert verdict.survived["storms_in_final_status"] == 1


def test_storm_comments_mailed_out_of_order_fail() -> None:
    verdict, _ = _storm_setup([4, 3])
    assert [f for f in verdict.failures if f.startswith("storm comments mailed out of the order")]
