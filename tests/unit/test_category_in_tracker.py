"""The category in the tracker: label names per tracker, Jira components, reading support's change
back, routing by category, and the project components cache. Pure, on the shipped mappings."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from bridge.domain import Destination, IssueSnapshot, Report
from bridge.errors import ConfigError, PermanentError, RetryableError
from bridge.mappings import LabelScheme, Mappings, Route, RouteCondition, Routing, load_mappings
from bridge.pipeline.filing.components import ProjectComponents
from bridge.pipeline.filing.route import CategoryMark, category_mark, route
from bridge.pipeline.following.status_map import categories_in_tracker, category_in_tracker
from tests.conftest import REPO, make_settings
from tests.fakes import FakeTracker

SCHEME = {"severity": "s-{severity}", "kind": "{kind}", "source": "c-{source}", "po_review": "p", "needs_planning": "n"}


def routing_with(**labels: dict[str, Any]) -> Routing:
    return Routing.model_validate(
        {
            "labels": {"gitlab": {**SCHEME, **labels.get("gitlab", {})}, "jira": {**SCHEME, **labels.get("jira", {})}},
            "jira_priority": {"critical": "Highest", "high": "High", "medium": "Medium", "low": "Low"},
        }
    )


def gitlab_issue(*labels: str) -> IssueSnapshot:
    return IssueSnapshot(key="3", title="[ST-7K3Q9X2M] x", open=True, labels=labels)


def jira_issue(*components: str, labels: tuple[str, ...] = ()) -> IssueSnapshot:
    return IssueSnapshot(key="SUP-3", title="[ST-7K3Q9X2M] x", open=True, labels=labels, components=components)


# --- label names -----------------------------------------------------------------------------------


def test_the_shipped_schemes_name_the_category_as_the_contract_says(mappings: Mappings) -> None:
    """CONTRACT section 6: GitLab ``category::<name>``; Jira a component, else ``category-<name>``."""
    gitlab, jira = mappings.routing.labels["gitlab"], mappings.routing.labels["jira"]
    assert gitlab.category_label("widget") == "category::widget"
    assert jira.category_label("widget") == "category-widget"
    assert (gitlab.category_as_component, jira.category_as_component) == (False, True)


def test_each_tracker_gets_its_own_defaults_when_routing_yaml_leaves_the_category_out() -> None:
    routing = routing_with()
    assert routing.labels["gitlab"].category == "category::{category}"
    assert routing.labels["jira"].category == "category-{category}"
    assert routing.labels["jira"].category_as_component is True
    assert routing.labels["gitlab"].category_as_component is False


def test_a_configured_scheme_wins_over_the_defaults() -> None:
    routing = routing_with(jira={"category": "area:{category}", "category_as_component": False})
    assert routing.labels["jira"].category_label("billing") == "area:billing"
    assert routing.labels["jira"].category_as_component is False


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("category", "exactly once"),
        ("{category}-{category}", "exactly once"),
        ("{severity}-{category}", "unknown placeholder"),
        ("{{x}}-{category}", "no other braces"),
    ],
)
def test_a_category_label_needs_its_placeholder_once(template: str, problem: str) -> None:
    """The label is read back from the tracker, so it must hold ``{category}`` once and nothing else."""
    with pytest.raises(ValidationError, match=problem):
        routing_with(gitlab={"category": template})


def test_gitlab_cannot_write_the_category_as_a_component() -> None:
    with pytest.raises(ValidationError, match="GitLab has no components"):
        routing_with(gitlab={"category_as_component": True})


@pytest.mark.parametrize(
    ("template", "label", "name"),
    [
        ("category::{category}", "category::widget", "widget"),
        ("category::{category}", "Category::Mobile App", "Mobile App"),
        ("category::{category}", "category::", None),
        ("category::{category}", "severity::high", None),
        ("category-{category}", "category-reports", "reports"),
        ("area-{category}-x", "AREA-billing-X", "billing"),
        ("area-{category}-x", "area-billing", None),
    ],
)
def test_a_label_of_the_category_form_gives_its_name_as_written(template: str, label: str, name: str | None) -> None:
    scheme = LabelScheme(**SCHEME, category=template)  # type: ignore[arg-type]
    assert scheme.category_of_label(label) == name


# --- how a new issue carries it -----------------------------------------------------------------------


def test_jira_takes_the_projects_component_as_the_project_spells_it(mappings: Mappings) -> None:
    routing = mappings.routing
    assert category_mark("jira", "widget", routing, ("Widget", "billing")) == CategoryMark(component="Widget")
    assert category_mark("jira", "reports", routing, ("Widget", "billing")) == CategoryMark(label="category-reports")
    assert category_mark("jira", "reports", routing) == CategoryMark(label="category-reports")


def test_without_the_component_switch_or_in_gitlab_the_category_is_a_label(mappings: Mappings) -> None:
    assert category_mark("gitlab", "widget", mappings.routing, ("widget",)) == CategoryMark(label="category::widget")
    off = routing_with(jira={"category_as_component": False})
    assert category_mark("jira", "widget", off, ("widget",)) == CategoryMark(label="category-widget")


# --- reading support's change back ------------------------------------------------------------------


def test_a_new_gitlab_category_label_is_supports_category(mappings: Mappings) -> None:
    names, scheme = mappings.categories.names, mappings.routing.labels["gitlab"]
    moved = gitlab_issue("severity::high", "category::billing")
    assert category_in_tracker("gitlab", moved, scheme, names, "widget") == "billing"
    # GitLab Free keeps both scoped labels: the one that is not the ticket's was just added.
    both = gitlab_issue("category::widget", "category::billing")
    assert category_in_tracker("gitlab", both, scheme, names, "widget") == "billing"
    spelled = gitlab_issue("Category::Billing")
    assert category_in_tracker("gitlab", spelled, scheme, names, "widget") == "billing"


def test_an_unchanged_or_removed_category_says_nothing(mappings: Mappings) -> None:
    names, scheme = mappings.categories.names, mappings.routing.labels["gitlab"]
    assert category_in_tracker("gitlab", gitlab_issue("category::widget"), scheme, names, "widget") is None
    assert category_in_tracker("gitlab", gitlab_issue("severity::high"), scheme, names, "widget") is None


def test_an_unknown_category_is_kept_as_written_and_cut_to_the_column(mappings: Mappings) -> None:
    names, scheme = mappings.categories.names, mappings.routing.labels["gitlab"]
    assert category_in_tracker("gitlab", gitlab_issue("category::Mobile-App"), scheme, names, "widget") == "Mobile-App"
    long = "x" * 150
    assert category_in_tracker("gitlab", gitlab_issue(f"category::{long}"), scheme, names, None) == "x" * 100
    # Stored as written, it is the ticket's category from then on: nothing changes next time.
    assert category_in_tracker("gitlab", gitlab_issue("category::Mobile-App"), scheme, names, "Mobile-App") is None


def test_of_several_new_categories_a_known_one_comes_first_in_mapping_order(mappings: Mappings) -> None:
    names, scheme = mappings.categories.names, mappings.routing.labels["gitlab"]
    issue = gitlab_issue("category::zzz", "category::reports", "category::login", "category::widget")
    assert categories_in_tracker("gitlab", issue, scheme, names) == ["zzz", "reports", "login", "widget"]
    assert category_in_tracker("gitlab", issue, scheme, names, "widget") == "login"


def test_jira_reads_category_components_and_labels(mappings: Mappings) -> None:
    names, scheme = mappings.categories.names, mappings.routing.labels["jira"]
    assert category_in_tracker("jira", jira_issue("billing"), scheme, names, "widget") == "billing"
    assert category_in_tracker("jira", jira_issue("Billing"), scheme, names, "widget") == "billing"
    assert category_in_tracker("jira", jira_issue("widget"), scheme, names, "widget") is None
    labelled = jira_issue("widget", labels=("severity-high", "category-mobile"))
    assert category_in_tracker("jira", labelled, scheme, names, "widget") == "mobile"


def test_jira_components_that_are_no_category_are_the_projects_own(mappings: Mappings) -> None:
    names, scheme = mappings.categories.names, mappings.routing.labels["jira"]
    assert category_in_tracker("jira", jira_issue("Backend", "iOS"), scheme, names, "widget") is None


def test_without_the_component_switch_jira_components_are_not_read(mappings: Mappings) -> None:
    scheme = routing_with(jira={"category_as_component": False}).labels["jira"]
    names = mappings.categories.names
    assert category_in_tracker("jira", jira_issue("billing"), scheme, names, "widget") is None
    assert category_in_tracker("jira", jira_issue(labels=("category-billing",)), scheme, names, "widget") == "billing"


# --- routing by category --------------------------------------------------------------------------------


def test_a_route_can_choose_by_category(tmp_path: Path, mappings: Mappings) -> None:
    routing = mappings.routing.model_copy(
        update={
            "routes": [
                Route(name="billing", when=RouteCondition(category=["billing"]), tracker="jira", project="BILL"),
                Route(
                    name="vip-login",
                    when=RouteCondition(category=["login"], organization=["Kunde A/S"]),
                    tracker="jira",
                    project="VIP",
                ),
            ]
        }
    )
    settings = make_settings(tmp_path)
    report = Report(title="t", description="d", organization="Kunde A/S")
    assert route(report, routing, settings, category="billing") == Destination(
        tracker="jira", project="BILL", board_id=1
    )
    assert route(report, routing, settings, category="Billing").project == "BILL"
    assert route(report, routing, settings, category="login").project == "VIP"
    other = Report(title="t", description="d", organization="Firma ApS")
    assert route(other, routing, settings, category="login") == Destination(tracker="gitlab", project="acme/support")
    assert route(report, routing, settings).tracker == "gitlab"  # no category yet: no category route matches


def test_a_route_needs_some_condition() -> None:
    with pytest.raises(ValidationError, match="`category`"):
        RouteCondition()


def test_a_route_naming_an_unknown_category_stops_start_up_at_its_line(tmp_path: Path) -> None:
    directory = tmp_path / "mappings"
    shutil.copytree(REPO / "mappings", directory)
    routing = yaml.safe_load((directory / "routing.yaml").read_text())
    routing["routes"] = [{"name": "money", "when": {"category": ["billing", "payroll"]}, "tracker": "jira"}]
    (directory / "routing.yaml").write_text(yaml.safe_dump(routing, sort_keys=False))
    with pytest.raises(ConfigError) as caught:
        load_mappings(directory)
    (problem,) = caught.value.problems
    assert problem.file.endswith("routing.yaml")
    assert problem.key == "routes.0.when.category.1"
    assert "unknown category 'payroll'" in problem.message
    text = (directory / "routing.yaml").read_text().splitlines()
    assert problem.line is not None
    assert text[problem.line - 1].strip() == "- payroll"


# --- the components cache -------------------------------------------------------------------------------


class Ticking:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_components_are_read_once_per_project_within_the_cache_time() -> None:
    jira = FakeTracker("jira")
    jira.project_components = {"SUP": ("widget", "billing"), "BILL": ("billing",)}
    clock = Ticking()
    cache = ProjectComponents(trackers={"jira": jira}, cache_seconds=60, monotonic=clock)
    sup, bill = Destination(tracker="jira", project="SUP"), Destination(tracker="jira", project="BILL")
    assert cache.of(sup) == ("widget", "billing")
    assert cache.of(bill) == ("billing",)
    jira.project_components["SUP"] = ("widget",)
    clock.now += 59
    assert cache.of(sup) == ("widget", "billing")
    assert jira.calls.count("components") == 2
    clock.now += 2
    assert cache.of(sup) == ("widget",)
    assert jira.calls.count("components") == 3


def test_unreadable_components_mean_none_and_an_outage_is_raised() -> None:
    """No permission or no such project: no components (the label is written) and no report fails;
    a passing outage is raised so the filing job retries, and nothing is cached for it."""
    jira = FakeTracker("jira")
    jira.project_components = {"SUP": ("widget",)}
    clock = Ticking()
    cache = ProjectComponents(trackers={"jira": jira}, cache_seconds=60, monotonic=clock)
    sup = Destination(tracker="jira", project="SUP")
    jira.fail_next["components"] = [RetryableError("jira: HTTP 503")]
    with pytest.raises(RetryableError):
        cache.of(sup)
    jira.fail_next["components"] = [PermanentError("jira: HTTP 403")]
    assert cache.of(sup) == ()
    assert cache.of(sup) == ()  # cached: not asked again within the cache time
    assert jira.calls.count("components") == 2
