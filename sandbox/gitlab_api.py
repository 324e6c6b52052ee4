"""GitLab REST API v4 subset: user, project, issues, notes, milestones, hooks (``/api/v4``)."""

from __future__ import annotations

import hmac
import math
from typing import Any, TypeVar
from urllib.parse import urlencode

from flask import Blueprint, Response, request

from sandbox import gitlab_json
from sandbox.gitlab_model import HOOK_EVENT_FLAGS, GitLabError, GlIssue, GlProject, IssueUpdate
from sandbox.web import params, reply, sandbox, truthy

bp = Blueprint("gitlab", __name__, url_prefix="/api/v4")
T = TypeVar("T")


@bp.before_request
def _authenticate() -> Response | None:
    token = request.headers.get("PRIVATE-TOKEN") or ""
    auth = request.headers.get("Authorization", "")
    if not token and auth.lower().startswith("bearer "):
        token = auth[7:].strip()
    expected = sandbox().config.gitlab_token
    if not token or not hmac.compare_digest(token.encode(), expected.encode()):
        return reply({"message": "401 Unauthorized"}, 401)
    return None


@bp.errorhandler(GitLabError)
def _gitlab_error(error: GitLabError) -> Response:
    if error.status == 400 and isinstance(error.message, str):
        return reply({"error": error.message}, 400)
    return reply({"message": error.message}, error.status)


def _project(pid: str) -> GlProject:
    project = sandbox().gitlab.find_project(pid)
    if project is None:
        raise GitLabError(404, "404 Project Not Found")
    return project


def _issue(project: GlProject, iid: int) -> GlIssue:
    issue = sandbox().gitlab.find_issue(project, iid)
    if issue is None:
        raise GitLabError(404, "404 Not found")
    return issue


def _int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise GitLabError(400, f"{name} is invalid") from None


def _list(value: Any) -> list[str]:
    """A comma-separated string (or a JSON array) as a list of names."""
    if value is None:
        return []
    items = value if isinstance(value, list) else str(value).split(",")
    return [str(x).strip() for x in items if str(x).strip()]


def paginate(items: list[T]) -> tuple[list[T], dict[str, str]]:
    """One page of ``items`` and GitLab's ``X-*`` and ``Link`` pagination headers."""
    page = max(1, _int(request.args.get("page", 1), "page"))
    per_page = min(100, max(1, _int(request.args.get("per_page", 20), "per_page")))
    total = len(items)
    pages = max(1, math.ceil(total / per_page))
    headers = {
        "X-Total": str(total),
        "X-Total-Pages": str(pages),
        "X-Page": str(page),
        "X-Per-Page": str(per_page),
        "X-Next-Page": str(page + 1) if page < pages else "",
        "X-Prev-Page": str(page - 1) if 1 < page <= pages + 1 else "",
    }
    args = [(k, v) for k, v in request.args.items(multi=True) if k not in ("page", "per_page")]

    def link(number: int, rel: str) -> str:
        query = urlencode([*args, ("page", str(number)), ("per_page", str(per_page))])
        return f'<{request.base_url}?{query}>; rel="{rel}"'

    links = []
    if page > 1:
        links.append(link(page - 1, "prev"))
    if page < pages:
        links.append(link(page + 1, "next"))
    links += [link(1, "first"), link(pages, "last")]
    headers["Link"] = ", ".join(links)
    start = (page - 1) * per_page
    return items[start : start + per_page], headers


@bp.get("/user")
def get_user() -> Response:
    sb = sandbox()
    return reply(gitlab_json.current_user(sb.gitlab.bot, sb.base_url))


@bp.get("/projects/<path:pid>")
def get_project(pid: str) -> Response:
    sb = sandbox()
    with sb.lock:
        return reply(gitlab_json.project(_project(pid), sb.base_url))


def _issue_filter(issue: GlIssue, args: dict[str, Any], iids: list[str]) -> bool:
    sb = sandbox()
    state = args.get("state", "all")
    if state in ("opened", "closed") and issue.state != state:
        return False
    if iids and str(issue.iid) not in iids:
        return False
    labels = args.get("labels")
    if labels == "None" and issue.labels:
        return False
    if labels == "Any" and not issue.labels:
        return False
    if labels not in (None, "", "None", "Any") and not all(x in issue.labels for x in _list(labels)):
        return False
    milestone_title = args.get("milestone")
    milestone = sb.gitlab.milestone(issue.milestone_id)
    if milestone_title == "None" and milestone is not None:
        return False
    if milestone_title == "Any" and milestone is None:
        return False
    if milestone_title not in (None, "", "None", "Any") and (milestone is None or milestone.title != milestone_title):
        return False
    if "confidential" in args and truthy(args["confidential"]) != issue.confidential:
        return False
    scope = args.get("scope", "all")
    if scope == "created_by_me" and issue.author_id != sb.gitlab.bot.id:
        return False
    if scope == "assigned_to_me":
        return False
    search = (args.get("search") or "").strip().lower()
    if search:
        where = _list(args.get("in") or "title,description")
        haystack = " ".join(
            (issue.title if "title" in where else "", (issue.description or "") if "description" in where else "")
        ).lower()
        if search not in haystack:
            return False
    return True


@bp.get("/projects/<path:pid>/issues")
def list_issues(pid: str) -> Response:
    sb = sandbox()
    args = request.args.to_dict()
    iids = request.args.getlist("iids[]") + request.args.getlist("iids")
    with sb.lock:
        project = _project(pid)
        found = [i for i in sb.gitlab.project_issues(project) if _issue_filter(i, args, iids)]
        key = "updated_at" if args.get("order_by") == "updated_at" else "created_at"
        found.sort(key=lambda i: (getattr(i, key), i.id), reverse=args.get("sort", "desc") != "asc")
        page, headers = paginate(found)
        data = [gitlab_json.issue(i, sb.gitlab, sb.base_url, today=sb.today) for i in page]
    return reply(data, 200, headers)


@bp.post("/projects/<path:pid>/issues")
def create_issue(pid: str) -> Response:
    sb = sandbox()
    values = params()
    title = values.get("title")
    if title is None:
        raise GitLabError(400, {"title": ["can't be blank"]})
    weight = values.get("weight")
    milestone_id = values.get("milestone_id")
    with sb.lock:
        project = _project(pid)
        change = sb.gitlab.create_issue(
            project,
            sb.gitlab.bot,
            title=str(title),
            description=values.get("description"),
            labels=_list(values.get("labels")),
            milestone_id=_int(milestone_id, "milestone_id") if milestone_id not in (None, "") else None,
            confidential=truthy(values.get("confidential", False)),
            weight=_int(weight, "weight") if weight not in (None, "") else None,
            due_date=values.get("due_date"),
        )
        data = gitlab_json.issue(change.issue, sb.gitlab, sb.base_url, today=sb.today)
        deliveries = sb.plan(sb.gitlab_events([change]))
    sb.send(deliveries)
    return reply(data, 201)


@bp.get("/projects/<path:pid>/issues/<int:iid>")
def get_issue(pid: str, iid: int) -> Response:
    sb = sandbox()
    with sb.lock:
        issue = _issue(_project(pid), iid)
        return reply(gitlab_json.issue(issue, sb.gitlab, sb.base_url, today=sb.today))


def issue_update(values: dict[str, Any]) -> IssueUpdate:
    """The attributes of a ``PUT /issues/:iid`` request."""
    update = IssueUpdate(
        title=values.get("title"),
        description=values.get("description"),
        state_event=values.get("state_event") or None,
        labels=_list(values["labels"]) if "labels" in values else None,
        add_labels=_list(values.get("add_labels")) or None,
        remove_labels=_list(values.get("remove_labels")) or None,
        due_date=values.get("due_date"),
    )
    if "milestone_id" in values:
        raw = values["milestone_id"]
        update.milestone_id = 0 if raw in (None, "", 0, "0") else _int(raw, "milestone_id")
    if "confidential" in values:
        update.confidential = truthy(values["confidential"])
    if "discussion_locked" in values:
        update.discussion_locked = truthy(values["discussion_locked"])
    if "weight" in values:
        if values["weight"] in (None, ""):
            update.clear_weight = True
        else:
            update.weight = _int(values["weight"], "weight")
    return update


@bp.put("/projects/<path:pid>/issues/<int:iid>")
def update_issue(pid: str, iid: int) -> Response:
    sb = sandbox()
    update = issue_update(params())
    with sb.lock:
        issue = _issue(_project(pid), iid)
        change = sb.gitlab.update_issue(issue, sb.gitlab.bot, update)
        data = gitlab_json.issue(issue, sb.gitlab, sb.base_url, today=sb.today)
        deliveries = sb.plan(sb.gitlab_events([change]))
    sb.send(deliveries)
    return reply(data)


@bp.get("/projects/<path:pid>/issues/<int:iid>/notes")
def list_notes(pid: str, iid: int) -> Response:
    sb = sandbox()
    with sb.lock:
        issue = _issue(_project(pid), iid)
        notes = sorted(issue.notes, key=lambda n: n.id, reverse=request.args.get("sort", "desc") != "asc")
        page, headers = paginate(notes)
        data = [gitlab_json.note(n, issue, sb.gitlab, sb.base_url) for n in page]
    return reply(data, 200, headers)


@bp.post("/projects/<path:pid>/issues/<int:iid>/notes")
def create_note(pid: str, iid: int) -> Response:
    sb = sandbox()
    values = params()
    if values.get("body") is None:
        raise GitLabError(400, "body is missing")
    internal = truthy(values.get("internal", values.get("confidential", False)))
    with sb.lock:
        issue = _issue(_project(pid), iid)
        added = sb.gitlab.add_note(issue, sb.gitlab.bot, str(values["body"]), internal=internal)
        data = gitlab_json.note(added.note, issue, sb.gitlab, sb.base_url)
        deliveries = sb.plan(sb.gitlab_events([added]))
    sb.send(deliveries)
    return reply(data, 201)


@bp.get("/projects/<path:pid>/milestones")
def list_milestones(pid: str) -> Response:
    sb = sandbox()
    args = request.args
    iids = args.getlist("iids[]") + args.getlist("iids")
    with sb.lock:
        project = _project(pid)
        found = sb.gitlab.project_milestones(project, include_ancestors=truthy(args.get("include_ancestors", "")))
        if args.get("state") in ("active", "closed"):
            found = [m for m in found if m.state == args["state"]]
        if args.get("title"):
            found = [m for m in found if m.title == args["title"]]
        if args.get("search"):
            needle = args["search"].lower()
            found = [m for m in found if needle in m.title.lower() or needle in m.description.lower()]
        if iids:
            found = [m for m in found if str(m.iid) in iids]
        page, headers = paginate(found)
        data = [gitlab_json.milestone(m, sb.gitlab, sb.base_url, today=sb.today) for m in page]
    return reply(data, 200, headers)


@bp.get("/projects/<path:pid>/milestones/<int:milestone_id>")
def get_milestone(pid: str, milestone_id: int) -> Response:
    sb = sandbox()
    with sb.lock:
        project = _project(pid)
        milestone = sb.gitlab.milestones.get(milestone_id)
        if milestone is None or milestone.project_id != project.id:
            raise GitLabError(404, "404 Milestone Not Found")
        return reply(gitlab_json.milestone(milestone, sb.gitlab, sb.base_url, today=sb.today))


@bp.get("/projects/<path:pid>/hooks")
def list_hooks(pid: str) -> Response:
    sb = sandbox()
    with sb.lock:
        project = _project(pid)
        hooks = [h for h in sb.gitlab.hooks.values() if h.project_id == project.id]
        page, headers = paginate(hooks)
        return reply([gitlab_json.hook(h) for h in page], 200, headers)


@bp.post("/projects/<path:pid>/hooks")
def create_hook(pid: str) -> Response:
    sb = sandbox()
    values = params()
    url = values.get("url")
    if not url:
        raise GitLabError(400, "url is missing")
    events = {flag: truthy(values.get(flag, flag == "push_events")) for flag in HOOK_EVENT_FLAGS}
    with sb.lock:
        hook = sb.gitlab.add_hook(_project(pid), str(url), values.get("token"), events)
        return reply(gitlab_json.hook(hook), 201)
