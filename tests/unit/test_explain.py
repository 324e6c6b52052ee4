"""``explain``: what the bridge would decide about a report, from the shipped mappings, on fixed inputs
(fields, chatbot events, raw emails), with sprints from the in-memory tracker; in English and Danish."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from bridge.config import Settings
from bridge.domain import Destination, IssueRef, Sprint, SprintWindow
from bridge.errors import PermanentError, RetryableError
from bridge.mappings import Mappings, Route, RouteCondition
from bridge.pipeline.filing.explain import (
    Candidate,
    ExplainFields,
    Explanation,
    NoSprints,
    NotAReport,
    OnlineSprints,
    ReadOnlyTracker,
    SprintSource,
    candidate_from_email,
    candidate_from_event,
    candidate_from_fields,
    explain,
)
from bridge.pipeline.filing.explain_output import as_json, as_text
from bridge.pipeline.filing.route import CategoryMark
from tests.conftest import CURRENT, NEXT, make_settings, report_event
from tests.fakes import FakeTracker

NOW = datetime(2026, 11, 25, 10, 15, tzinfo=UTC)  # inside CURRENT (Sprint 48)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def gitlab() -> FakeTracker:
    return FakeTracker("gitlab", window=SprintWindow(current=CURRENT, next=NEXT))


def online(gitlab: FakeTracker, mappings: Mappings, settings: Settings) -> OnlineSprints:
    return OnlineSprints(trackers={"gitlab": gitlab}, mappings=mappings, settings=settings, clock=lambda: NOW)


def run(
    candidate: Candidate, mappings: Mappings, settings: Settings, sprints: SprintSource | None = None
) -> Explanation:
    return explain(candidate, mappings=mappings, settings=settings, sprints=sprints or NoSprints())


def widget_outage() -> Candidate:
    """CONTRACT section 2's example report, field by field."""
    return candidate_from_fields(
        title="Chat-widget indlæses ikke",
        description="Siden viser kun en spinner siden i morges.",
        impact="Ingen af vores kunder kan skrive til os",
        priority="Kritisk",
        product="widget",
        organization="Kunde A/S",
        locale="da-DK",
    )


# --- decisions --------------------------------------------------------------------------------------


def test_a_critical_widget_report_is_a_hotfix_for_the_product_owner_in_the_widget_category(
    mappings: Mappings, settings: Settings
) -> None:
    """Severity, kind, review flag, category, route and labels are the filing job's, with every rule named."""
    result = run(widget_outage(), mappings, settings)
    assert result.classification is not None
    assert (result.classification.severity.value, result.classification.kind.value) == ("critical", "hotfix")
    assert result.classification.po_review is True
    assert result.category is not None
    assert (result.category.name, result.category.rule) == ("widget", "product:widget")
    assert result.destination == Destination(tracker="gitlab", project="acme/support")
    assert result.route_name is None
    assert result.labels == (
        "severity::critical", "type::hotfix", "source::chatbot", "needs-po-review", "category::widget",
    )  # fmt: skip
    assert result.category_mark == CategoryMark(label="category::widget")
    assert result.jira_priority is None
    assert result.candidate.locale == "da"
    assert result.rules == (
        "declared-priority:kritisk",
        "keyword:outage(ingen af vores kunder)",
        "organization-tier:enterprise",
        "po-review:high-impact(ingen af vores kunder)",
        "po-review:severity:critical",
        "category:widget(product:widget)",
        "route:default(gitlab)",
    )


def test_without_the_tracker_the_sprint_is_not_decided_and_nothing_is_asked(
    mappings: Mappings, settings: Settings, gitlab: FakeTracker
) -> None:
    """No tracker call, no cache: the answer says to use --online."""
    result = run(widget_outage(), mappings, settings)
    assert result.sprint is not None
    assert (result.sprint.source, result.sprint.plan) == ("none", None)
    assert as_json(result)["sprint"]["text"] == "no cached sprints; use --online"
    assert gitlab.calls == []


def test_a_matching_route_is_named_and_a_jira_route_gets_its_priority(mappings: Mappings, settings: Settings) -> None:
    routed = dataclasses.replace(
        mappings,
        routing=mappings.routing.model_copy(
            update={
                "routes": [
                    Route(name="billing-in-jira", when=RouteCondition(product=["payments"]), tracker="jira",
                          project="BILL", board_id=7),
                ]
            }
        ),
    )  # fmt: skip
    result = run(candidate_from_fields(title="Checkout fails", product="Payments"), routed, settings)
    assert result.route_name == "billing-in-jira"
    assert result.destination == Destination(tracker="jira", project="BILL", board_id=7)
    assert result.jira_priority == "High"  # payments is at least high (severity.yaml products)
    assert "route:billing-in-jira(jira)" in result.rules
    assert result.labels[:3] == ("severity-high", "bugfix", "source-chatbot")
    # Jira: a component if BILL has one (not read here), else the label; labels hold neither.
    assert not any(label.startswith("category") for label in result.labels)
    assert result.category_mark == CategoryMark(component="billing", label="category-billing")
    body = as_json(result)
    assert body["route"] == {"name": "billing-in-jira", "tracker": "jira", "project": "BILL", "board_id": 7}
    assert (body["category"]["component"], body["category"]["label"]) == ("billing", "category-billing")
    text = as_text(result).splitlines()
    assert "Jira priority: High" in text
    assert "  as the component billing if the project has one, else as the label category-billing" in text


def test_a_route_by_category_matches_the_decided_category(mappings: Mappings, settings: Settings) -> None:
    """``when: category`` routes by the category the report gets, as the filing job does."""
    routed = dataclasses.replace(
        mappings,
        routing=mappings.routing.model_copy(
            update={"routes": [Route(name="logins", when=RouteCondition(category=["login"]), tracker="jira")]}
        ),
    )
    login = run(candidate_from_fields(title="Kan ikke logge ind"), routed, settings)
    assert login.category is not None
    assert login.category.name == "login"
    assert (login.route_name, login.destination) == ("logins", Destination(tracker="jira", project="SUP", board_id=1))
    other = run(candidate_from_fields(title="The chat window is blank"), routed, settings)
    assert other.category is not None
    assert other.category.name == "widget"
    assert (other.route_name, other.destination) == (None, Destination(tracker="gitlab", project="acme/support"))


def test_a_plain_report_gets_the_defaults(mappings: Mappings, settings: Settings) -> None:
    result = run(candidate_from_fields(title="A question"), mappings, settings)
    assert result.classification is not None
    assert result.classification.severity.value == "medium"
    assert result.category is not None
    assert (result.category.name, result.category.rule) == ("other", "default")
    assert result.rules == ("default", "category:other(default)", "route:default(gitlab)")


# --- the three inputs ----------------------------------------------------------------------------------


def test_a_chatbot_event_explains_like_its_fields(mappings: Mappings, settings: Settings) -> None:
    """The webhook's schema reads the event; the decisions equal those for the same fields."""
    from_event = run(candidate_from_event(report_event()), mappings, settings)
    from_fields = run(widget_outage(), mappings, settings)
    assert from_event.candidate.source == "event"
    assert from_event.classification == from_fields.classification
    assert from_event.category == from_fields.category
    assert from_event.rules == from_fields.rules
    assert from_event.candidate.report.attachments[0].filename == "skærmbillede.png"


def test_an_event_the_webhook_would_refuse_is_refused_with_its_fields() -> None:
    event = report_event()
    del event["report"]["title"]
    event["reporter"]["email"] = "not an address"
    with pytest.raises(ValidationError) as caught:
        candidate_from_event(event)
    assert {tuple(error["loc"][1:]) for error in caught.value.errors()} == {("report", "title"), ("reporter", "email")}


def test_a_followup_event_is_not_a_report() -> None:
    followup = {
        "event_id": "evt_1",
        "type": "report.followup",
        "tracking_id": "ST-7K3Q9X2M",
        "reporter": {"email": "anna@kunde.dk"},
        "message": "Det virker stadig ikke",
    }
    with pytest.raises(NotAReport, match=r"report\.created"):
        candidate_from_event(followup)


EMAIL = (
    "From: Anna Jensen <Anna@Kunde.dk>\r\n"
    "To: billing@support.example.com\r\n"
    "Subject: Sv: Fakturaen viser forkert beløb\r\n"
    "Message-ID: <m1@kunde.dk>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Hej, vores seneste faktura har et forkert beløb. Det haster.\r\n"
).encode()


def test_an_email_is_read_as_the_email_job_reads_a_new_one(mappings: Mappings, settings: Settings) -> None:
    """Title from the subject (reply prefix off), organisation and language from the sender's domain,
    the category from the address it was sent to, the channel email; no address in the answer."""
    candidate = candidate_from_email(EMAIL, rules=mappings.email, max_attachment_bytes=1024)
    result = run(candidate, mappings, settings)
    report = candidate.report
    assert (report.title, report.organization, report.channel.value) == (
        "Fakturaen viser forkert beløb",
        "Kunde A/S",
        "email",
    )
    assert candidate.locale == "da"
    assert candidate.intake.state == "ticket"
    assert result.category is not None
    assert (result.category.name, result.category.rule) == ("billing", "address:billing")
    assert "source::email" in result.labels
    assert "organization-tier:enterprise" in result.rules
    assert "@" not in str(as_json(result))
    assert "@" not in as_text(result)


def test_machine_mail_opens_no_ticket_and_nothing_is_decided(mappings: Mappings, settings: Settings) -> None:
    raw = (Path(__file__).parents[1] / "corpus" / "email" / "autosvar_ooo_da.eml").read_bytes()
    result = run(candidate_from_email(raw, rules=mappings.email, max_attachment_bytes=1024), mappings, settings)
    assert result.candidate.intake.state == "ignored"
    assert result.candidate.intake.reason
    assert (result.classification, result.category, result.destination, result.sprint) == (None, None, None, None)
    assert result.rules == ()
    body = as_json(result)
    assert (body["severity"], body["route"], body["sprint"]) == (None, None, None)
    assert body["intake"]["state"] == "ignored"


def test_a_reply_to_our_mail_is_flagged_as_a_possible_followup(mappings: Mappings, settings: Settings) -> None:
    reply = EMAIL.replace(b"Message-ID: <m1@kunde.dk>", b"In-Reply-To: <notice-1@bridge.example>")
    candidate = candidate_from_email(reply, rules=mappings.email, max_attachment_bytes=1024)
    assert candidate.intake.maybe_followup is True
    assert "follow-up on that ticket" in as_text(run(candidate, mappings, settings))
    plain = candidate_from_email(EMAIL, rules=mappings.email, max_attachment_bytes=1024)
    assert plain.intake.maybe_followup is False


def test_fields_are_limited_like_the_chatbot_report() -> None:
    with pytest.raises(ValidationError) as caught:
        ExplainFields.model_validate({"title": "   ", "impact": "x" * 10_001, "colour": "red"})
    assert {(error["loc"][0], error["type"]) for error in caught.value.errors()} == {
        ("title", "string_too_short"),
        ("impact", "string_too_long"),
        ("colour", "extra_forbidden"),
    }
    assert ExplainFields(title=" Login ", locale="en-GB").candidate().report.title == "Login"


# --- sprints, read from the tracker --------------------------------------------------------------------


def test_online_a_hotfix_goes_to_the_current_sprint_whatever_its_load(
    mappings: Mappings, settings: Settings, gitlab: FakeTracker
) -> None:
    gitlab.loads = {CURRENT.id: 50}
    result = run(widget_outage(), mappings, settings, online(gitlab, mappings, settings))
    sprint = result.sprint
    assert sprint is not None
    assert sprint.plan is not None
    assert (sprint.source, sprint.plan.sprint, sprint.ignore_capacity) == ("online", CURRENT, True)
    assert [(seen.slot.value, seen.sprint, seen.load) for seen in sprint.seen] == [("current", CURRENT, None)]
    assert result.rules[-1] == "sprint:current"
    assert gitlab.calls == ["sprints"]  # the load was not needed
    assert as_json(result)["sprint"]["text"] == (
        "Sprint 48 (2026-11-23 to 2026-12-06): critical always goes to the current sprint"
    )


def test_online_a_high_report_goes_to_the_next_sprint_when_the_current_is_full(
    mappings: Mappings, settings: Settings, gitlab: FakeTracker
) -> None:
    """The capacity it saw is shown: 10/10 in the current sprint, 3/20 in the next."""
    gitlab.loads = {CURRENT.id: 10, NEXT.id: 3}
    report = candidate_from_fields(title="Login is broken for some users")  # broken-feature: high
    result = run(report, mappings, settings, online(gitlab, mappings, settings))
    sprint = result.sprint
    assert sprint is not None
    assert sprint.plan is not None
    assert sprint.plan.sprint == NEXT
    assert [(seen.slot.value, seen.load, seen.limit) for seen in sprint.seen] == [("current", 10, 10), ("next", 3, 20)]
    assert "needs-planning" not in result.labels
    lines = as_text(result).splitlines()
    assert "Sprint: Sprint 50 (2026-12-07 to 2026-12-20): the next sprint has room" in lines
    assert "  current: Sprint 48 (2026-11-23 to 2026-12-06), load 10/10 issues (full)" in lines
    assert "  next: Sprint 50 (2026-12-07 to 2026-12-20), load 3/20 issues" in lines
    assert set(gitlab.calls) == {"sprints", "sprint_load"}


def test_online_without_room_the_issue_would_need_planning(
    mappings: Mappings, settings: Settings, gitlab: FakeTracker
) -> None:
    gitlab.loads = {NEXT.id: 20}
    result = run(candidate_from_fields(title="A question"), mappings, settings, online(gitlab, mappings, settings))
    assert result.sprint is not None
    assert result.sprint.plan is not None
    assert result.sprint.plan.sprint is None
    assert result.labels[-2:] == ("needs-planning", "category::other")
    assert result.rules[-1] == "sprint:none"
    assert as_json(result)["sprint"]["text"] == "no next sprint exists or has room: filed as needs-planning"


def test_online_a_tracker_that_cannot_be_reached_is_reported(
    mappings: Mappings, settings: Settings, gitlab: FakeTracker
) -> None:
    gitlab.fail_next["sprints"] = [RetryableError("gitlab list milestones: HTTP 503", retry_after=30)]
    result = run(widget_outage(), mappings, settings, online(gitlab, mappings, settings))
    assert result.sprint is not None
    assert result.sprint.error == "gitlab list milestones: HTTP 503"
    assert "Sprint: sprints could not be read: gitlab list milestones: HTTP 503" in as_text(result).splitlines()
    assert not any(rule.startswith("sprint:") for rule in result.rules)


def test_online_a_tracker_without_sprints_says_why(mappings: Mappings, settings: Settings, gitlab: FakeTracker) -> None:
    """No sprint API (Jira without Software): the planner files unplanned; explain shows the reason."""
    gitlab.fail_next["sprints"] = [PermanentError("jira board 1: HTTP 404")]
    result = run(widget_outage(), mappings, settings, online(gitlab, mappings, settings))
    assert result.sprint is not None
    assert result.sprint.error == "sprints unavailable: jira board 1: HTTP 404"


def test_the_read_only_tracker_refuses_every_write(gitlab: FakeTracker) -> None:
    """Whatever the planner may ask in future, explaining can only read sprints and their load."""
    reader = ReadOnlyTracker(gitlab)
    dest, ref, sprint = Destination(tracker="gitlab", project="p"), IssueRef(key="1"), Sprint(id="1", name="S")
    refused = [
        lambda: reader.find_issue(dest, tracking_id="ST-7K3Q9X2M"),
        lambda: reader.create_issue(dest, None),  # type: ignore[arg-type]
        lambda: reader.ensure_in_sprint(dest, ref, sprint),
        lambda: reader.add_comment(dest, ref, "hi"),
        lambda: reader.reopen(dest, ref),
        lambda: reader.issue_state(dest, ref),
        lambda: reader.update_labels(dest, ref, add=["x"], remove=[]),
        lambda: reader.upload_attachment(dest, ref, filename="a", content_type="text/plain", content=b""),
        lambda: reader.redact_issue(dest, ref, "gone"),
        lambda: reader.account(),
        lambda: reader.changed_since(dest, NOW),
        lambda: reader.check(dest, None, today="2026-11-25"),  # type: ignore[arg-type]
    ]
    for call in refused:
        with pytest.raises(PermanentError, match="explain only reads sprints"):
            call()
    assert gitlab.calls == []
    assert gitlab.issues == []


# --- Danish and English ------------------------------------------------------------------------------


def test_the_text_is_in_danish_with_lang_da(mappings: Mappings, settings: Settings) -> None:
    lines = as_text(run(widget_outage(), mappings, settings), lang="da").splitlines()
    assert lines[0] == "Input: felter, kanal chatbot, sprog da, organisation Kunde A/S, produkt widget"
    assert "Alvorlighed: critical (hotfix); produktejer-gennemgang: ja" in lines
    assert "Kategori: widget (Chat-widget); product:widget" in lines
    assert "Rute: gitlab acme/support (standard)" in lines
    assert "Sprint: ingen gemte sprints; brug --online" in lines
    assert "Problemer: gruppering er ikke slået til; hver rapport får sin egen sag" in lines
    assert lines[lines.index("Regler der slog til:") + 1] == "  declared-priority:kritisk"


def test_the_text_is_in_english_by_default(mappings: Mappings, settings: Settings) -> None:
    lines = as_text(run(widget_outage(), mappings, settings)).splitlines()
    assert "Severity: critical (hotfix); product-owner review: yes" in lines
    assert "Category: widget (Chat widget); product:widget" in lines
    assert "Sprint: no cached sprints; use --online" in lines
    assert "Problems: grouping not enabled; every report gets an issue of its own" in lines
    assert "Rules that fired:" in lines


def test_danish_sprint_sentences(mappings: Mappings, settings: Settings, gitlab: FakeTracker) -> None:
    gitlab.loads = {CURRENT.id: 10, NEXT.id: 3}
    result = run(candidate_from_fields(title="Login is broken"), mappings, settings, online(gitlab, mappings, settings))
    lines = as_text(result, lang="da").splitlines()
    assert "Sprint: Sprint 50 (2026-12-07 til 2026-12-20): den næste sprint har plads" in lines
    assert "  nuværende: Sprint 48 (2026-11-23 til 2026-12-06), belastning 10/10 sager (fuld)" in lines


def test_json_carries_the_category_text_in_the_language_asked(mappings: Mappings, settings: Settings) -> None:
    result = run(widget_outage(), mappings, settings)
    assert as_json(result, lang="da")["category"] == {
        "name": "widget", "text": "Chat-widget", "rule": "product:widget",
        "label": "category::widget", "component": None,
    }  # fmt: skip
    english = as_json(result, lang="en")
    assert english["category"]["text"] == "Chat widget"
    assert english["problems"] == {
        "grouping": False,
        "reason": "grouping not enabled",
        "text": "grouping not enabled; every report gets an issue of its own",
    }
    assert english["rules"] == list(result.rules)
    assert (english["severity"], english["kind"], english["po_review"]) == ("critical", "hotfix", True)
