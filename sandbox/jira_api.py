"""Jira REST API v2 subset (``/rest/api/2``) and admin webhook registration (``/rest/webhooks/1.0``)."""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any

from flask import Blueprint, Response, request

from sandbox import jira_json, jira_search
from sandbox.jira_model import JiraError, JiraIssue
from sandbox.jql import JqlError
from sandbox.web import empty, json_body, reply, sandbox, truthy

bp = Blueprint("jira", __name__, url_prefix="/rest/api/2")
hooks_bp = Blueprint("jira_webhooks", __name__, url_prefix="/rest/webhooks/1.0")


def authenticate() -> Response | None:
    """Basic ``user:token`` (or a bearer token); ``serverInfo`` may also be read anonymously."""
    config = sandbox().config
    header = request.headers.get("Authorization", "")
    if not header and request.endpoint == "jira.server_info":
        return None
    ok = False
    if header.lower().startswith("basic "):
        try:
            user, _, token = base64.b64decode(header[6:].strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, token = "", ""
        ok = hmac.compare_digest(user.encode(), config.jira_user.encode()) and hmac.compare_digest(
            token.encode(), config.jira_token.encode()
        )
    elif header.lower().startswith("bearer "):
        ok = hmac.compare_digest(header[7:].strip().encode(), config.jira_token.encode())
    if ok:
        return None
    return reply(
        {"errorMessages": ["You are not authenticated. Authentication required to perform this operation."]},
        401,
    )


bp.before_request(authenticate)
hooks_bp.before_request(authenticate)


def jira_error(error: JiraError) -> Response:
    return reply({"errorMessages": error.messages, "errors": error.errors}, error.status)


def jql_error(error: JqlError) -> Response:
    return reply({"errorMessages": [str(error)], "errors": {}, "warningMessages": []}, 400)


for _bp in (bp, hooks_bp):
    _bp.register_error_handler(JiraError, jira_error)
    _bp.register_error_handler(JqlError, jql_error)


def find_issue(ref: str) -> JiraIssue:
    issue = sandbox().jira.find_issue(ref)
    if issue is None:
        raise JiraError(404, ["Issue does not exist or you do not have permission to see it."])
    return issue


def int_arg(values: dict[str, Any], name: str, default: int) -> int:
    try:
        return int(values.get(name, default))
    except (TypeError, ValueError):
        raise JiraError(400, [f"The '{name}' parameter must be a number."]) from None


def field_names(values: dict[str, Any] | None = None) -> list[str]:
    """``fields`` as a repeated query parameter, a comma list or a JSON array."""
    raw: list[Any] = request.args.getlist("fields")
    if values is not None and "fields" in values:
        raw = values["fields"] if isinstance(values["fields"], list) else [values["fields"]]
    return [part.strip() for item in raw for part in str(item).split(",") if part.strip()]


@bp.get("/serverInfo")
def server_info() -> Response:
    sb = sandbox()
    return reply(jira_json.server_info(sb.base_url, sb.config.jira_deployment_type))


@bp.get("/myself")
def myself() -> Response:
    sb = sandbox()
    return reply(jira_json.myself(sb.jira.bot, sb.base_url))


@bp.get("/project")
def list_projects() -> Response:
    sb = sandbox()
    return reply([jira_json.project(sb.jira.project, sb.jira, sb.base_url)])


@bp.get("/project/<ref>")
def get_project(ref: str) -> Response:
    sb = sandbox()
    project = sb.jira.find_project(ref)
    if project is None:
        raise JiraError(404, [f"No project could be found with key '{ref}'."])
    return reply(jira_json.project(project, sb.jira, sb.base_url))


@bp.get("/project/<ref>/components")
def list_components(ref: str) -> Response:
    sb = sandbox()
    with sb.lock:
        project = sb.jira.find_project(ref)
        if project is None:
            raise JiraError(404, [f"No project could be found with key '{ref}'."])
        return reply([jira_json.component(c, project, sb.jira, sb.base_url) for c in sb.jira.components])


@bp.get("/priority")
def list_priorities() -> Response:
    sb = sandbox()
    return reply([jira_json.priority(p, sb.base_url) for p in sb.jira.priorities])


@bp.get("/resolution")
def list_resolutions() -> Response:
    sb = sandbox()
    return reply([jira_json.named("resolution", r, sb.base_url) for r in sb.jira.resolutions])


@bp.get("/status")
def list_statuses() -> Response:
    sb = sandbox()
    return reply([jira_json.status(s, sb.base_url) for s in sb.jira.statuses.values()])


@bp.get("/issuetype")
def list_issue_types() -> Response:
    sb = sandbox()
    return reply([jira_json.issue_type(t, sb.base_url) for t in sb.jira.issue_types])


@bp.get("/issue/createmeta/<ref>/issuetypes")
def createmeta_issue_types(ref: str) -> Response:
    sb = sandbox()
    if sb.jira.find_project(ref) is None:
        raise JiraError(404, [f"No project could be found with key '{ref}'."])
    values = [jira_json.issue_type(t, sb.base_url) for t in sb.jira.issue_types]
    return reply({"startAt": 0, "maxResults": 50, "total": len(values), "isLast": True, "values": values})


@bp.get("/field")
def list_fields() -> Response:
    return reply(jira_json.fields_list())


@bp.post("/issue")
def create_issue() -> Response:
    sb = sandbox()
    fields = json_body().get("fields")
    if not isinstance(fields, dict):
        raise JiraError(400, ["Issue fields are required."])
    with sb.lock:
        change = sb.jira.create_issue(fields, sb.jira.bot)
        issue = change.issue
        data = {"id": issue.id, "key": issue.key, "self": f"{sb.base_url}/rest/api/2/issue/{issue.id}"}
        deliveries = sb.plan(sb.jira_events([change]))
    sb.send(deliveries)
    return reply(data, 201)


@bp.get("/issue/<ref>")
def get_issue(ref: str) -> Response:
    sb = sandbox()
    with sb.lock:
        return reply(jira_json.issue(find_issue(ref), sb.jira, sb.base_url, field_names()))


@bp.put("/issue/<ref>")
def update_issue(ref: str) -> Response:
    sb = sandbox()
    body = json_body()
    fields, update = body.get("fields") or {}, body.get("update") or {}
    if not isinstance(fields, dict) or not isinstance(update, dict):
        raise JiraError(400, ["'fields' and 'update' must be objects."])
    with sb.lock:
        change = sb.jira.edit_issue(find_issue(ref), fields, update, sb.jira.bot)
        deliveries = sb.plan(sb.jira_events([change] if change else []))
    sb.send(deliveries)
    return empty()


def _search_values() -> dict[str, Any]:
    return json_body() if request.method == "POST" else request.args.to_dict()


@bp.route("/search", methods=["GET", "POST"])
def search() -> Response:
    """Classic search: ``startAt``/``maxResults`` (0 returns only ``total``) and ``total``."""
    sb = sandbox()
    values = _search_values()
    start = max(0, int_arg(values, "startAt", 0))
    size = min(100, max(0, int_arg(values, "maxResults", 50)))
    validate = str(values.get("validateQuery", "strict")).lower() not in ("false", "none", "warn")
    with sb.lock:
        found = jira_search.search(sb.jira, str(values.get("jql") or ""), validate=validate)
        wanted = field_names(values if request.method == "POST" else None)
        issues = [jira_json.issue(i, sb.jira, sb.base_url, wanted) for i in found[start : start + size]]
    return reply(
        {"expand": "schema,names", "startAt": start, "maxResults": size, "total": len(found), "issues": issues}
    )


@bp.route("/search/jql", methods=["GET", "POST"])
def search_jql() -> Response:
    """Jira Cloud's enhanced search: ``nextPageToken``/``isLast``, no ``total``, only ``id`` by default."""
    sb = sandbox()
    values = _search_values()
    token = str(values.get("nextPageToken") or "0")
    if not token.isdigit():
        raise JiraError(400, ["Invalid nextPageToken."])
    start = int(token)
    size = min(5000, max(1, int_arg(values, "maxResults", 50)))
    wanted = field_names(values if request.method == "POST" else None)
    with sb.lock:
        found = jira_search.search(sb.jira, str(values.get("jql") or ""), validate=False)
        page = found[start : start + size]
        if wanted:
            issues = [jira_json.issue(i, sb.jira, sb.base_url, wanted) for i in page]
        else:
            issues = [{"id": i.id} for i in page]
    data: dict[str, Any] = {"issues": issues, "isLast": start + size >= len(found)}
    if not data["isLast"]:
        data["nextPageToken"] = str(start + size)
    return reply(data)


@bp.post("/search/approximate-count")
def approximate_count() -> Response:
    sb = sandbox()
    with sb.lock:
        return reply({"count": len(jira_search.search(sb.jira, str(json_body().get("jql") or ""), validate=False))})


@bp.get("/issue/<ref>/transitions")
def get_transitions(ref: str) -> Response:
    sb = sandbox()
    with_fields = "transitions.fields" in request.args.get("expand", "")
    only = request.args.get("transitionId")
    with sb.lock:
        issue = find_issue(ref)
        found = [t for t in sb.jira.available_transitions(issue) if only is None or t.id == only]
        data = [jira_json.transition(t, sb.jira, sb.base_url, with_fields=with_fields) for t in found]
    return reply({"expand": "transitions", "transitions": data})


@bp.post("/issue/<ref>/transitions")
def do_transition(ref: str) -> Response:
    sb = sandbox()
    body = json_body()
    transition = body.get("transition")
    transition_id = transition.get("id") if isinstance(transition, dict) else None
    if transition_id is None:
        raise JiraError(400, ["Missing 'transition' identifier"])
    fields, update = body.get("fields") or {}, body.get("update") or {}
    with sb.lock:
        changes = sb.jira.transition(find_issue(ref), str(transition_id), fields, update, sb.jira.bot)
        deliveries = sb.plan(sb.jira_events(changes))
    sb.send(deliveries)
    return empty()


def is_internal(body: dict[str, Any]) -> bool:
    """JSM's ``sd.public.comment`` property marks a comment internal."""
    for prop in body.get("properties") or []:
        if isinstance(prop, dict) and prop.get("key") == "sd.public.comment":
            value = prop.get("value")
            return isinstance(value, dict) and truthy(value.get("internal", False))
    return False


@bp.post("/issue/<ref>/comment")
def add_comment(ref: str) -> Response:
    sb = sandbox()
    body = json_body()
    visibility = body.get("visibility") if isinstance(body.get("visibility"), dict) else None
    with sb.lock:
        issue = find_issue(ref)
        added = sb.jira.add_comment(
            issue, body.get("body"), sb.jira.bot, internal=is_internal(body), visibility=visibility
        )
        data = jira_json.comment(added.comment, issue, sb.base_url)
        deliveries = sb.plan(sb.jira_events([added]))
    sb.send(deliveries)
    return reply(data, 201)


@bp.get("/issue/<ref>/comment")
def list_comments(ref: str) -> Response:
    sb = sandbox()
    args = request.args.to_dict()
    start, size = int_arg(args, "startAt", 0), int_arg(args, "maxResults", 5000)
    with sb.lock:
        issue = find_issue(ref)
        items = [jira_json.comment(c, issue, sb.base_url) for c in issue.comments]
    return reply({"startAt": start, "maxResults": size, "total": len(items), "comments": items[start : start + size]})


@hooks_bp.get("/webhook")
def list_webhooks() -> Response:
    sb = sandbox()
    with sb.lock:
        return reply([jira_json.webhook(h, sb.base_url) for h in sb.jira.webhooks.values()])


@hooks_bp.post("/webhook")
def create_webhook() -> Response:
    sb = sandbox()
    body = json_body()
    url, events = body.get("url"), body.get("events") or []
    if not isinstance(url, str) or not url:
        raise JiraError(400, errors={"url": "The URL must be specified."})
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        raise JiraError(400, errors={"events": "Events must be a list of event names."})
    filters = body.get("filters") if isinstance(body.get("filters"), dict) else {}
    query = (filters or {}).get("issue-related-events-section") or body.get("jqlFilter")
    with sb.lock:
        hook = sb.jira.add_webhook(
            name=str(body.get("name") or "webhook"),
            url=url,
            events=events,
            secret=body.get("secret"),
            jql_filter=query,
        )
        return reply(jira_json.webhook(hook, sb.base_url), 201)


@hooks_bp.delete("/webhook/<int:hook_id>")
def delete_webhook(hook_id: int) -> Response:
    sb = sandbox()
    with sb.lock:
        if sb.jira.webhooks.pop(hook_id, None) is None:
            raise JiraError(404, ["Webhook not found."])
    return empty()
