"""GitLab adapter: the ``Tracker`` port over the REST API v4, through python-gitlab.

Two rules shape this module:

* **No client-library retries.** Every call passes ``obey_rate_limit=False, max_retries=0,
  retry_transient_errors=False``: python-gitlab would otherwise sleep on a 429 and, with transient
  retries on, re-send the POST that creates an issue after a 502 (a duplicate issue). Retrying is
  the worker's job; this adapter reports the failure once, typed.
* **Errors typed at the boundary.** Every public method raises only ``RetryableError`` or
  ``PermanentError``. python-gitlab exceptions carry no response headers, so a ``requests``
  response hook keeps the last response of each thread to read ``Retry-After`` /
  ``RateLimit-Reset`` from it.

The issue description is rendered by the pure function ``render_description``. Everything that
came from a reporter goes through ``quote_untrusted`` (blockquote) or ``inline_untrusted`` (one
line) so it can neither run GitLab quick actions, nor @-mention anyone, nor escape its section.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import parse_qs, quote, urlsplit

import gitlab
import gitlab.exceptions
import requests

from bridge.adapters.trackers.base import CapacityUnit, ChangedIssues, SprintQuery, Tracker, WebhookSetup
from bridge.adapters.trackers.http_errors import error_for_status, error_for_write
from bridge.adapters.trackers.ratelimit import TrackerRateLimit
from bridge.domain import Account, Destination, IssueRef, IssueSnapshot, NewIssue, Sprint, SprintWindow
from bridge.errors import BridgeError, OutcomeUnknown, PermanentError, RetryableError
from bridge.metrics import install_request_metrics

__all__ = [
    "NO_LIBRARY_RETRIES",
    "GitLabTracker",
    "inert_comment",
    "inline_untrusted",
    "issue_title",
    "quote_untrusted",
    "render_description",
    "select_sprints",
]

_T = TypeVar("_T")

log = logging.getLogger(__name__)

NO_LIBRARY_RETRIES: Final[Mapping[str, Any]] = {
    "obey_rate_limit": False,
    "max_retries": 0,
    "retry_transient_errors": False,
}
"""Keyword arguments passed to every python-gitlab call: fail fast, let the worker retry."""

_PER_PAGE: Final = 100
_CHANGED_MAX_PAGES: Final = 20
"""Bounds one ``changed_since``: 2,000 issues, the oldest changes first."""
_MAX_ERROR_MESSAGE: Final = 500

# -- rendering -------------------------------------------------------------------------------------

ZWJ: Final = "\u200d"
"""Zero-width joiner put after every ``@`` of untrusted text: ``@all`` stops being a mention."""

GITLAB_MAX_DESCRIPTION: Final = 1_048_576
_MAX_DESCRIPTION_CHARS: Final = 100_000
_MAX_IMPACT_CHARS: Final = 20_000
_MAX_CELL_CHARS: Final = 500
_MAX_ROWS: Final = 50
_MAX_URL_CHARS: Final = 1_000

_TRACKING_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
_INLINE_SPECIALS = re.compile(r"([\\`*_\[\]|~])")
# Characters kept as they are in attachment URLs; everything else (spaces, parentheses, quotes,
# angle brackets, ``@``) is percent-encoded so the Markdown link cannot be broken or abused.
_URL_SAFE: Final = ":/?#!$&*+,;=%~-._"


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n… (truncated, {len(text) - limit} more characters)"


# GitLab reference sigils: ``#1`` issue, ``!1`` merge request, ``&1`` epic, ``%1`` milestone,
# ``~bug`` label, ``$1`` snippet (also ``group/project#1``). A reference in an issue's title or
# description links the issues and adds a "mentioned in" note to the other one.
_REFERENCE = re.compile(r"([#!&%~$])(?=[\w\"])")
_MAX_TITLE_CHARS: Final = 255
"""GitLab rejects longer titles."""


def _neutralise(text: str) -> str:
    """Break references and ``@`` mentions, HTML-escape; safe to place anywhere in Markdown."""
    text = _REFERENCE.sub(r"\1" + ZWJ, text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("@", "@" + ZWJ)


def issue_title(issue: NewIssue) -> str:
    """``[<tracking ID>] <reporter's title>``: the reporter's part on one line and inert like the
    description (GitLab treats mentions and references in a title as it does in a description)."""
    prefix = f"[{issue.tracking_id}] "
    title = _neutralise(" ".join(issue.report.title.split()))
    title = title[: _MAX_TITLE_CHARS - len(prefix)].rstrip()
    return prefix + (title or "(no title)")


def quote_untrusted(text: str, *, limit: int = _MAX_DESCRIPTION_CHARS) -> str:
    """Untrusted multi-line text as a Markdown blockquote that is inert in GitLab.

    Every line starts with ``>`` (a quick action must start its line with ``/``), HTML and
    entities are escaped (no ``<!--`` swallowing the rest, no ``&#64;``), ``@`` is followed by a
    zero-width joiner (no mention), and every kind of line break is split on so nothing can
    start a line outside the quote. Markdown inside the quote still renders.
    """
    lines = _neutralise(_truncate(text, limit)).splitlines() or [""]
    return "\n".join(f"> {line}" if line.strip() else ">" for line in lines)


def inline_untrusted(value: object, *, limit: int = _MAX_CELL_CHARS) -> str:
    """Untrusted text as a single inert line, safe in a table cell, list item or link text."""
    if value is None:
        return "—"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[:limit] + "…"
    return _INLINE_SPECIALS.sub(r"\\\1", _neutralise(text)) or "—"


def inert_comment(body: str) -> str:
    """A note body that cannot run quick actions or @-mention anyone, otherwise unchanged.

    The pipeline puts reporter text (e.g. an email reply) into comments, and the bridge never
    means a comment to act: a line starting with ``/`` gets a zero-width joiner in front of it
    (GitLab only runs ``/cmd`` at the very start of a line) and every ``@`` gets one after it.
    Markdown and HTML are left alone, so the comment reads as written.
    """
    lines = body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    lines = [ZWJ + line if line.lstrip().startswith("/") else line for line in lines]
    return "\n".join(lines).replace("@", "@" + ZWJ)


def _link(label: str, url: str | None) -> str:
    text = inline_untrusted(label, limit=200)
    if not url:
        return text
    url = url.strip()
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        scheme = ""
    if scheme not in ("http", "https") or len(url) > _MAX_URL_CHARS:
        return f"{text} ({inline_untrusted(url, limit=200)})"
    return f"[{text}]({quote(url, safe=_URL_SAFE)})"


def _table(header: tuple[str, str], rows: Iterable[tuple[str, str]]) -> str:
    out = [f"| {header[0]} | {header[1]} |", "| --- | --- |"]
    out.extend(f"| {k} | {v} |" for k, v in rows)
    return "\n".join(out)


def _sprint_text(sprint: Sprint | None) -> str:
    if sprint is None:
        return "Needs planning: no sprint was chosen."
    name = inline_untrusted(sprint.name, limit=200)
    if sprint.start_date and sprint.due_date:
        return f"{name} ({sprint.start_date.isoformat()} to {sprint.due_date.isoformat()})"
    if sprint.due_date:
        return f"{name} (due {sprint.due_date.isoformat()})"
    return name


def render_description(issue: NewIssue) -> str:
    """The Markdown description of a new GitLab issue.

    Raises ``ValueError`` when the tracking ID is not a plain identifier (it goes unescaped into
    the footer and the hidden marker).
    """
    tid = issue.tracking_id
    if not _TRACKING_ID.fullmatch(tid):
        raise ValueError(f"tracking ID {tid!r} is not a plain identifier")
    report = issue.report
    cls = issue.classification

    reporter = inline_untrusted(issue.reporter_name) if issue.reporter_name else ""
    if issue.reporter_email:
        email = inline_untrusted(issue.reporter_email, limit=254)
        reporter = f"{reporter} ({email})" if reporter else email

    details = [
        ("Declared priority", inline_untrusted(report.declared_priority)),
        ("Product", inline_untrusted(report.product)),
        ("Organisation", inline_untrusted(report.organization)),
        ("Reporter", reporter or "—"),
        ("Source channel", report.channel.value),
    ]

    env_items = list(report.environment.items())
    if env_items:
        rows = [(inline_untrusted(str(k), limit=100), inline_untrusted(v)) for k, v in env_items[:_MAX_ROWS]]
        if len(env_items) > _MAX_ROWS:
            rows.append(("…", f"{len(env_items) - _MAX_ROWS} more entries omitted"))
        environment = _table(("Key", "Value"), rows)
    else:
        environment = "_None given._"

    if report.attachments:
        items = [f"- {_link(a.filename, a.url)}" for a in report.attachments[:_MAX_ROWS]]
        if len(report.attachments) > _MAX_ROWS:
            items.append(f"- … {len(report.attachments) - _MAX_ROWS} more attachments omitted")
        attachments = "\n".join(items)
    else:
        attachments = "_None._"

    rules = ", ".join(inline_untrusted(r, limit=100) for r in cls.rules) or "none"
    category = []
    if issue.category:
        why = f" ({inline_untrusted(issue.category_rule, limit=200)})" if issue.category_rule else ""
        category = [f"- Category: **{inline_untrusted(issue.category, limit=100)}**{why}"]
    impact = quote_untrusted(report.impact, limit=_MAX_IMPACT_CHARS) if report.impact else "_Not given._"
    description = quote_untrusted(report.description) if report.description.strip() else "_Empty._"

    sections = [
        "### Description",
        description,
        "### Impact",
        impact,
        "### Details",
        _table(("Field", "Value"), details),
        "### Environment",
        environment,
        "### Attachments",
        attachments,
        "### Classification",
        "\n".join(
            [
                f"- Severity: **{cls.severity.value}**",
                f"- Kind: {cls.kind.value}",
                f"- Product-owner review: {'yes' if cls.po_review else 'no'}",
                f"- Rules fired: {rules}",
                *category,
            ]
        ),
        "### Planned sprint",
        _sprint_text(issue.sprint),
        "---",
        f"Tracking ID: {tid}\n<!-- bridge:tracking-id={tid} -->",
    ]
    return "\n\n".join(sections) + "\n"


# -- sprint selection ------------------------------------------------------------------------------


def select_sprints(milestones: Iterable[Sprint], *, today: date, title_pattern: str | None) -> SprintWindow:
    """Pick the current and next sprint among active milestones.

    Current: both dates set and ``start_date <= today <= due_date`` (earliest due date wins).
    Next: the earliest ``start_date`` after the current's due date, or after today if there is
    no current sprint. Raises ``re.error`` on an invalid ``title_pattern``.
    """
    pattern = re.compile(title_pattern) if title_pattern else None
    pool = [m for m in milestones if pattern is None or pattern.search(m.name)]

    def order(m: Sprint) -> tuple[date, date, str]:
        return (m.due_date or date.max, m.start_date or date.max, m.id)

    current_candidates = [
        m for m in pool if m.start_date is not None and m.due_date is not None and m.start_date <= today <= m.due_date
    ]
    current = min(current_candidates, key=order, default=None)
    after = current.due_date if current is not None and current.due_date is not None else today
    next_candidates = [m for m in pool if m.start_date is not None and m.start_date > after]
    nxt = min(next_candidates, key=lambda m: (m.start_date or date.max, *order(m)), default=None)
    return SprintWindow(current=current, next=nxt)


# -- adapter ---------------------------------------------------------------------------------------


def _date_or_none(value: object) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _format_message(raw: object) -> str:
    """GitLab's error message (a string, or a dict of field -> messages on validation errors)."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if isinstance(raw, Mapping):
        parts = []
        for key, value in raw.items():
            if isinstance(value, list | tuple):
                value = ", ".join(str(v) for v in value)
            parts.append(f"{key} {value}")
        text = "; ".join(parts)
    elif isinstance(raw, list | tuple):
        text = ", ".join(str(v) for v in raw)
    else:
        text = str(raw)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR_MESSAGE else text[:_MAX_ERROR_MESSAGE] + "…"


def _upload_name(filename: str) -> str:
    """A file name GitLab keeps readable: no path, no control characters, never empty."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[:200] or "attachment"


def _without(text: str, secret: str) -> str:
    return text.replace(secret, "[secret]") if secret else text


def _iid(ref: IssueRef) -> int:
    try:
        return int(ref.key)
    except ValueError:
        raise PermanentError(f"gitlab: issue key {ref.key!r} is not a GitLab issue iid") from None


def _timestamp(value: object) -> datetime | None:
    """An ISO 8601 timestamp (``2016-01-04T15:31:51.081Z``) as an aware datetime; None if absent or odd."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _utc_iso(moment: datetime) -> str:
    """``moment`` in UTC, floored to the second, as GitLab's ISO 8601 (a naive datetime is taken as UTC)."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _label_name(value: object) -> str:
    """A label as REST gives it (a string), or its name from a label object (``with_labels_details``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("name"), str):
        return str(value["name"])
    raise TypeError(f"label {value!r}")


def _label_list(labels: Iterable[str]) -> list[str]:
    """Labels for a comma-separated parameter: stripped, de-duplicated, never empty or containing a comma."""
    out: list[str] = []
    for label in labels:
        label = label.strip()
        if "," in label:
            raise PermanentError(f"gitlab: label {label!r} contains a comma (GitLab label names cannot)")
        if label and label not in out:
            out.append(label)
    return out


def _next_page(response: requests.Response, current: int) -> int | None:
    """The page after ``current`` from ``X-Next-Page`` (empty on the last page) or the ``Link: rel=next`` URL."""
    raw = (response.headers.get("X-Next-Page") or "").strip()
    if not raw:
        next_url = response.links.get("next", {}).get("url")
        raw = parse_qs(urlsplit(next_url).query).get("page", [""])[0] if next_url else ""
    try:
        page = int(raw)
    except ValueError:
        return None
    return page if page > current else None


def _snapshot(data: Mapping[str, Any]) -> IssueSnapshot:
    """An ``IssueSnapshot`` from ``GET /projects/:id/issues/:iid``."""
    iid = data["iid"]
    title = data["title"]
    state = data["state"]
    if isinstance(iid, bool) or not isinstance(iid, int | str):
        raise TypeError(f"issue iid {iid!r}")
    if not isinstance(title, str) or not isinstance(state, str):
        raise TypeError("issue title or state is not a string")
    milestone = data.get("milestone")
    milestone_id = milestone.get("id") if isinstance(milestone, Mapping) else None
    return IssueSnapshot(
        key=str(int(iid)),
        title=title,
        open=state == "opened",
        labels=tuple(_label_name(label) for label in data.get("labels") or ()),
        sprint_id=None if milestone_id is None else str(milestone_id),
        updated_at=_timestamp(data.get("updated_at")),
    )


def _milestone_id(sprint: Sprint) -> int:
    try:
        return int(sprint.id)
    except ValueError:
        raise PermanentError(f"gitlab: sprint id {sprint.id!r} is not a GitLab milestone id") from None


class GitLabTracker:
    """The ``Tracker`` port for GitLab (REST API v4). Thread-safe for error reporting.

    No network call happens at construction. ``session`` (optional) is used for every request;
    a response hook is added to it to capture rate-limit headers.
    """

    name = "gitlab"
    sprint_on_create = True
    """The milestone is part of the create request."""
    search_lag_seconds = 0.0
    """The issues API searches the database: a new issue is found at once."""

    def __init__(
        self,
        *,
        url: str,
        token: str,
        timeout: float = 10.0,
        session: requests.Session | None = None,
        rate_limit: TrackerRateLimit | None = None,
    ) -> None:
        self._token = token
        self._local = threading.local()
        # Set once by ``account()``; a race between threads only costs one extra GET /user.
        self._account: Account | None = None
        self._session = session if session is not None else requests.Session()
        self._session.hooks["response"].append(self._remember_response)
        install_request_metrics(self._session, self.name)
        if rate_limit is not None:  # every request waits for the shared gate and pace
            rate_limit.install(self._session)
        self._gl = gitlab.Gitlab(
            url,
            private_token=token,
            timeout=timeout,
            retry_transient_errors=False,
            session=self._session,
        )

    def __repr__(self) -> str:  # never show the token
        return f"GitLabTracker(url={self._gl.url!r})"

    # -- Tracker methods ---------------------------------------------------------------------------

    def find_issue(self, dest: Destination, *, tracking_id: str) -> IssueRef | None:
        prefix = f"[{tracking_id}]"

        def run() -> IssueRef | None:
            items = self._project(dest).issues.list(
                search=tracking_id,
                scope="all",
                get_all=True,
                per_page=_PER_PAGE,
                **{"in": "title"},
                **NO_LIBRARY_RETRIES,
            )
            found = [
                data
                for data in (item.asdict() for item in items)
                if isinstance(data.get("title"), str) and data["title"].startswith(prefix)
            ]
            if not found:
                return None
            return self._issue_ref(min(found, key=lambda d: int(d["iid"])))

        return self._call("find issue", run)

    def create_issue(self, dest: Destination, issue: NewIssue) -> IssueRef:
        """One ``POST``, with the milestone: the issue is in its sprint as soon as it exists. A 5xx
        or timeout after sending is ``OutcomeUnknown``."""
        try:
            description = render_description(issue)
        except ValueError as exc:
            raise PermanentError(f"gitlab create issue: {exc}") from None
        data: dict[str, Any] = {"title": issue_title(issue), "description": description}
        labels = [label for label in dict.fromkeys(issue.labels) if label]
        if labels:
            data["labels"] = ",".join(labels)
        if issue.sprint is not None:
            data["milestone_id"] = _milestone_id(issue.sprint)

        def run() -> IssueRef:
            created = self._project(dest).issues.create(data, **NO_LIBRARY_RETRIES)
            return self._issue_ref(created.asdict())

        return self._call("create issue", run, write=True)

    def ensure_in_sprint(self, dest: Destination, ref: IssueRef, sprint: Sprint) -> None:
        iid = _iid(ref)
        target = _milestone_id(sprint)

        def run() -> None:
            issues = self._project(dest).issues
            data = issues.get(iid, **NO_LIBRARY_RETRIES).asdict()
            milestone = data.get("milestone")
            current = milestone.get("id") if isinstance(milestone, dict) else None
            if current is not None and str(current) == str(target):
                return
            issues.update(iid, {"milestone_id": target}, **NO_LIBRARY_RETRIES)

        self._call("set milestone", run)

    def sprints(self, dest: Destination, query: SprintQuery, *, today: str) -> SprintWindow:
        try:
            day = date.fromisoformat(today)
        except ValueError:
            raise PermanentError(f"gitlab sprints: today {today!r} is not an ISO date") from None

        def run() -> list[Sprint]:
            filters: dict[str, Any] = {"state": "active"}
            if query.include_group_milestones:
                filters["include_ancestors"] = "true"
            items = self._project(dest).milestones.list(
                get_all=True, per_page=_PER_PAGE, **filters, **NO_LIBRARY_RETRIES
            )
            out = []
            for item in items:
                data = item.asdict()
                out.append(
                    Sprint(
                        id=str(int(data["id"])),
                        name=str(data["title"]),
                        start_date=_date_or_none(data.get("start_date")),
                        due_date=_date_or_none(data.get("due_date")),
                    )
                )
            return out

        milestones = self._call("list milestones", run)
        try:
            return select_sprints(milestones, today=day, title_pattern=query.title_pattern)
        except re.error as exc:
            raise PermanentError(f"gitlab sprints: invalid title pattern {query.title_pattern!r}: {exc}") from None

    def sprint_load(self, dest: Destination, sprint: Sprint, *, label: str, unit: CapacityUnit) -> float:
        if unit not in ("issues", "weight"):
            raise PermanentError(f"gitlab sprint load: unknown capacity unit {unit!r}")
        filters = {"milestone": sprint.name, "labels": label, "state": "opened"}

        def run() -> float:
            issues = self._project(dest).issues
            if unit == "issues":
                first = issues.list(iterator=True, per_page=1, **filters, **NO_LIBRARY_RETRIES)
                if first.total is not None:
                    return float(first.total)
            items = issues.list(get_all=True, per_page=_PER_PAGE, **filters, **NO_LIBRARY_RETRIES)
            if unit == "issues":
                return float(len(items))
            total = 0.0
            for item in items:
                weight = item.asdict().get("weight")
                total += 1.0 if weight is None else float(weight)
            return total

        return self._call("sprint load", run)

    def components(self, dest: Destination) -> tuple[str, ...]:
        """GitLab has no components (the category is a scoped label): no request."""
        return ()

    def add_comment(self, dest: Destination, ref: IssueRef, body: str, *, reporter_text: str | None = None) -> None:
        """Post ``body`` as a note, made inert first (see ``inert_comment``), and ``reporter_text``
        after it as a blockquote (see ``quote_untrusted``)."""
        iid = _iid(ref)
        note = inert_comment(body)
        if reporter_text is not None:
            note = f"{note}\n\n{quote_untrusted(reporter_text)}"

        def run() -> None:
            issue = self._project(dest).issues.get(iid, lazy=True)
            issue.notes.create({"body": note}, **NO_LIBRARY_RETRIES)

        self._call("add comment", run)

    def reopen(self, dest: Destination, ref: IssueRef) -> None:
        iid = _iid(ref)

        def run() -> None:
            issues = self._project(dest).issues
            data = issues.get(iid, **NO_LIBRARY_RETRIES).asdict()
            if data.get("state") == "closed":
                issues.update(iid, {"state_event": "reopen"}, **NO_LIBRARY_RETRIES)

        self._call("reopen issue", run)

    def issue_state(self, dest: Destination, ref: IssueRef) -> IssueSnapshot:
        """``GET /projects/:id/issues/:iid``, fresh. A moved issue still answers: closed, with ``moved_to_id``."""
        iid = _iid(ref)

        def run() -> IssueSnapshot:
            return _snapshot(self._project(dest).issues.get(iid, **NO_LIBRARY_RETRIES).asdict())

        return self._call("read issue", run)

    def update_labels(self, dest: Destination, ref: IssueRef, *, add: Sequence[str], remove: Sequence[str]) -> None:
        """One ``PUT`` with the ``add_labels``/``remove_labels`` comma lists; no request when both are empty.

        Incremental, so other labels stay and a repeat changes nothing. A label in both lists is
        removed. Adding a scoped label (``a::b``) replaces the issue's other label of that scope:
        that is GitLab's rule, not ours.
        """
        iid = _iid(ref)
        removing = _label_list(remove)
        adding = [label for label in _label_list(add) if label not in removing]
        if not adding and not removing:
            return
        data: dict[str, str] = {}
        if adding:
            data["add_labels"] = ",".join(adding)
        if removing:
            data["remove_labels"] = ",".join(removing)

        def run() -> None:
            self._project(dest).issues.update(iid, data, **NO_LIBRARY_RETRIES)

        self._call("update labels", run)

    def upload_attachment(
        self, dest: Destination, ref: IssueRef, *, filename: str, content_type: str, content: bytes
    ) -> None:
        """``POST /projects/:id/uploads`` (multipart ``file``), then a note linking the upload.

        The link is built from the returned ``url``, with the file name escaped like all reporter
        text; images are embedded. A failure between the two requests leaves an unlinked upload
        behind, and the retry uploads again.
        """
        iid = _iid(ref)
        name = _upload_name(filename)
        path = f"/projects/{quote(dest.project, safe='')}/uploads"

        def run() -> None:
            data = self._gl.http_post(
                path, files={"file": (name, content, content_type or "application/octet-stream")}, **NO_LIBRARY_RETRIES
            )
            if not isinstance(data, Mapping):
                raise TypeError("the upload answer is not a JSON object")
            url = data["url"]
            if not isinstance(url, str) or not url.startswith("/"):
                raise TypeError(f"upload url {url!r}")
            embed = "!" if content_type.lower().startswith("image/") else ""
            link = f"{embed}[{inline_untrusted(name, limit=200)}]({quote(url, safe=_URL_SAFE)})"
            issue = self._project(dest).issues.get(iid, lazy=True)
            issue.notes.create({"body": f"Attachment from the reporter: {link}"}, **NO_LIBRARY_RETRIES)

        self._call("upload attachment", run)

    def redact_issue(self, dest: Destination, ref: IssueRef, text: str) -> None:
        """``PUT /projects/:id/issues/:iid`` with the new ``description``; title, labels, milestone and
        notes stay as they are."""
        iid = _iid(ref)

        def run() -> None:
            self._project(dest).issues.update(iid, {"description": text}, **NO_LIBRARY_RETRIES)

        self._call("redact issue", run)

    def probe(self) -> None:
        """One authenticated request (``GET /user``), never cached: for readiness checks."""
        self._call("probe", lambda: self._gl.http_get("/user", **NO_LIBRARY_RETRIES))

    def ensure_webhook(
        self, dest: Destination, *, url: str, secret: str, ssl_verification: bool = True, dry_run: bool = False
    ) -> WebhookSetup:
        """The project's hook to ``url``, registered once: ``GET /projects/:id/hooks`` first, then
        ``PUT /projects/:id/hooks/:hook_id`` for the hook already pointing at ``url`` (GitLab never shows
        its ``token`` again, so it is always re-sent: a rotated secret arrives) or ``POST`` a new one.

        Issue, confidential issue, note and confidential note events; no push events. ``dry_run``
        only lists. The secret never appears in an error message.
        """
        data: dict[str, Any] = {
            "url": url,
            "token": secret,
            "issues_events": True,
            "confidential_issues_events": True,
            "note_events": True,
            "confidential_note_events": True,
            "push_events": False,
            "enable_ssl_verification": ssl_verification,
        }

        def run() -> WebhookSetup:
            hooks = self._project(dest).hooks
            listed = [item.asdict() for item in hooks.list(get_all=True, per_page=_PER_PAGE, **NO_LIBRARY_RETRIES)]
            same = sorted(
                (h for h in listed if str(h.get("url") or "").rstrip("/") == url.rstrip("/")),
                key=lambda h: int(h["id"]),
            )
            extra = max(0, len(same) - 1)
            if same:
                hook_id = str(int(same[0]["id"]))
                if not dry_run:
                    hooks.update(int(hook_id), data, **NO_LIBRARY_RETRIES)
                return WebhookSetup(action="would update" if dry_run else "updated", hook_id=hook_id, duplicates=extra)
            if dry_run:
                return WebhookSetup(action="would create", hook_id=None)
            created = hooks.create(data, **NO_LIBRARY_RETRIES).asdict()
            return WebhookSetup(action="created", hook_id=str(int(created["id"])))

        try:
            return self._call("set up webhook", run)
        except RetryableError as exc:
            raise RetryableError(_without(str(exc), secret), retry_after=exc.retry_after) from None
        except PermanentError as exc:
            raise PermanentError(_without(str(exc), secret)) from None

    def account(self) -> Account:
        """``GET /user``, once per instance."""
        cached = self._account
        if cached is not None:
            return cached

        def run() -> Account:
            data = self._gl.http_get("/user", **NO_LIBRARY_RETRIES)
            if not isinstance(data, Mapping):
                raise TypeError("GET /user did not return an object")
            user_id = data["id"]
            if isinstance(user_id, bool) or not isinstance(user_id, int | str):
                raise TypeError(f"user id {user_id!r}")
            username = data.get("username")
            return Account(id=str(user_id), username=username if isinstance(username, str) else None)

        found = self._call("read account", run)
        self._account = found
        return found

    def changed_since(self, dest: Destination, since: datetime) -> ChangedIssues:
        """Issues (any state) with ``updated_at >= since``, oldest change first, at most 20 pages of 100
        (``cut_at``: the last ``updated_at`` read, when there were more).

        Pages are requested by number (``X-Next-Page``), so the token only ever goes to the
        configured GitLab URL. A naive ``since`` is taken as UTC.
        """
        params: dict[str, Any] = {
            "updated_after": _utc_iso(since),
            "scope": "all",
            "state": "all",
            "order_by": "updated_at",
            "sort": "asc",
            "per_page": _PER_PAGE,
        }

        def run() -> ChangedIssues:
            path = self._project(dest).issues.path
            out = ChangedIssues()
            last_change: datetime | None = None
            page: int | None = 1
            for _ in range(_CHANGED_MAX_PAGES):
                if page is None:
                    return out
                response = self._gl.http_request("get", path, query_data={**params, "page": page}, **NO_LIBRARY_RETRIES)
                items = response.json()
                if not isinstance(items, list):
                    raise TypeError("the issue list is not a JSON array")
                for data in items:
                    title = data["title"]
                    if not isinstance(title, str):
                        raise TypeError(f"issue title {title!r}")
                    out.append((self._issue_ref(data), title))
                    last_change = _timestamp(data.get("updated_at")) or last_change
                page = _next_page(response, page) if items else None
            if page is not None:
                log.warning(
                    "gitlab changed_since %s: stopped after %d pages (%d issues); issues changed later are not "
                    "in this result",
                    dest.project,
                    _CHANGED_MAX_PAGES,
                    len(out),
                )
                out.cut_at = last_change or (since if since.tzinfo is not None else since.replace(tzinfo=UTC))
            return out

        return self._call("list changed issues", run)

    def check(self, dest: Destination, query: SprintQuery, *, today: str) -> list[str]:
        # Not ``gl.auth()``: it takes no per-call options, so it would retry a 429 ten times.
        def user() -> None:
            data = self._gl.http_get("/user", **NO_LIBRARY_RETRIES)
            if not isinstance(data, dict) or "id" not in data:
                raise RetryableError("gitlab check token: unexpected response to GET /user")

        try:
            self._call("check token", user)
        except PermanentError as exc:
            return [f"GitLab token rejected or lacking access: {exc}"]
        except RetryableError as exc:
            return [f"GitLab not reachable: {exc}"]

        try:
            self._call("check project", lambda: self._gl.projects.get(dest.project, **NO_LIBRARY_RETRIES))
        except BridgeError as exc:
            return [f"GitLab project {dest.project!r} not visible with this token: {exc}"]

        try:
            window = self.sprints(dest, query, today=today)
        except BridgeError as exc:
            return [f"GitLab milestones of {dest.project!r} could not be read: {exc}"]
        if window.current is None:
            what = f" matching {query.title_pattern!r}" if query.title_pattern else ""
            return [
                f"GitLab project {dest.project!r} has no current sprint: no active milestone{what} "
                f"with a start and due date contains {today}"
            ]
        return []

    # -- internals ---------------------------------------------------------------------------------

    def _project(self, dest: Destination) -> Any:
        return self._gl.projects.get(dest.project, lazy=True)

    def _remember_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._local.response = response

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "[token]") if self._token else text

    @staticmethod
    def _issue_ref(data: Mapping[str, Any]) -> IssueRef:
        iid = data["iid"]
        if isinstance(iid, bool) or not isinstance(iid, int | str):
            raise TypeError(f"issue iid {iid!r}")
        url = data.get("web_url")
        return IssueRef(key=str(int(iid)), url=url if isinstance(url, str) else None)

    def _call(self, what: str, run: Callable[[], _T], *, write: bool = False) -> _T:
        """Run python-gitlab calls, translating every failure into our two error types.

        ``write``: the request is not safe to repeat, so a failure after it was sent (a timeout
        waiting for the answer, a dropped connection, a 500/502/504, a 2xx that cannot be read)
        is ``OutcomeUnknown``.
        """
        what = f"gitlab {what}"
        retryable = OutcomeUnknown if write else RetryableError
        self._local.response = None
        try:
            return run()
        except BridgeError:
            raise
        except requests.JSONDecodeError as exc:
            raise retryable(f"{what}: unparseable response from GitLab") from exc
        except requests.exceptions.ConnectTimeout as exc:  # never reached GitLab
            raise RetryableError(self._scrub(f"{what}: {type(exc).__name__}: {exc}")) from exc
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
        ) as exc:
            raise retryable(self._scrub(f"{what}: {type(exc).__name__}: {exc}")) from exc
        except requests.RequestException as exc:
            raise PermanentError(self._scrub(f"{what}: {type(exc).__name__}: {exc}")) from exc
        except gitlab.exceptions.RedirectError as exc:
            # A POST/PUT redirected (e.g. http -> https) would be replayed as a GET: fix the URL.
            raise PermanentError(self._scrub(f"{what}: {exc.error_message}")) from exc
        except gitlab.exceptions.GitlabParsingError as exc:
            raise retryable(f"{what}: unparseable response from GitLab") from exc
        except gitlab.exceptions.GitlabError as exc:
            status = exc.response_code
            if status is None:
                raise retryable(self._scrub(f"{what}: {_format_message(exc.error_message)}")) from exc
            response = getattr(self._local, "response", None)
            headers: Mapping[str, str] = (
                response.headers if response is not None and response.status_code == status else {}
            )
            message = self._scrub(_format_message(exc.error_message))
            raise (error_for_write if write else error_for_status)(status, message, headers, what=what) from exc
        except (KeyError, TypeError, ValueError) as exc:
            # Our reading of a 2xx payload that does not have GitLab's documented shape.
            raise retryable(
                self._scrub(f"{what}: unexpected response from GitLab: {type(exc).__name__}: {exc}")
            ) from exc


if TYPE_CHECKING:
    _protocol_check: Tracker = GitLabTracker(url="", token="")
