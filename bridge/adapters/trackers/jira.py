"""Jira tracker adapter (REST API v2 + Jira Software agile API 1.0).

Uses the pycontribs ``jira`` client for authentication, its session and the
calls it maps one-to-one (create issue, add comment, list transitions, add to
sprint, myself).  Plain reads and the transition POST go through the library's
session directly, because the library's helpers add requests or quirks:

* ``JIRA.search_issues`` first fetches ``/rest/api/2/field`` to translate names;
* ``JIRA.sprints(maxResults=50)`` returns only the first page;
* ``JIRA.transition_issue`` sends an extra empty ``fields`` object;
* ``JIRA.create_issue`` re-reads the new issue unless ``prefetch=False``.

Searches use the enhanced ``GET /rest/api/2/search/jql`` (``nextPageToken`` paging, no
``total``), because Jira Cloud answers 410 Gone on the classic ``/rest/api/2/search``
(CHANGE-2046).  Jira Data Center has only the classic endpoint: when ``/search/jql`` answers
404 the adapter uses ``/search`` (``startAt``/``total`` paging) and, once that has worked,
keeps using it for the instance's lifetime.

Library retries are off (``max_retries=0``): ``ResilientSession`` retries 429/503
and connection errors for every method, so a 503 after a committed create would
file the issue twice.  The worker retries instead, after ``find_issue`` (and, after an
``OutcomeUnknown`` create, only once the search index had ``search_lag_seconds`` to show the issue).

Every public method raises only ``RetryableError`` or ``PermanentError``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests
from jira import JIRA, JIRAError

from bridge.adapters.trackers.base import CapacityUnit, ChangedIssues, SprintQuery, Tracker, WebhookSetup
from bridge.adapters.trackers.http_errors import error_for_status, error_for_write
from bridge.adapters.trackers.ratelimit import TrackerRateLimit
from bridge.domain import Account, Destination, IssueRef, IssueSnapshot, NewIssue, Sprint, SprintWindow
from bridge.errors import BridgeError, OutcomeUnknown, PermanentError, RetryableError
from bridge.metrics import install_request_metrics

log = logging.getLogger(__name__)

DEFAULT_REOPEN_TRANSITIONS = ("Reopen", "Reopen Issue", "Reopened", "To Do", "Genåbn")
WEBHOOK_EVENTS = ("jira:issue_created", "jira:issue_updated", "jira:issue_deleted", "comment_created")
"""The events the bridge's Jira webhook subscribes to (CONTRACT section 5; a deleted issue sets its
ticket aside for support)."""

_SEARCH_PAGE = 100
_SEARCH_MAX_PAGES = 50
"""Bounds the requests of one ``sprint_load``; beyond 5,000 issues the load is a lower bound."""
_CHANGED_MAX_PAGES = 20
"""Bounds one ``changed_since``: 2,000 issues, the oldest changes first."""
DEFAULT_SPRINT_FIELD = "customfield_10020"
"""The Sprint custom field on most Jira Cloud sites; Data Center ids differ (see ``GET /rest/api/2/field``)."""
DEFAULT_SEARCH_LAG_SECONDS = 60.0
"""How long a new issue may take to appear in JQL search: Atlassian documents ``/search/jql`` as
eventually consistent (usually seconds behind)."""
_SPRINT_PAGE = 50
_FIND_LIMIT = 50
_SUMMARY_MAX = 255
_BLOCK_MAX = 10_000
"""Per reporter text block; Jira rejects descriptions over 32,767 characters."""
_MESSAGE_MAX = 500


@dataclass(frozen=True)
class _Myself:
    """``GET /myself``: who the bridge is, and the time zone Jira reads JQL dates in."""

    account: Account
    zone: tzinfo | None


class JiraTracker:
    """The ``Tracker`` port for Jira Cloud / Data Center."""

    name = "jira"
    sprint_on_create = False
    """The sprint is set through the agile API after the create (``ensure_in_sprint``)."""

    def __init__(
        self,
        *,
        url: str,
        user: str,
        api_token: str,
        timeout: float = 10.0,
        issue_type: str = "Bug",
        story_points_field: str | None = None,
        reopen_transitions: tuple[str, ...] = DEFAULT_REOPEN_TRANSITIONS,
        sprint_field: str = DEFAULT_SPRINT_FIELD,
        search_lag_seconds: float = DEFAULT_SEARCH_LAG_SECONDS,
        rate_limit: TrackerRateLimit | None = None,
    ) -> None:
        self.search_lag_seconds = search_lag_seconds
        self._url = url.rstrip("/")
        self._api_token = api_token
        self._issue_type = issue_type
        self._story_points_field = story_points_field
        self._reopen_transitions = reopen_transitions
        self._sprint_field = sprint_field.strip()
        # Set once by the first successful GET /myself; a race only costs one extra request.
        self._myself_cache: _Myself | None = None
        # Set (never cleared) once the classic /search worked after /search/jql answered 404,
        # i.e. on Jira Data Center.  A plain attribute write: a race only costs one extra 404.
        self._legacy_search = False
        # With get_server_info=False (and validate/check_update off, their
        # defaults) the constructor makes no request; see jira/client.py.
        self._client = JIRA(
            server=self._url,
            basic_auth=(user, api_token),
            get_server_info=False,
            max_retries=0,
            timeout=timeout,
        )
        install_request_metrics(self._client._session, self.name)
        if rate_limit is not None:  # every request waits for the shared gate and pace
            rate_limit.install(self._client._session)

    # -- Tracker protocol ---------------------------------------------------

    def find_issue(self, dest: Destination, *, tracking_id: str) -> IssueRef | None:
        phrase = '"' + _jql_escape(tracking_id) + '"'
        jql = f"project = {_jql_string(dest.project)} AND summary ~ {_jql_string(phrase)}"
        jql += " ORDER BY created ASC"
        prefix = f"[{tracking_id}]"
        what = "jira find issue"
        params = {"jql": jql, "fields": "summary", "maxResults": _FIND_LIMIT}
        with self._boundary(what):
            page = self._enhanced_search(params)
            if page is None:
                page = self._classic_search(what, params)
            for found in page.get("issues") or []:
                summary = (found.get("fields") or {}).get("summary") or ""
                if summary.startswith(prefix):
                    return self._ref(found["key"])
        return None

    def create_issue(self, dest: Destination, issue: NewIssue) -> IssueRef:
        """``POST /issue`` and nothing else: the sprint is set apart (``ensure_in_sprint``), so the
        caller can store the new key first. A 5xx or timeout after sending is ``OutcomeUnknown``."""
        fields: dict[str, Any] = {
            "project": {"key": dest.project},
            "issuetype": {"name": self._issue_type},
            "summary": _summary(issue.title),
            "description": render_description(issue),
            "labels": _labels(issue.labels),
        }
        if issue.priority:
            fields["priority"] = {"name": issue.priority}
        if issue.components:
            fields["components"] = [{"name": name} for name in dict.fromkeys(issue.components)]
        with self._boundary("jira create issue", write=True):
            # prefetch=False: otherwise the library GETs the new issue again.
            created = self._client.create_issue(fields=fields, prefetch=False)
            return self._ref(str(created.key))

    def ensure_in_sprint(self, dest: Destination, ref: IssueRef, sprint: Sprint) -> None:
        sprint_id = _numeric_id(sprint.id, "sprint")
        with self._boundary(f"jira add {ref.key} to sprint {sprint_id}"):
            self._client.add_issues_to_sprint(int(sprint_id), [ref.key])

    def sprints(self, dest: Destination, query: SprintQuery, *, today: str) -> SprintWindow:
        if dest.board_id is None:
            return SprintWindow(current=None, next=None)
        day = _parse_today(today)
        pattern = _compile(query.title_pattern)
        active: list[Sprint] = []
        future: list[Sprint] = []
        with self._boundary(f"jira list sprints of board {dest.board_id}"):
            for raw in self._board_sprints(dest.board_id):
                name = str(raw.get("name") or "")
                if pattern is not None and not pattern.search(name):
                    continue
                sprint = Sprint(
                    id=str(raw["id"]),
                    name=name,
                    start_date=_parse_date(raw.get("startDate")),
                    due_date=_parse_date(raw.get("endDate")),
                )
                state = raw.get("state")
                if state == "active":
                    active.append(sprint)
                elif state == "future":
                    future.append(sprint)
        current = next((s for s in active if _contains(s, day)), active[0] if active else None)
        return SprintWindow(current=current, next=future[0] if future else None)

    def sprint_load(self, dest: Destination, sprint: Sprint, *, label: str, unit: CapacityUnit) -> float:
        sprint_id = _numeric_id(sprint.id, "sprint")
        jql = f"sprint = {sprint_id} AND labels = {_jql_string(label)} AND statusCategory != Done"
        field = self._story_points_field
        what = f"jira sprint load of sprint {sprint_id}"
        with self._boundary(what):
            if unit == "issues" or field is None:
                # Without a story points field every issue weighs 1.
                return float(self._count(what, jql))
            total = 0.0
            for issues in self._search_pages(what, {"jql": jql, "fields": field, "maxResults": _SEARCH_PAGE}):
                for found in issues:
                    points = (found.get("fields") or {}).get(field)
                    total += float(points) if isinstance(points, int | float) else 1.0
            return total

    def components(self, dest: Destination) -> tuple[str, ...]:
        """``GET /project/{key}/components``: the names of the project's components, in Jira's order."""
        with self._boundary(f"jira list components of {dest.project}"):
            listed = self._get(self._rest(f"project/{_path(dest.project)}/components"))
            if not isinstance(listed, list):
                raise TypeError("the component list is not a JSON array")
            names = (item.get("name") for item in listed if isinstance(item, Mapping))
            return tuple(dict.fromkeys(name for name in names if isinstance(name, str) and name))

    def add_comment(self, dest: Destination, ref: IssueRef, body: str, *, reporter_text: str | None = None) -> None:
        """``body`` in wiki markup as written; ``reporter_text`` after it in a ``{noformat}`` block, so
        a reporter's ``[~accountid:...]``, ``!image!`` or ``[link|url]`` stays text."""
        if reporter_text is not None:
            body = f"{body}\n\n{_noformat_block(reporter_text)}"
        with self._boundary(f"jira comment on {ref.key}"):
            self._client.add_comment(ref.key, body)

    def reopen(self, dest: Destination, ref: IssueRef) -> None:
        with self._boundary(f"jira reopen {ref.key}"):
            status = self._get(self._rest(f"issue/{_path(ref.key)}"), {"fields": "status"})
            if status["fields"]["status"]["statusCategory"]["key"] != "done":
                return
            transitions: list[dict[str, Any]] = self._client.transitions(ref.key)
            chosen = self._pick_reopen(transitions)
            if chosen is None:
                names = ", ".join(repr(t.get("name")) for t in transitions) or "none"
                raise PermanentError(
                    f"jira reopen {ref.key}: no transition leads out of the done category (available: {names})"
                )
            self._post(self._rest(f"issue/{_path(ref.key)}/transitions"), {"transition": {"id": str(chosen["id"])}})

    def issue_state(self, dest: Destination, ref: IssueRef) -> IssueSnapshot:
        """``GET /issue/<key>`` with the fields a snapshot needs, fresh.

        The snapshot's ``key`` is the one Jira answers with: after a move to another project the
        old key still resolves, to the issue under its new key.
        """
        names = ["summary", "status", "resolution", "priority", "labels", "components", "updated"]
        if self._sprint_field:
            names.append(self._sprint_field)
        with self._boundary(f"jira read {ref.key}"):
            data = self._get(self._rest(f"issue/{_path(ref.key)}"), {"fields": ",".join(names)})
            return self._snapshot(ref, data)

    def update_labels(self, dest: Destination, ref: IssueRef, *, add: Sequence[str], remove: Sequence[str]) -> None:
        """One ``PUT /issue/<key>`` with ``update.labels`` add/remove operations (idempotent in Jira).

        Labels are cleaned as on create (no spaces); a label in both lists is removed.
        """
        removing = _labels(remove)
        adding = [label for label in _labels(add) if label not in removing]
        if not adding and not removing:
            return
        operations = [{"add": label} for label in adding] + [{"remove": label} for label in removing]
        with self._boundary(f"jira update labels of {ref.key}"):
            self._put(self._rest(f"issue/{_path(ref.key)}"), {"update": {"labels": operations}})

    def upload_attachment(
        self, dest: Destination, ref: IssueRef, *, filename: str, content_type: str, content: bytes
    ) -> None:
        """``POST /rest/api/2/issue/<key>/attachments``, multipart field ``file``, with the
        ``X-Atlassian-Token: no-check`` header Jira requires against XSRF."""
        name = filename.replace("\\", "/").rsplit("/", 1)[-1]
        name = "".join(ch for ch in name if ch.isprintable()).strip()[:200] or "attachment"
        with self._boundary(f"jira attach a file to {ref.key}"):
            self._client._session.post(
                self._rest(f"issue/{_path(ref.key)}/attachments"),
                files={"file": (name, content, content_type or "application/octet-stream")},
                # The session sends JSON by default; None drops that so requests writes the multipart type.
                headers={"Content-Type": None, "X-Atlassian-Token": "no-check"},
            )

    def redact_issue(self, dest: Destination, ref: IssueRef, text: str) -> None:
        """``PUT /issue/<key>`` setting ``fields.description``; summary, labels, sprint and comments stay."""
        with self._boundary(f"jira redact {ref.key}"):
            self._put(self._rest(f"issue/{_path(ref.key)}"), {"fields": {"description": text}})

    def probe(self) -> None:
        """One authenticated request (``GET /myself``), never cached: for readiness checks."""
        with self._boundary("jira probe (GET /myself)"):
            self._get(self._rest("myself"))

    def ensure_webhook(
        self, *, url: str, secret: str, jql: str, name: str = "bridge", dry_run: bool = False
    ) -> WebhookSetup:
        """The site's webhook to ``url``, registered once (admin webhook API, ``/rest/webhooks/1.0``):
        listed first, then the hook already pointing at ``url`` is updated (``PUT .../webhook/<id>``,
        so a changed secret or filter arrives) or a new one is created (``POST``).

        Events ``jira:issue_created``, ``jira:issue_updated``, ``jira:issue_deleted`` and
        ``comment_created``, limited to the issues matching ``jql``; Jira signs deliveries with
        ``secret`` (``X-Hub-Signature``). ``dry_run`` only lists. The secret never appears in an
        error message.
        """
        endpoint = f"{self._url}/rest/webhooks/1.0/webhook"
        body = {
            "name": name,
            "url": url,
            "events": list(WEBHOOK_EVENTS),
            "filters": {"issue-related-events-section": jql},
            "excludeBody": False,
            "secret": secret,
        }
        try:
            with self._boundary("jira list webhooks"):
                listed = self._get(endpoint)
                if not isinstance(listed, list):
                    raise TypeError("the webhook list is not a JSON array")
                same = sorted(
                    (
                        h
                        for h in listed
                        if isinstance(h, dict) and str(h.get("url") or "").rstrip("/") == url.rstrip("/")
                    ),
                    key=lambda h: int(_webhook_id(h)),
                )
            extra = max(0, len(same) - 1)
            if same:
                hook_id = _webhook_id(same[0])
                if dry_run:
                    return WebhookSetup(action="would update", hook_id=hook_id, duplicates=extra)
                with self._boundary(f"jira update webhook {hook_id}"):
                    self._put(f"{endpoint}/{hook_id}", body)
                return WebhookSetup(action="updated", hook_id=hook_id, duplicates=extra)
            if dry_run:
                return WebhookSetup(action="would create", hook_id=None)
            with self._boundary("jira create webhook"):
                created = self._client._session.post(endpoint, data=json.dumps(body)).json()
                return WebhookSetup(action="created", hook_id=_webhook_id(created))
        except RetryableError as exc:
            raise RetryableError(_without(str(exc), secret), retry_after=exc.retry_after) from None
        except PermanentError as exc:
            raise PermanentError(_without(str(exc), secret)) from None

    def account(self) -> Account:
        """``GET /myself``, once per instance: Cloud ``accountId``, else (Data Center) the user key."""
        return self._myself().account

    def changed_since(self, dest: Destination, since: datetime) -> ChangedIssues:
        """Issues of the project with ``updated >= since`` (JQL), oldest change first, at most 20 pages
        (``cut_at``: the last ``updated`` read, when there were more).

        A naive ``since`` is taken as UTC.
        """
        # JQL dates have minute resolution and Jira reads them in the searching user's time zone,
        # not UTC. So ``since`` is converted to the bridge user's zone (``timeZone`` of GET /myself,
        # cached with the account), or to UTC when Jira does not say, then floored to the minute
        # with one more minute subtracted for safety. The window can only grow: the caller dedups.
        # (Plain UTC would lose up to N hours of changes for a user N hours west of UTC.)
        aware = since if since.tzinfo is not None else since.replace(tzinfo=UTC)
        what = f"jira list issues of {dest.project} changed since {aware.astimezone(UTC).isoformat()}"
        zone = self._myself().zone or UTC
        stamp = (aware.astimezone(zone) - timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M")
        jql = f"project = {_jql_string(dest.project)} AND updated >= {_jql_string(stamp)} ORDER BY updated ASC"
        params = {"jql": jql, "fields": "summary,updated", "maxResults": _SEARCH_PAGE}
        out = ChangedIssues()
        last_change: datetime | None = None
        pages = 0
        full = False
        with self._boundary(what):
            for issues in self._search_pages(what, params, max_pages=_CHANGED_MAX_PAGES):
                pages += 1
                full = len(issues) >= _SEARCH_PAGE
                for found in issues:
                    fields = found.get("fields") or {}
                    summary = fields.get("summary")
                    out.append((self._ref(str(found["key"])), summary if isinstance(summary, str) else ""))
                    last_change = _timestamp(fields.get("updated")) or last_change
        if pages >= _CHANGED_MAX_PAGES and full:
            log.warning(
                "%s: stopped after %d pages (%d issues); issues changed later are not in this result",
                what,
                pages,
                len(out),
            )
            out.cut_at = last_change or aware
        return out

    def check(self, dest: Destination, query: SprintQuery, *, today: str) -> list[str]:
        problems: list[str] = []
        try:
            with self._boundary("jira check credentials (GET /myself)"):
                self._client.myself()
        except BridgeError as exc:
            return [str(exc)]  # nothing else can work without credentials
        try:
            with self._boundary(f"jira check project {dest.project}"):
                project = self._get(self._rest(f"project/{_path(dest.project)}"))
            types = [str(t.get("name")) for t in project.get("issueTypes") or []]
            if types and self._issue_type not in types:
                problems.append(
                    f"jira project {dest.project}: issue type {self._issue_type!r} not available "
                    f"(has: {', '.join(types)})"
                )
        except BridgeError as exc:
            problems.append(str(exc))
        if dest.board_id is None:
            return problems
        try:
            with self._boundary(f"jira check board {dest.board_id}"):
                self._get(self._agile(f"board/{dest.board_id}"))
            if self.sprints(dest, query, today=today).current is None:
                pattern = f" matching {query.title_pattern!r}" if query.title_pattern else ""
                problems.append(f"jira board {dest.board_id}: no active sprint{pattern}")
        except BridgeError as exc:
            problems.append(str(exc))
        return problems

    # -- helpers ------------------------------------------------------------

    def _ref(self, key: str) -> IssueRef:
        return IssueRef(key=key, url=f"{self._url}/browse/{key}")

    def _myself(self) -> _Myself:
        cached = self._myself_cache
        if cached is not None:
            return cached
        with self._boundary("jira read account (GET /myself)"):
            data = self._get(self._rest("myself"))
            found = _Myself(account=_account(data), zone=_zone(data.get("timeZone")))
        self._myself_cache = found
        return found

    def _snapshot(self, ref: IssueRef, data: Mapping[str, Any]) -> IssueSnapshot:
        fields = data["fields"]
        status = fields["status"]
        category = status["statusCategory"]["key"]
        if not isinstance(category, str):
            raise TypeError(f"status category {category!r}")
        summary = fields.get("summary")
        return IssueSnapshot(
            key=str(data.get("key") or ref.key),
            title=summary if isinstance(summary, str) else "",
            open=category != "done",
            labels=tuple(str(label) for label in fields.get("labels") or ()),
            status_id=_text(status.get("id")),
            status_name=_text(status.get("name")),
            status_category=category,
            resolution=_name(fields.get("resolution")),
            priority=_name(fields.get("priority")),
            sprint_id=_open_sprint_id(fields.get(self._sprint_field)) if self._sprint_field else None,
            updated_at=_timestamp(fields.get("updated")),
            components=tuple(name for item in fields.get("components") or () if (name := _name(item))),
        )

    def _rest(self, path: str) -> str:
        return f"{self._url}/rest/api/2/{path}"

    def _agile(self, path: str) -> str:
        return f"{self._url}/rest/agile/1.0/{path}"

    def _get(self, url: str, params: Mapping[str, Any] | None = None) -> Any:
        # ResilientSession raises JIRAError for any non-2xx response.
        return self._client._session.get(url, params=params).json()

    def _post(self, url: str, body: Mapping[str, Any]) -> None:
        self._client._session.post(url, data=json.dumps(body))

    def _put(self, url: str, body: Mapping[str, Any]) -> None:
        self._client._session.put(url, data=json.dumps(body))

    def _count(self, what: str, jql: str) -> int:
        """Issues matching ``jql``: counted page by page (enhanced search has no ``total``)."""
        params = {"jql": jql, "fields": "id", "maxResults": _SEARCH_PAGE}
        first = self._enhanced_search(params)
        if first is None:
            return int(self._classic_search(what, {"jql": jql, "maxResults": 0})["total"])
        return sum(len(issues) for issues in self._enhanced_pages(params, first))

    def _search_pages(
        self, what: str, params: Mapping[str, Any], *, max_pages: int = _SEARCH_MAX_PAGES
    ) -> Iterator[list[dict[str, Any]]]:
        """The issues matching ``params["jql"]``, page by page, from whichever search API exists."""
        first = self._enhanced_search(params)
        if first is not None:
            yield from self._enhanced_pages(params, first, max_pages=max_pages)
            return
        start = 0
        for _ in range(max_pages):
            page = self._classic_search(what, {**params, "startAt": start})
            issues = page.get("issues") or []
            yield issues
            start += len(issues)
            if not issues or start >= int(page.get("total", 0)):
                return

    def _enhanced_pages(
        self, params: Mapping[str, Any], page: Any, *, max_pages: int = _SEARCH_MAX_PAGES
    ) -> Iterator[list[dict[str, Any]]]:
        """``page`` and the ones after it, following ``nextPageToken`` until ``isLast``."""
        for fetched in range(1, max_pages + 1):
            yield page.get("issues") or []
            token = page.get("nextPageToken")
            if page.get("isLast") is True or not token or fetched == max_pages:
                return
            page = self._get(self._rest("search/jql"), {**params, "nextPageToken": token})

    def _enhanced_search(self, params: Mapping[str, Any]) -> Any:
        """One page of ``GET /search/jql``, or None when the server has no such endpoint (Data Center)."""
        if self._legacy_search:
            return None
        try:
            return self._get(self._rest("search/jql"), params)
        except JIRAError as exc:
            if exc.status_code == 404:
                return None
            raise

    def _classic_search(self, what: str, params: Mapping[str, Any]) -> Any:
        """One page of the classic ``GET /search``, which only Jira Data Center / Server still has."""
        try:
            page = self._get(self._rest("search"), params)
        except JIRAError as exc:
            if exc.status_code == 410:
                raise PermanentError(
                    f"{self._from_jira_error(exc, what)} (the classic search /rest/api/2/search is gone, "
                    "as on Jira Cloud since CHANGE-2046, yet /rest/api/2/search/jql answered 404: "
                    "check that the Jira URL is the site's base URL)"
                ) from None
            raise
        self._legacy_search = True
        return page

    def _board_sprints(self, board_id: int) -> Iterator[dict[str, Any]]:
        """Active and future sprints in board order, following ``startAt``/``isLast``."""
        start = 0
        while True:
            page = self._get(
                self._agile(f"board/{board_id}/sprint"),
                {"state": "active,future", "startAt": start, "maxResults": _SPRINT_PAGE},
            )
            values = page.get("values") or []
            yield from values
            start += len(values)
            if page.get("isLast", True) or not values:
                return

    def _pick_reopen(self, transitions: list[dict[str, Any]]) -> dict[str, Any] | None:
        candidates: list[dict[str, Any]] = [t for t in transitions if t["to"]["statusCategory"]["key"] != "done"]
        by_name: dict[str, dict[str, Any]] = {str(t.get("name", "")).casefold(): t for t in reversed(candidates)}
        for preferred in self._reopen_transitions:
            if preferred.casefold() in by_name:
                return by_name[preferred.casefold()]
        return candidates[0] if candidates else None

    @contextmanager
    def _boundary(self, what: str, *, write: bool = False) -> Iterator[None]:
        """Translate library, HTTP and payload failures into the bridge's two error types.

        ``write``: the request is not safe to repeat, so a failure after it was sent (a timeout
        waiting for the answer, a dropped connection, a 500/502/504) is ``OutcomeUnknown``.
        """
        try:
            yield
        except BridgeError:
            raise
        except JIRAError as exc:
            # Never chain: str(JIRAError) dumps request/response headers.
            raise self._from_jira_error(exc, what, write=write) from None
        except (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            message = self._redact(f"{what}: {type(exc).__name__}: {exc}")
            if write and not isinstance(exc, requests.exceptions.ConnectTimeout):
                raise OutcomeUnknown(message) from None
            raise RetryableError(message) from None
        except requests.RequestException as exc:  # incl. a 2xx body that is not JSON
            raise PermanentError(self._redact(f"{what}: {type(exc).__name__}: {exc}")) from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            detail = f"{type(exc).__name__}: {exc}"
            raise PermanentError(f"{what}: unexpected response from Jira ({detail})") from exc

    def _from_jira_error(self, exc: JIRAError, what: str, *, write: bool = False) -> BridgeError:
        status = exc.status_code if isinstance(exc.status_code, int) else None
        response = exc.response
        message = _error_text(response) or (exc.text or "").strip()
        if not message and response is not None:
            message = str(response.reason or "")
        message = self._redact(message[:_MESSAGE_MAX])
        if status is None:
            return PermanentError(f"{what}: {message or 'unexpected error from the Jira client'}")
        headers = dict(response.headers) if response is not None else {}
        return (error_for_write if write else error_for_status)(status, message, headers, what=what)

    def _redact(self, text: str) -> str:
        return text.replace(self._api_token, "***") if self._api_token else text


# -- description ------------------------------------------------------------

_NOFORMAT_TAG = re.compile(r"\{noformat(?::[^}]*)?\}", re.IGNORECASE)
_WIKI_SPECIAL = re.compile(r"([\\*_{}\[\]|^~+\-?!#])")


def render_description(issue: NewIssue) -> str:
    """The issue description in Jira wiki markup.

    Everything the reporter typed goes into ``{noformat}`` blocks, so it can
    neither format the issue nor mention (``[~accountid:...]``) anyone.
    """
    report = issue.report
    cls = issue.classification
    out: list[str] = ["h3. Problem", _noformat_block(report.description)]
    if report.impact:
        out += ["", "h3. Impact", _noformat_block(report.impact)]

    details = [
        ("Declared priority", report.declared_priority),
        ("Product", report.product),
        ("Organisation", report.organization),
        ("Reporter", issue.reporter_name),
        ("Reporter email", issue.reporter_email),
    ]
    rows = [f"||{label}|{_noformat_cell(value)}|" for label, value in details if value]
    if rows:
        out += ["", "h3. Report", *rows]

    if report.environment:
        out += ["", "h3. Environment", "||Key||Value||"]
        out += [
            f"|{_noformat_cell(str(key))}|{_noformat_cell(_env_value(value))}|"
            for key, value in report.environment.items()
        ]

    if report.attachments:
        out += ["", "h3. Attachments", "||File||Type||Link||"]
        for att in report.attachments:
            link = _safe_url(att.url)
            out.append(
                f"|{_noformat_cell(att.filename)}|{_noformat_cell(att.content_type or '-')}"
                f"|{f'[open|{link}]' if link else '(no link)'}|"
            )

    rules = ", ".join(_plain(rule) for rule in cls.rules) or "none"
    out += [
        "",
        "h3. Classification",
        f"* Severity: {_plain(cls.severity.value)}",
        f"* Kind: {_plain(cls.kind.value)}",
        f"* Product-owner review: {'yes' if cls.po_review else 'no'}",
        f"* Rules: {rules}",
        *_category_lines(issue),
        "",
        "h3. Planned sprint",
        _sprint_line(issue.sprint),
        "",
        f"Source channel: {_plain(report.channel.value)}",
        "",
        "----",
        f"Tracking ID: {issue.tracking_id}",
    ]
    return "\n".join(out)


def _category_lines(issue: NewIssue) -> list[str]:
    """The category and the rule that fired, beside the severity (the rule may quote a reporter's
    ``product``: escaped like every rule)."""
    if not issue.category:
        return []
    why = f" ({_plain(issue.category_rule)})" if issue.category_rule else ""
    return [f"* Category: {_plain(issue.category)}{why}"]


def _strip_noformat(text: str) -> str:
    """Remove every ``{noformat}`` tag, including ones formed by removing others."""
    while True:
        stripped = _NOFORMAT_TAG.sub("", text)
        if stripped == text:
            return text
        text = stripped


def _noformat_block(text: str | None) -> str:
    body = _strip_noformat(text or "").strip("\n")
    if len(body) > _BLOCK_MAX:
        body = body[:_BLOCK_MAX] + "\n[... truncated by the bridge]"
    return "{noformat}\n" + (body or "(empty)") + "\n{noformat}"


def _noformat_cell(text: str) -> str:
    """A single-line ``{noformat}`` for a table cell.

    Newlines would end the table row and ``|`` the cell, so both are replaced.
    """
    line = " ".join(_strip_noformat(text).split()).replace("|", "¦")
    return "{noformat}" + (line[:_BLOCK_MAX] or "-") + "{noformat}"


def _plain(text: str) -> str:
    """Backslash-escape wiki markup in our own short strings (rule and sprint names)."""
    return _WIKI_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def _env_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _safe_url(url: str | None) -> str | None:
    """An http(s) URL that cannot break out of ``[text|url]``, or None."""
    if not url or urlsplit(url.strip()).scheme.lower() not in {"http", "https"}:
        return None
    return quote(url.strip(), safe=":/?#@!$&'()*+,;=%-._~")


def _sprint_line(sprint: Sprint | None) -> str:
    if sprint is None:
        return "Needs planning: no sprint chosen."
    dates = ""
    if sprint.start_date or sprint.due_date:
        start = sprint.start_date.isoformat() if sprint.start_date else "?"
        due = sprint.due_date.isoformat() if sprint.due_date else "?"
        dates = f" ({start} to {due})"
    return f"{_plain(sprint.name)}{dates}"


# -- small pure helpers -------------------------------------------------------


def _webhook_id(hook: Mapping[str, Any]) -> str:
    """A registered webhook's id: the last segment of its ``self`` URL (``.../webhook/12``)."""
    ident = str(hook.get("self") or "").rstrip("/").rsplit("/", 1)[-1]
    if not ident.isdigit():
        raise ValueError("webhook without a numeric id in its self URL")
    return ident


def _without(text: str, secret: str) -> str:
    return text.replace(secret, "[secret]") if secret else text


def _jql_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _jql_string(value: str) -> str:
    """A JQL string literal."""
    return '"' + _jql_escape(value) + '"'


def _path(segment: str) -> str:
    return quote(segment, safe="")


def _summary(title: str) -> str:
    """Jira rejects summaries with line breaks or over 255 characters."""
    return " ".join(title.split())[:_SUMMARY_MAX]


def _labels(labels: Iterable[str]) -> list[str]:
    """Jira labels may not contain spaces."""
    cleaned = (re.sub(r"\s+", "-", label.strip()) for label in labels)
    return list(dict.fromkeys(label for label in cleaned if label))


def _numeric_id(value: str, what: str) -> str:
    if not value.isdigit():
        raise PermanentError(f"jira {what} id must be numeric, got {value!r}")
    return value


def _parse_today(today: str) -> date:
    try:
        return date.fromisoformat(today)
    except ValueError:
        raise PermanentError(f"today must be an ISO date, got {today!r}") from None


def _compile(pattern: str | None) -> re.Pattern[str] | None:
    if not pattern:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise PermanentError(f"invalid sprint title pattern {pattern!r}: {exc}") from None


def _parse_date(value: Any) -> date | None:
    """The calendar date of a Jira timestamp (``2024-06-03T08:00:00.000+02:00``), as written."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


# Older Jira Server / Data Center versions serialise sprints as Java toString() strings:
# ``com.atlassian.greenhopper.service.sprint.Sprint@1a2b[id=5,rapidViewId=1,state=ACTIVE,name=Sprint 5,...]``.
# ``[`` or ``,`` before the key keeps ``rapidViewId=`` from matching ``id=``; id and state come before
# the name, so the first match is never inside a sprint name.
_LEGACY_SPRINT_ID = re.compile(r"[\[,]id=(\d+)")
_LEGACY_SPRINT_STATE = re.compile(r"[\[,]state=([A-Za-z_]+)")


def _sprint_id_and_state(item: Any) -> tuple[str, str] | None:
    """``(id, lower-case state)`` of one Sprint field entry (object or legacy string), or None."""
    if isinstance(item, Mapping):
        sprint_id, state = item.get("id"), item.get("state")
        if isinstance(sprint_id, bool) or not isinstance(sprint_id, int | str) or not isinstance(state, str):
            return None
        return str(sprint_id), state.lower()
    if isinstance(item, str):
        id_match, state_match = _LEGACY_SPRINT_ID.search(item), _LEGACY_SPRINT_STATE.search(item)
        if id_match is None or state_match is None:
            return None
        return id_match.group(1), state_match.group(1).lower()
    return None


def _open_sprint_id(value: Any) -> str | None:
    """The id of the active sprint in a Sprint field value, else of the first future one, else None.

    The field holds every sprint the issue has been in (closed ones included): a list of
    ``{"id", "name", "state", ...}`` objects on current Jira, of legacy strings on old servers.
    """
    items = value if isinstance(value, list) else [value]
    future: str | None = None
    for item in items:
        parsed = _sprint_id_and_state(item)
        if parsed is None:
            continue
        sprint_id, state = parsed
        if state == "active":
            return sprint_id
        if state == "future" and future is None:
            future = sprint_id
    return future


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _name(value: Any) -> str | None:
    """The ``name`` of a Jira object field such as ``resolution`` or ``priority`` (null when unset)."""
    if isinstance(value, Mapping):
        return _text(value.get("name"))
    return value if isinstance(value, str) else None


def _timestamp(value: Any) -> datetime | None:
    """A Jira timestamp (``2017-11-16T18:28:14.672+0800``, offset without colon) as an aware datetime."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)  # Python 3.11+ reads "+0800" as well as "+08:00"
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _account(data: Mapping[str, Any]) -> Account:
    """Cloud: ``accountId``; Data Center has none, so its user ``key`` (or ``name``) is the id."""
    ident = data.get("accountId") or data.get("key") or data.get("name")
    if not isinstance(ident, str | int) or isinstance(ident, bool) or not str(ident):
        raise ValueError("GET /myself has no accountId, key or name")
    username = data.get("name") or data.get("emailAddress")
    return Account(id=str(ident), username=username if isinstance(username, str) else None)


def _zone(name: Any) -> tzinfo | None:
    """The user's ``timeZone`` (an IANA name), or None when absent or unknown here."""
    if not isinstance(name, str) or not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _contains(sprint: Sprint, day: date) -> bool:
    return sprint.start_date is not None and sprint.due_date is not None and sprint.start_date <= day <= sprint.due_date


def _error_text(response: requests.Response | None) -> str:
    """Jira's ``errorMessages`` and ``errors`` (with field names), joined."""
    if response is None:
        return ""
    try:
        body = response.json()
    except ValueError:
        return " ".join(response.text.split())[:_MESSAGE_MAX] if response.text else ""
    if not isinstance(body, dict):
        return ""
    parts = [str(m) for m in body.get("errorMessages") or [] if m]
    errors = body.get("errors")
    if isinstance(errors, dict):
        parts += [f"{field}: {msg}" for field, msg in errors.items()]
    for key in ("message", "errorMessage"):
        if not parts and body.get(key):
            parts.append(str(body[key]))
    return "; ".join(parts)


if TYPE_CHECKING:
    _protocol_check: Tracker = JiraTracker(url="", user="", api_token="")
