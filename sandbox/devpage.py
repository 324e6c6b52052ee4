"""The developer's page: every issue of both trackers, with forms that act as the ``developer`` user."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as WerkzeugResponse

from sandbox import devactions
from sandbox.web import sandbox, truthy

bp = Blueprint("devpage", __name__)


def _gitlab_rows() -> list[dict[str, Any]]:
    sb = sandbox()
    store = sb.gitlab
    rows = []
    for issue in sorted(store.issues.values(), key=lambda i: i.id, reverse=True):
        milestone = store.milestone(issue.milestone_id)
        rows.append(
            {
                "ref": str(issue.iid),
                "title": issue.title,
                "labels": sorted(issue.labels),
                "plan": milestone.title if milestone else "",
                "status": issue.state,
                "confidential": issue.confidential,
                "notes": len(issue.notes),
                "url": f"{sb.base_url}/api/v4/projects/{issue.project_id}/issues/{issue.iid}",
            }
        )
    return rows


def _jira_rows() -> list[dict[str, Any]]:
    sb = sandbox()
    store = sb.jira
    rows = []
    for issue in sorted(store.issues.values(), key=lambda i: int(i.id), reverse=True):
        status = store.status(issue)
        rows.append(
            {
                "ref": issue.key,
                "title": issue.summary,
                "labels": list(issue.labels),
                "components": [c.name for c in issue.components],
                "plan": ", ".join(s.name for s in store.issue_sprints(issue)),
                "status": status.name + (f" ({issue.resolution.name})" if issue.resolution else ""),
                "priority": issue.priority.name,
                "notes": len(issue.comments),
                "url": f"{sb.base_url}/rest/api/2/issue/{issue.key}",
            }
        )
    return rows


@bp.get("/")
def index() -> str:
    sb = sandbox()
    with sb.lock:
        context = {
            "today": sb.today.isoformat(),
            "gitlab_rows": _gitlab_rows(),
            "jira_rows": _jira_rows(),
            "milestones": sorted(sb.gitlab.milestones.values(), key=lambda m: m.id),
            "sprints": sb.jira.board_sprints(sb.jira.board.id),
            "components": [c.name for c in sb.jira.components],
            "targets": {k: (t.url if t else None) for k, t in sb.targets.items()},
            "rules": len(sb.faults.rules),
        }
    return render_template(
        "index.html",
        resolutions=devactions.RESOLUTIONS,
        severities=devactions.SEVERITIES,
        category_names=devactions.CATEGORY_SUGGESTIONS,
        **context,
    )


@bp.post("/dev/<tracker>/<ref>")
def act(tracker: str, ref: str) -> WerkzeugResponse:
    form = request.form
    try:
        message = devactions.run(
            sandbox(),
            devactions.Act(
                tracker=tracker,
                issue=ref,
                action=form.get("action", ""),
                text=form.get("text", ""),
                internal=truthy(form.get("internal", "")),
                resolution=form.get("resolution") or "fixed",
                severity=form.get("severity", ""),
                category=form.get("category", ""),
            ),
        )
        flash(message, "ok")
    except devactions.ActionError as exc:
        flash(str(exc), "error")
    return redirect(url_for("devpage.index") + f"#{tracker}-{ref}", code=303)
