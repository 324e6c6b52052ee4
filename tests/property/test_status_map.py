"""Properties of tracker state -> reporter-facing status (``following.status_map``, shipped mappings)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bridge.domain import IssueSnapshot, Status
from bridge.pipeline.following.status_map import map_status
from tests.property.conftest import PROPERTY, SHIPPED

RULES = SHIPPED.status
OPEN_STATUSES = {Status.RECEIVED, Status.TRIAGED, Status.IN_PROGRESS, Status.IN_QA, Status.REOPENED}


def _cased(values: list[str]) -> st.SearchStrategy[str]:
    """The mapping's own names, as written, upper-cased or title-cased (trackers and people vary)."""
    return st.sampled_from(values).flatmap(lambda v: st.sampled_from([v, v.upper(), v.title()]))


LABELS = st.lists(
    st.one_of(
        _cased([*RULES.gitlab.open_labels, *RULES.gitlab.declined_labels]),
        st.sampled_from(["severity::critical", "type::hotfix", "workflow::unknown", "resolution::other"]),
        st.text(max_size=20),
    ),
    max_size=5,
).map(tuple)
GITLAB_ISSUES = st.builds(
    IssueSnapshot, key=st.just("12"), title=st.just("[ST-7K3Q9X2M] t"), open=st.booleans(), labels=LABELS
)

OPTIONAL_TEXT = st.one_of(st.none(), st.text(max_size=12))
JIRA_ISSUES = st.builds(
    IssueSnapshot,
    key=st.just("SUP-12"),
    title=st.just("[ST-7K3Q9X2M] t"),
    open=st.booleans(),
    status_id=st.one_of(OPTIONAL_TEXT, st.sampled_from([*RULES.jira.status_ids, "10001"])),
    status_name=st.one_of(OPTIONAL_TEXT, _cased([*RULES.jira.status_names, "Done", "To Do", "In Progress"])),
    status_category=st.one_of(OPTIONAL_TEXT, st.sampled_from([*RULES.jira.categories, "undefined"])),
    resolution=st.one_of(OPTIONAL_TEXT, _cased([*RULES.jira.declined_resolutions, "Done", "Fixed"])),
)
ISSUES = st.one_of(st.tuples(st.just("gitlab"), GITLAB_ISSUES), st.tuples(st.just("jira"), JIRA_ISSUES))
CURRENT = st.sampled_from(list(Status))


@PROPERTY
@given(tracker_issue=ISSUES, current=CURRENT)
def test_always_a_contract_status_or_none(tracker_issue: tuple[str, IssueSnapshot], current: Status) -> None:
    """Whatever the issue's state, the result is one of the CONTRACT's statuses, or None (unmapped)."""
    tracker, issue = tracker_issue
    mapped = map_status(tracker, issue, current, RULES)
    assert mapped is None or mapped.status in set(Status)
    if mapped is not None and mapped.status is Status.DECLINED:
        assert mapped.reason


@PROPERTY
@given(issue=GITLAB_ISSUES.map(lambda i: IssueSnapshot(**{**i.__dict__, "open": False})), current=CURRENT)
def test_a_closed_gitlab_issue_never_maps_to_an_open_status(issue: IssueSnapshot, current: Status) -> None:
    """A closed GitLab issue is resolved or declined, whatever its labels and the current status."""
    mapped = map_status("gitlab", issue, current, RULES)
    assert mapped is not None
    assert mapped.status not in OPEN_STATUSES


@PROPERTY
@given(tracker_issue=ISSUES, current=CURRENT)
def test_mapping_is_idempotent(tracker_issue: tuple[str, IssueSnapshot], current: Status) -> None:
    """Mapping the same issue again, with the status it produced as the current one, gives that status."""
    tracker, issue = tracker_issue
    first = map_status(tracker, issue, current, RULES)
    if first is not None:
        again = map_status(tracker, issue, first.status, RULES)
        assert again == first
