"""The data the sandbox starts with, placed around "today" on a two-week sprint calendar.

Sprint ``n`` starts on the Monday ``clock.SPRINT_ANCHOR + 14·(n-1)`` days and ends 13 days later
(a Sunday); the current sprint is the one containing today.

GitLab: project 1 ``acme/support`` in group 10 ``acme``; project milestones "Sprint <n-1>" (closed)
and "Sprint <n>" (active, current); group milestone "Sprint <n+1>" (active, next).
Jira: project SUP (10000), board 1; sprints "SUP Sprint <n-1>" (closed), "SUP Sprint <n>" (active),
"SUP Sprint <n+1>" (future, dated) and "SUP Sprint <n+2>" (future, no dates).
"""

from __future__ import annotations

from datetime import date

from sandbox import clock
from sandbox.gitlab_store import GitLabStore
from sandbox.jira_model import Sprint
from sandbox.jira_store import JiraStore


def seed_gitlab(store: GitLabStore, today: date) -> None:
    current = clock.sprint_containing(today)
    previous = clock.sprint_slot(current.number - 1)
    upcoming = clock.sprint_slot(current.number + 1)
    project = store.projects[1]
    store.add_milestone(
        title=f"Sprint {previous.number}",
        start=previous.start,
        due=previous.end,
        state="closed",
        project=project,
        description="Finished sprint",
    )
    store.add_milestone(
        title=f"Sprint {current.number}",
        start=current.start,
        due=current.end,
        project=project,
        description="Current sprint",
    )
    store.add_milestone(
        title=f"Sprint {upcoming.number}",
        start=upcoming.start,
        due=upcoming.end,
        group=store.group,
        description="Next sprint (group milestone)",
    )


def seed_jira(store: JiraStore, today: date) -> None:
    current = clock.sprint_containing(today)
    slots = [clock.sprint_slot(current.number + k) for k in (-1, 0, 1, 2)]
    states = ["closed", "active", "future", "future"]
    for index, (slot, state) in enumerate(zip(slots, states, strict=True), start=1):
        dated = index < 4
        store.add_sprint(
            Sprint(
                id=index,
                name=f"SUP Sprint {slot.number}",
                state=state,
                board_id=store.board.id,
                start=clock.day_start(slot.start) if dated else None,
                end=clock.day_end(slot.end) if dated else None,
                complete=clock.day_end(slot.end) if state == "closed" else None,
                goal="" if dated else "Not planned yet",
            )
        )
