"""The category through the whole flow, on a real SQLite file and on PostgreSQL: filing writes it
(GitLab label, Jira component or label) and stores it, routing may use it, support changes it in the
tracker and the bridge follows for good, and the status API shows it. Trackers are the in-memory fake."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from bridge import create_app
from bridge.adapters.store.models import Notification, Ticket
from bridge.bootstrap import Deps
from bridge.domain import Classification, Destination, Kind, Severity, SprintWindow
from bridge.errors import PermanentError
from bridge.mappings import Mappings, Route, RouteCondition
from tests.conftest import CURRENT, NEXT, Clock, post_event, report_event
from tests.fakes import FakeIssue, FakeTracker
from tests.integration.test_tracker_loop import hook_settings, issue_hook, post_gitlab, post_jira, run_all

API = {"Authorization": "Bearer chatbot-api-token"}
INBOUND = "inbound-token-123"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bridge.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture
def deps(make_deps: Callable[..., Deps]) -> Deps:
    return make_deps(trackers=hook_settings(), intake={"email_inbound_token": INBOUND})


def jira_stack(make_deps: Callable[..., Deps]) -> tuple[Deps, FakeTracker, FlaskClient]:
    deps = make_deps(trackers=hook_settings("jira"))
    jira: FakeTracker = deps.trackers["jira"]  # type: ignore[assignment]
    jira.window = SprintWindow(current=CURRENT, next=NEXT)
    jira.project_components = {"SUP": ("Widget", "billing")}
    return deps, jira, create_app(deps=deps).test_client()


def file_report(client: FlaskClient, deps: Deps, **report: Any) -> Ticket:
    """A report (the CONTRACT example, with ``report`` fields replaced) through the real filing job."""
    event = report_event(event_id=f"evt_{len(deps.store.tickets(limit=1000))}")
    event["report"] = {**event["report"], **report} if report else event["report"]
    answer = post_event(client, event)
    assert answer.status_code == 202, answer.get_data(as_text=True)
    run_all(deps, "file_ticket")
    ticket = deps.store.ticket_by_tracking_id(answer.get_json()["tracking_id"])
    assert ticket is not None
    return ticket


def api_category(client: FlaskClient, tracking_id: str) -> Any:
    answer = client.get(f"/api/v1/tickets/{tracking_id}", headers=API)
    assert answer.status_code == 200
    return answer.get_json()["category"]


def category_changes(client: FlaskClient) -> dict[str, float]:
    """``bridge_category_changes_total`` by category, from ``/metrics``."""
    text = client.get("/metrics").get_data(as_text=True)
    return {
        sample.labels["category"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "bridge_category_changes_total"
    }


def changed_since(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)}


def notifications(deps: Deps, ticket_id: int) -> int:
    with deps.store.session() as session:
        return int(session.scalar(select(func.count()).where(Notification.ticket_id == ticket_id)) or 0)


def relabel(issue: FakeIssue, *, drop: str, add: str) -> None:
    """What support does in GitLab: a scoped label replaces the other of its scope."""
    issue.labels = (*(label for label in issue.labels if not label.startswith(drop)), add)


# --- filing -----------------------------------------------------------------------------------------


def test_gitlab_filing_labels_the_issue_and_stores_the_decision(
    client: FlaskClient, deps: Deps, tracker: FakeTracker
) -> None:
    """The scoped label ``category::widget``, the rule on the issue beside the severity reasons, the
    decision on the ticket (before the issue was created), and the category in the status API."""
    seen_on_create: list[tuple[str | None, str | None]] = []

    def stored_first(issue: FakeIssue) -> None:
        row = deps.store.ticket_by_tracking_id(issue.title[1:12])
        assert row is not None
        seen_on_create.append((row.category, row.category_rule))

    tracker.on_create = stored_first
    ticket = file_report(client, deps)
    (issue,) = tracker.issues
    assert "category::widget" in issue.labels
    assert issue.new_issue is not None
    assert (issue.new_issue.category, issue.new_issue.category_rule) == ("widget", "product:widget")
    assert issue.new_issue.components == ()
    assert seen_on_create == [("widget", "product:widget")]
    assert (ticket.category, ticket.category_rule, ticket.category_source) == ("widget", "product:widget", "bridge")
    assert api_category(client, ticket.tracking_id) == {"name": "widget", "text": "Chat-widget"}
    assert "components" not in tracker.calls  # GitLab has none: never asked


def test_a_ticket_decided_before_categories_gets_one_while_it_has_no_issue(
    client: FlaskClient, deps: Deps, tracker: FakeTracker
) -> None:
    """A ticket whose severity and route were stored before the bridge categorised (an upgrade in the
    middle of filing) is categorised when the filing job goes on, as long as no issue exists yet."""
    event = report_event(event_id="evt_mid")
    answer = post_event(client, event)
    ticket = deps.store.ticket_by_tracking_id(answer.get_json()["tracking_id"])
    assert ticket is not None
    classification = Classification(severity=Severity.CRITICAL, kind=Kind.HOTFIX, po_review=True, rules=("x",))
    deps.store.save_decision(ticket.id, classification, Destination(tracker="gitlab", project="acme/support"))
    assert deps.store.ticket(ticket.id).category is None
    run_all(deps, "file_ticket")
    row = deps.store.ticket(ticket.id)
    assert (row.category, row.category_rule, row.category_source) == ("widget", "product:widget", "bridge")
    assert "category::widget" in tracker.issues[0].labels
    assert tracker.issues[0].new_issue is not None
    assert tracker.issues[0].new_issue.classification.rules == ("x",)  # the stored decision, not a new one


def test_the_status_api_speaks_the_reporters_language(client: FlaskClient, deps: Deps) -> None:
    event = report_event(event_id="evt_en")
    event["reporter"] = {**event["reporter"], "locale": "en-GB"}
    event["report"] = {"title": "Old conversations are gone", "description": "The chat history is empty."}
    answer = post_event(client, event)
    run_all(deps, "file_ticket")
    tracking_id = answer.get_json()["tracking_id"]
    assert api_category(client, tracking_id) == {"name": "chat-history", "text": "Chat history"}
    listed = client.get("/api/v1/tickets", query_string={"email": "anna@kunde.dk"}, headers=API).get_json()
    assert [t["category"] for t in listed["tickets"]] == [{"name": "chat-history", "text": "Chat history"}]


def test_jira_filing_uses_the_projects_component_else_the_label(make_deps: Callable[..., Deps]) -> None:
    """Jira: the component named like the category (as the project spells it) when SUP has one, else
    the label ``category-<name>``; the project's components are read once for both reports."""
    deps, jira, client = jira_stack(make_deps)
    widget = file_report(client, deps)
    reports = file_report(
        client, deps, title="How do I export statistics?", description="Where is it?", product=None, impact=None
    )
    by_title = {issue.title: issue for issue in jira.issues}
    first, second = (
        by_title[f"[{widget.tracking_id}] Chat-widget indlæses ikke"],
        by_title[f"[{reports.tracking_id}] How do I export statistics?"],
    )
    assert first.components == ("Widget",)
    assert not any(label.startswith("category-") for label in first.labels)
    assert second.components == ()
    assert "category-reports" in second.labels
    assert jira.calls.count("components") == 1
    assert (reports.category, reports.category_rule) == ("reports", "phrase:statistics")


def test_a_refused_component_falls_back_to_the_label(make_deps: Callable[..., Deps]) -> None:
    """Jira refuses the create with the component (not on the create screen, or deleted since it was
    listed): the issue is created at once with the label instead, and the components are read again
    for the next report."""
    deps, jira, client = jira_stack(make_deps)
    refusal = "jira create issue: HTTP 400: components: Field 'components' cannot be set. It is not on the screen."
    jira.fail_next["create_issue"] = [PermanentError(refusal)]
    ticket = file_report(client, deps)
    (issue,) = jira.issues
    assert issue.components == ()
    assert "category-widget" in issue.labels
    assert jira.calls.count("create_issue") == 2
    assert deps.store.ticket(ticket.id).status == "triaged"
    file_report(client, deps, title="Chat-widget er langsom")
    assert jira.calls.count("components") == 2  # forgotten after the refusal
    assert jira.issues[1].components == ("Widget",)


def test_routing_can_send_a_category_to_jira(make_deps: Callable[..., Deps], mappings: Mappings) -> None:
    """``when: category`` routes by the category decided first: billing words go to Jira's BILL project."""
    money = Route(name="money", when=RouteCondition(category=["billing"]), tracker="jira", project="BILL")
    routing = mappings.routing.model_copy(update={"routes": [money]})
    deps = make_deps(dataclasses.replace(mappings, routing=routing), trackers=hook_settings())
    client = create_app(deps=deps).test_client()
    billing = file_report(client, deps, title="Din faktura er forkert", product=None)
    widget = file_report(client, deps)
    jira, gitlab = deps.trackers["jira"], deps.trackers["gitlab"]
    assert isinstance(jira, FakeTracker)
    assert isinstance(gitlab, FakeTracker)
    assert [(i.project, i.title) for i in jira.issues] == [("BILL", f"[{billing.tracking_id}] Din faktura er forkert")]
    assert "category-billing" in jira.issues[0].labels  # BILL has no components
    assert [i.title for i in gitlab.issues] == [f"[{widget.tracking_id}] Chat-widget indlæses ikke"]
    assert (billing.tracker, billing.project, billing.category) == ("jira", "BILL", "billing")


def test_an_email_is_categorised_by_the_address_it_was_sent_to(
    client: FlaskClient, deps: Deps, tracker: FakeTracker, clock: Clock
) -> None:
    """The email job stores the recipient; the category rules read it (``addresses``)."""
    raw = (
        "From: Bo Berg <bo@firma.dk>\r\nTo: Faktura <faktura@support.example>\r\nSubject: Noget er galt\r\n"
        "Message-ID: <c1@firma.dk>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nKan I se på det?\r\n"
    ).encode()
    answer = client.post(
        "/webhooks/email/raw",
        data=raw,
        headers={"Content-Type": "message/rfc822", "Authorization": f"Bearer {INBOUND}"},
    )
    assert answer.status_code in (200, 202), answer.get_data(as_text=True)
    run_all(deps, "process_email")
    run_all(deps, "file_ticket")
    (ticket,) = deps.store.tickets()
    assert ticket.recipient == "faktura@support.example"
    assert (ticket.category, ticket.category_rule) == ("billing", "address:faktura")
    assert "category::billing" in tracker.issues[0].labels


# --- support has the last word ------------------------------------------------------------------------


def test_support_changes_the_gitlab_category_and_the_bridge_follows_for_good(
    client: FlaskClient, deps: Deps, tracker: FakeTracker
) -> None:
    """A new ``category::`` label is stored as support's, counted once, mailed to nobody; a later
    severity re-plan relabels without touching it, and a category removed in the tracker stays."""
    ticket = file_report(client, deps)
    (issue,) = tracker.issues
    mails, before = notifications(deps, ticket.id), category_changes(client)

    relabel(issue, drop="category::", add="category::billing")
    post_gitlab(client, issue_hook(ticket.tracking_id, issue.key), key="cat-1")
    run_all(deps, "sync_ticket")
    row = deps.store.ticket(ticket.id)
    assert (row.category, row.category_rule, row.category_source) == ("billing", "changed-in-tracker", "support")
    assert api_category(client, ticket.tracking_id) == {"name": "billing", "text": "Betaling og fakturering"}
    assert changed_since(before, category_changes(client)) == {"billing": 1}
    assert notifications(deps, ticket.id) == mails  # no email for a category

    # Support lowers the severity: the bridge re-plans and relabels, and leaves the category alone.
    relabel(issue, drop="severity::", add="severity::low")
    post_gitlab(client, issue_hook(ticket.tracking_id, issue.key), key="sev-1")
    run_all(deps, "sync_ticket")
    assert "type::bugfix" in issue.labels
    assert "category::billing" in issue.labels
    assert "category::widget" not in issue.labels
    row = deps.store.ticket(ticket.id)
    assert (row.severity, row.category, row.category_source) == ("low", "billing", "support")

    # Repeated and late deliveries count nothing again; a category taken off the issue says nothing.
    post_gitlab(client, issue_hook(ticket.tracking_id, issue.key), key="cat-1-again")
    issue.labels = tuple(label for label in issue.labels if not label.startswith("category::"))
    post_gitlab(client, issue_hook(ticket.tracking_id, issue.key), key="cat-removed")
    run_all(deps, "sync_ticket")
    assert deps.store.ticket(ticket.id).category == "billing"
    assert changed_since(before, category_changes(client)) == {"billing": 1}


def test_an_unknown_category_is_kept_as_written_and_counted_as_other(
    client: FlaskClient, deps: Deps, tracker: FakeTracker
) -> None:
    """``category::Mobile-App`` is not in categories.yaml: the ticket keeps it as written, the status
    API shows the name as its text, and every count says ``other``."""
    ticket = file_report(client, deps)
    (issue,) = tracker.issues
    before = category_changes(client)
    relabel(issue, drop="category::", add="category::Mobile-App")
    post_gitlab(client, issue_hook(ticket.tracking_id, issue.key), key="unknown")
    run_all(deps, "sync_ticket")
    row = deps.store.ticket(ticket.id)
    assert (row.category, row.category_source) == ("Mobile-App", "support")
    assert api_category(client, ticket.tracking_id) == {"name": "Mobile-App", "text": "Mobile-App"}
    assert changed_since(before, category_changes(client)) == {"other": 1}
    text = client.get("/metrics").get_data(as_text=True)
    gauges = [
        sample.labels
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "bridge_tickets" and sample.value
    ]
    assert gauges == [{"category": "other", "severity": "critical", "channel": "chatbot", "status": "triaged"}]


def test_support_changes_the_jira_component_and_the_bridge_follows(make_deps: Callable[..., Deps]) -> None:
    """Jira: a component replaced by support is followed; a ``category-`` label of a category the
    mapping lacks is kept as written and counted as other; a priority re-plan leaves both alone."""
    deps, jira, client = jira_stack(make_deps)
    ticket = file_report(client, deps)
    (issue,) = jira.issues
    issue.status_category, issue.status_name = "new", "To Do"
    before = category_changes(client)
    payload = {
        "webhookEvent": "jira:issue_updated",
        "user": {"accountId": "support-1"},
        "issue": {"key": issue.key, "fields": {"summary": issue.title}},
        "changelog": {"items": [{"field": "Component", "fieldId": "components", "fromString": "Widget"}]},
    }
    issue.components = ("billing",)
    assert post_jira(client, payload, ident="c-1").get_json()["status"] == "accepted"
    run_all(deps, "sync_ticket")
    assert (deps.store.ticket(ticket.id).category, deps.store.ticket(ticket.id).category_source) == (
        "billing",
        "support",
    )

    issue.components, issue.labels = (), (*issue.labels, "category-payroll")
    issue.priority = "Low"  # support lowers the priority: severity low, re-planned and relabelled
    post_jira(client, payload, ident="c-2")
    run_all(deps, "sync_ticket")
    row = deps.store.ticket(ticket.id)
    assert (row.severity, row.category, row.category_source) == ("low", "payroll", "support")
    assert "category-payroll" in issue.labels
    assert issue.components == ()
    assert api_category(client, ticket.tracking_id) == {"name": "payroll", "text": "payroll"}
    assert changed_since(before, category_changes(client)) == {"billing": 1, "other": 1}
