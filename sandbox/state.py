"""The whole sandbox behind one lock: both trackers' data, faults, logs and webhook targets."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import deque
from datetime import date
from typing import Any

from sandbox import gitlab_hooks, gitlab_json, jira_hooks, jira_json, jira_search, seed, webhooks
from sandbox.config import SandboxConfig
from sandbox.events import HookEvent
from sandbox.faults import FaultRule, Faults
from sandbox.gitlab_model import GitLabError, IssueChange, NoteAdded
from sandbox.gitlab_store import GitLabStore
from sandbox.jira_model import JiraChange, JiraError
from sandbox.jira_store import JiraStore

REQUEST_LOG_LIMIT = 20_000


class Sandbox:
    """Holds ``lock`` for every read and write of tracker data, faults and logs."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.dispatcher = webhooks.Dispatcher(
            retry_base_s=config.webhook_retry_base_s,
            max_attempts=config.webhook_max_attempts,
            timeout_s=config.webhook_timeout_s,
        )
        self._delivery_ids = itertools.count(1)
        self.requests: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_LIMIT)
        self._request_ids = itertools.count(1)
        self.gitlab = GitLabStore(bot_email="bridge-bot@example.com")
        self.jira = JiraStore(bot_email=config.jira_user)
        self.faults = Faults([], seed=config.seed)
        self.targets: dict[str, webhooks.Target | None] = {}
        self.reset()

    @property
    def base_url(self) -> str:
        return self.config.base_url.rstrip("/")

    @property
    def today(self) -> date:
        return self.config.seed_today or date.today()

    def reset(self) -> None:
        """Back to the start-up state: fresh seed data, start-up faults and targets, empty logs."""
        self.dispatcher.reset()
        with self.lock:
            self.gitlab = GitLabStore(bot_email="bridge-bot@example.com")
            self.jira = JiraStore(bot_email=self.config.jira_user)
            seed.seed_gitlab(self.gitlab, self.today)
            seed.seed_jira(self.jira, self.today)
            now = time.time()
            rules = [FaultRule.from_json(r, now=now) for r in self.config.initial_fault_rules()]
            self.faults = Faults(rules, seed=self.config.seed)
            self.requests.clear()
            self.set_target("gitlab", self.config.gitlab_webhook_url, self.config.gitlab_webhook_secret)
            self.set_target("jira", self.config.jira_webhook_url, self.config.jira_webhook_secret)

    def set_target(self, tracker: str, url: str | None, secret: str | None) -> None:
        """Replace the start-up (``default``) webhook target of a tracker; ``url=None`` removes it."""
        with self.lock:
            self.targets[tracker] = webhooks.Target(tracker, url, secret, "default", str(uuid.uuid4())) if url else None

    # -- plans ---------------------------------------------------------------------------------

    def close_sprint(self, tracker: str, sprint_id: int | None = None, *, start_next: bool = True) -> dict[str, Any]:
        """Close the current sprint (or ``sprint_id``): Jira completes it and, with ``start_next``,
        starts the first future sprint; GitLab closes the milestone. Raises the tracker's error."""
        with self.lock:
            if tracker == "jira":
                chosen = None
                if sprint_id is not None:
                    chosen = self.jira.sprints.get(sprint_id)
                    if chosen is None:
                        raise JiraError(404, ["Sprint does not exist or you do not have permission to see it."])
                closed, started = self.jira.close_sprint(chosen, start_next=start_next)
                return {
                    "closed": {"id": closed.id, "name": closed.name},
                    "started": {"id": started.id, "name": started.name} if started else None,
                }
            milestone = None
            if sprint_id is not None:
                milestone = self.gitlab.milestones.get(sprint_id)
                if milestone is None:
                    raise GitLabError(404, "404 Milestone Not Found")
            closed_milestone = self.gitlab.close_milestone(self.gitlab.projects[1], self.today, milestone)
            return {"closed": {"id": closed_milestone.id, "name": closed_milestone.title}, "started": None}

    # -- webhooks ------------------------------------------------------------------------------

    def gitlab_events(self, changes: list[IssueChange | NoteAdded | None]) -> list[HookEvent]:
        events = []
        for change in changes:
            if isinstance(change, IssueChange):
                events.append(gitlab_hooks.issue_event(self.gitlab, change, self.base_url))
            elif isinstance(change, NoteAdded):
                events.append(gitlab_hooks.note_event(self.gitlab, change, self.base_url))
        return events

    def jira_events(self, changes: list[JiraChange]) -> list[HookEvent]:
        return [jira_hooks.event(self.jira, change, self.base_url) for change in changes]

    def _targets(self, event: HookEvent) -> list[webhooks.Target]:
        found = []
        default = self.targets.get(event.tracker)
        if default is not None:
            found.append(default)
        if event.tracker == "gitlab":
            for hook in self.gitlab.hooks.values():
                if hook.project_id == event.project_id and hook.events.get(event.scope):
                    found.append(webhooks.Target("gitlab", hook.url, hook.token, str(hook.id), hook.uuid))
        else:
            issue = self.jira.find_issue(event.subject)
            for jhook in self.jira.webhooks.values():
                if not jhook.enabled or event.name not in jhook.events:
                    continue
                if jhook.jql and issue is not None and not jira_search.matches(self.jira, issue, jhook.jql):
                    continue
                found.append(webhooks.Target("jira", jhook.url, jhook.secret, str(jhook.id), str(jhook.id)))
        return found

    def plan(self, events: list[HookEvent]) -> list[webhooks.Delivery]:
        """Address ``events`` (call under the lock, right after the change); send with :meth:`send`."""
        deliveries = []
        for event in events:
            deliveries.extend(
                webhooks.plan(
                    event,
                    self._targets(event),
                    self.faults.for_webhook(event.tracker, event.name),
                    instance_url=self.base_url,
                    ids=self._delivery_ids,
                )
            )
        return deliveries

    def send(self, deliveries: list[webhooks.Delivery]) -> None:
        """Hand planned deliveries to the background sender (call without holding the lock)."""
        if deliveries:
            self.dispatcher.submit(deliveries)

    # -- inspection ----------------------------------------------------------------------------

    def log_request(self, entry: dict[str, Any]) -> None:
        with self.lock:
            entry["id"] = next(self._request_ids)
            self.requests.append(entry)

    def snapshot(self) -> dict[str, Any]:
        """``GET /_sandbox/state``: every issue of both trackers plus the seeded plan data."""
        base, today = self.base_url, self.today
        with self.lock:
            gl, jr = self.gitlab, self.jira
            gitlab_issues = []
            for issue in sorted(gl.issues.values(), key=lambda i: i.id):
                data = gitlab_json.issue(issue, gl, base, today=today)
                data["notes"] = [gitlab_json.note(n, issue, gl, base) for n in issue.notes]
                gitlab_issues.append(data)
            return {
                "today": today.isoformat(),
                "gitlab": {
                    "projects": [gitlab_json.project(p, base) for p in gl.projects.values()],
                    "milestones": [gitlab_json.milestone(m, gl, base, today=today) for m in gl.milestones.values()],
                    "hooks": [gitlab_json.hook(h) for h in gl.hooks.values()],
                    "issues": gitlab_issues,
                },
                "jira": {
                    "project": jira_json.project(jr.project, jr, base),
                    "board": jira_json.board(jr.board, base),
                    "sprints": [jira_json.sprint(s, base) for s in jr.board_sprints(jr.board.id)],
                    "webhooks": [jira_json.webhook(h, base) for h in jr.webhooks.values()],
                    "issues": [
                        jira_json.issue(i, jr, base) for i in sorted(jr.issues.values(), key=lambda i: int(i.id))
                    ],
                },
                "webhook_targets": {
                    tracker: ({"url": t.url, "secret_set": bool(t.secret)} if t else None)
                    for tracker, t in self.targets.items()
                },
            }
