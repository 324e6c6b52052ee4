"""Jira Software agile API 1.0 subset: boards, sprints, moving issues into a sprint or the backlog."""

from __future__ import annotations

from flask import Blueprint, Response, request

from sandbox import jira_json, jira_search
from sandbox.jira_api import authenticate, field_names, int_arg, jira_error, jql_error
from sandbox.jira_model import JiraError, Sprint
from sandbox.jql import JqlError
from sandbox.web import empty, json_body, reply, sandbox

bp = Blueprint("agile", __name__, url_prefix="/rest/agile/1.0")
bp.before_request(authenticate)
bp.register_error_handler(JiraError, jira_error)
bp.register_error_handler(JqlError, jql_error)


def _sprint(sprint_id: int) -> Sprint:
    sprint = sandbox().jira.sprints.get(sprint_id)
    if sprint is None:
        raise JiraError(404, ["Sprint does not exist or you do not have permission to see it."])
    return sprint


def _check_board(board_id: int) -> None:
    if board_id != sandbox().jira.board.id:
        raise JiraError(404, ["Board does not exist or you do not have permission to see it."])


@bp.get("/board")
def list_boards() -> Response:
    sb = sandbox()
    project = request.args.get("projectKeyOrId")
    boards = [sb.jira.board] if not project or sb.jira.find_project(project) else []
    values = [jira_json.board(b, sb.base_url) for b in boards]
    return reply({"maxResults": 50, "startAt": 0, "total": len(values), "isLast": True, "values": values})


@bp.get("/board/<int:board_id>")
def get_board(board_id: int) -> Response:
    sb = sandbox()
    _check_board(board_id)
    return reply(jira_json.board(sb.jira.board, sb.base_url))


@bp.get("/board/<int:board_id>/sprint")
def list_board_sprints(board_id: int) -> Response:
    """Paged like Jira: ``startAt``, ``maxResults`` (default 50), ``isLast``, ``values``."""
    sb = sandbox()
    args = request.args.to_dict()
    states = {s.strip() for s in args.get("state", "").split(",") if s.strip()}
    if states - {"active", "future", "closed"}:
        raise JiraError(400, ["The state parameter must be one of: future, active, closed."])
    start = max(0, int_arg(args, "startAt", 0))
    size = min(50, max(1, int_arg(args, "maxResults", 50)))
    with sb.lock:
        _check_board(board_id)
        found = [s for s in sb.jira.board_sprints(board_id) if not states or s.state in states]
        values = [jira_json.sprint(s, sb.base_url) for s in found[start : start + size]]
    return reply(
        {
            "maxResults": size,
            "startAt": start,
            "total": len(found),
            "isLast": start + size >= len(found),
            "values": values,
        }
    )


@bp.get("/sprint/<int:sprint_id>")
def get_sprint(sprint_id: int) -> Response:
    sb = sandbox()
    with sb.lock:
        return reply(jira_json.sprint(_sprint(sprint_id), sb.base_url))


@bp.post("/sprint/<int:sprint_id>/issue")
def add_sprint_issues(sprint_id: int) -> Response:
    """Only active or future sprints; at most 50 issues per call."""
    sb = sandbox()
    issues = json_body().get("issues")
    if not isinstance(issues, list) or not issues:
        raise JiraError(400, ["'issues' must be a non-empty list of issue keys or ids."])
    with sb.lock:
        changes = sb.jira.move_to_sprint(_sprint(sprint_id), issues, sb.jira.bot)
        deliveries = sb.plan(sb.jira_events(changes))
    sb.send(deliveries)
    return empty()


@bp.post("/backlog/issue")
def move_to_backlog() -> Response:
    sb = sandbox()
    issues = json_body().get("issues")
    if not isinstance(issues, list) or not issues:
        raise JiraError(400, ["'issues' must be a non-empty list of issue keys or ids."])
    with sb.lock:
        changes = sb.jira.move_to_sprint(None, issues, sb.jira.bot)
        deliveries = sb.plan(sb.jira_events(changes))
    sb.send(deliveries)
    return empty()


@bp.get("/sprint/<int:sprint_id>/issue")
def list_sprint_issues(sprint_id: int) -> Response:
    sb = sandbox()
    args = request.args.to_dict()
    start = max(0, int_arg(args, "startAt", 0))
    size = min(100, max(0, int_arg(args, "maxResults", 50)))
    with sb.lock:
        sprint = _sprint(sprint_id)
        found = [
            i for i in jira_search.search(sb.jira, args.get("jql", ""), validate=False) if sprint.id in i.sprint_ids
        ]
        issues = [jira_json.issue(i, sb.jira, sb.base_url, field_names()) for i in found[start : start + size]]
    return reply(
        {"expand": "schema,names", "startAt": start, "maxResults": size, "total": len(found), "issues": issues}
    )
