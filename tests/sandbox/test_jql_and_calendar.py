"""Pure parts: the JQL subset parser and the sprint calendar the seed data is placed on."""

from __future__ import annotations

from datetime import date

import pytest

from sandbox import clock, jql


def test_parse_clauses_and_order() -> None:
    """AND-joined clauses, ``in`` lists, quoted values and ORDER BY parse into a query."""
    query = jql.parse('project = SUP AND labels in (a, "b c") AND statusCategory != Done ORDER BY created DESC')
    assert [(c.field, c.op, [v.text for v in c.values]) for c in query.clauses] == [
        ("project", "=", ["SUP"]),
        ("labels", "in", ["a", "b c"]),
        ("statuscategory", "!=", ["Done"]),
    ]
    assert query.order == (("created", True),)


def test_escaped_phrase_matches_as_substring() -> None:
    """``summary ~ "\\"[ST-1]\\""`` unquotes the inner phrase and matches case-insensitively."""
    (clause,) = jql.parse('summary ~ "\\"[st-1]\\""').clauses
    assert jql.clause_matches(clause, {"summary": ["[st-1] login"]}, lambda name: [])
    assert not jql.clause_matches(clause, {"summary": ["[st-12] login"]}, lambda name: [])


@pytest.mark.parametrize(
    "query",
    [
        "project = SUP OR project = X",
        "(project = SUP)",
        "created >= -1d",
        "summary = x",
        "status ~ x",
        "unknownfield = 1",
        "project = ",
        "labels in (a, b",
        "project = SUP ORDER BY rank",
    ],
)
def test_unsupported_queries_raise(query: str) -> None:
    """Anything outside the subset raises JqlError (answered 400)."""
    with pytest.raises(jql.JqlError):
        jql.parse(query)


def test_not_equal_and_empty() -> None:
    """``!=`` excludes the value; ``is EMPTY`` matches missing values."""
    (neq,) = jql.parse("labels != x").clauses
    (empty,) = jql.parse("resolution is EMPTY").clauses
    assert jql.clause_matches(neq, {"labels": ["y"]}, lambda name: [])
    assert not jql.clause_matches(neq, {"labels": ["x", "y"]}, lambda name: [])
    assert jql.clause_matches(empty, {"resolution": []}, lambda name: [])


def test_sprint_calendar() -> None:
    """Sprints are 14 days from Monday 2025-02-03 (Sprint 1); 2026-11-25 is in Sprint 48."""
    current = clock.sprint_containing(date(2026, 11, 25))
    assert (current.number, current.start, current.end) == (48, date(2026, 11, 23), date(2026, 12, 6))
    assert clock.sprint_containing(date(2026, 12, 6)).number == 48
    assert clock.sprint_containing(date(2026, 12, 7)).number == 49
    assert clock.sprint_slot(1).start == clock.SPRINT_ANCHOR


def test_wire_time_formats() -> None:
    """GitLab and Jira time stamps use each vendor's format."""
    moment = clock.day_start(date(2026, 11, 25)).replace(hour=9, minute=5, second=7, microsecond=123456)
    assert clock.gitlab_rest(moment) == "2026-11-25T09:05:07.123Z"
    assert clock.gitlab_hook(moment) == "2026-11-25T09:05:07Z"
    assert clock.gitlab_hook_utc(moment) == "2026-11-25 09:05:07 UTC"
    assert clock.jira(moment) == "2026-11-25T09:05:07.123+0000"
