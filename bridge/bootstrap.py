"""The composition root: the one place that knows which adapters are real.

``build_deps`` wires settings, mappings, store, queue, trackers and job handlers.
Tests pass fakes through ``overrides`` instead of patching import paths.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from flask import current_app
from huey import Huey

from bridge.adapters.mail import Mailer
from bridge.adapters.mail.imap import ImapPoller, SetAside
from bridge.adapters.queue import JobQueue, make_huey
from bridge.adapters.store.db import make_engine
from bridge.adapters.store.repository import Store
from bridge.adapters.trackers.base import Tracker
from bridge.adapters.trackers.ratelimit import StateStore, TrackerRateLimit, configured_quotas
from bridge.adapters.trackers.ratelimit_stores import FileStore, RedisStore
from bridge.config import GitLabSettings, JiraSettings, Settings, load_settings, tracker_problems
from bridge.errors import ConfigError, Problem
from bridge.jobs import Handler, JobRunner
from bridge.mappings import Mappings, load_mappings
from bridge.pipeline.filing.file_ticket import TicketFiler
from bridge.pipeline.filing.plan import SprintPlanner
from bridge.pipeline.filing.route import trackers_in_use
from bridge.pipeline.following.events import RELAY_COMMENT, SYNC_TICKET
from bridge.pipeline.following.reconcile import Reconciler
from bridge.pipeline.following.sync import CommentRelay, TrackerSync
from bridge.pipeline.intake.attachments import AttachmentFetchJob
from bridge.pipeline.intake.chatbot import APPLY_FOLLOWUP, FETCH_ATTACHMENTS, FILE_TICKET
from bridge.pipeline.intake.email.process import (
    PROCESS_EMAIL,
    UPLOAD_ATTACHMENTS,
    AttachmentUploader,
    Delivered,
    EmailIntake,
    EmailProcessor,
    Unstorable,
)
from bridge.pipeline.intake.followup import FollowupApplier
from bridge.pipeline.notifying.callback import ChatbotCallback
from bridge.pipeline.notifying.email import EmailTemplates, Notifier, build_mailer
from bridge.pipeline.notifying.notices import CALLBACK, NOTIFY, NoticeScheduler
from bridge.pipeline.privacy.gdpr import REDACT_ISSUE, IssueRedactor, PersonalData, Retention
from bridge.yamlfile import LoadedYaml

log = logging.getLogger(__name__)

RATE_LIMIT_REDIS_TIMEOUT = 2.0


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Deps:
    settings: Settings
    mappings: Mappings
    store: Store
    queue: JobQueue
    trackers: Mapping[str, Tracker]
    runner: JobRunner
    reconciler: Reconciler
    secret_key: str
    notices: NoticeScheduler
    email_intake: EmailIntake
    imap_poller: ImapPoller | None = None
    """Set when ``imap.enabled``: the worker polls the mailbox with it."""
    clock: Callable[[], datetime] = utc_now
    extras: dict[str, Any] = field(default_factory=dict)


def current_deps() -> Deps:
    deps: Deps = current_app.extensions["bridge"]
    return deps


def load_configuration(config_path: str | Path | None = None) -> tuple[Settings, Mappings]:
    """Settings and mappings, checked together; one ``ConfigError`` lists every problem."""
    settings, loaded = load_settings(config_path)
    return settings, check_configuration(settings, loaded)


def check_configuration(settings: Settings, loaded: LoadedYaml | None = None) -> Mappings:
    problems: list[Problem] = []
    mappings: Mappings | None = None
    try:
        mappings = load_mappings(settings.mappings_path)
    except ConfigError as exc:
        problems.extend(exc.problems)
    if mappings is not None:
        problems.extend(tracker_problems(settings, trackers_in_use(mappings.routing, settings), loaded))
        try:
            EmailTemplates(mappings.templates_dir, mappings.wording)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if not settings.chatbot.signing_secrets:
        problems.append(_missing(loaded, ("chatbot", "signing_secrets"), "CHATBOT_SIGNING_SECRET"))
    if problems or mappings is None:
        raise ConfigError(problems)
    return mappings


def _missing(loaded: LoadedYaml | None, loc: tuple[str, ...], env_var: str) -> Problem:
    return Problem(
        file=loaded.path if loaded else "config.yaml",
        key=".".join(loc),
        line=loaded.line_of(loc) if loaded else None,
        message=f"required (set {env_var})",
    )


def build_trackers(settings: Settings, used: set[str]) -> dict[str, Tracker]:
    """Real tracker adapters for every tracker that routing uses. No network call here."""
    trackers: dict[str, Tracker] = {}
    store = rate_limit_store(settings) if used else None

    def rate_limit(name: str, section: GitLabSettings | JiraSettings) -> TrackerRateLimit | None:
        if store is None:
            return None
        quotas = configured_quotas(
            max_requests_per_second=section.max_requests_per_second,
            max_requests_per_minute=section.max_requests_per_minute,
            max_creates_per_minute=section.max_creates_per_minute,
        )
        return TrackerRateLimit(tracker=name, url=section.url or "", store=store, quotas=quotas)

    if "gitlab" in used:
        from bridge.adapters.trackers.gitlab import GitLabTracker

        gl = settings.trackers.gitlab
        trackers["gitlab"] = GitLabTracker(
            url=gl.url or "", token=gl.token or "", timeout=gl.timeout_seconds, rate_limit=rate_limit("gitlab", gl)
        )
    if "jira" in used:
        from bridge.adapters.trackers.jira import JiraTracker

        jira = settings.trackers.jira
        trackers["jira"] = JiraTracker(
            url=jira.url or "",
            user=jira.user or "",
            api_token=jira.api_token or "",
            timeout=jira.timeout_seconds,
            issue_type=jira.issue_type,
            story_points_field=jira.story_points_field,
            rate_limit=rate_limit("jira", jira),
        )
    return trackers


def rate_limit_store(settings: Settings) -> StateStore:
    """Where the trackers' gates and paces are shared: Redis when the queue is on Redis (workers on
    many machines), else files in the instance directory (the SQLite queue keeps every worker on
    this machine). Short Redis timeouts: a slow Redis lets tracker calls go unpaced, never hangs them."""
    if settings.queue.redis_url:
        client = redis.Redis.from_url(
            settings.queue.redis_url,
            socket_connect_timeout=RATE_LIMIT_REDIS_TIMEOUT,
            socket_timeout=RATE_LIMIT_REDIS_TIMEOUT,
        )
        return RedisStore(client)
    return FileStore(settings.path(settings.server.instance_dir) / "ratelimit")


def secret_key_for(settings: Settings) -> str:
    """``BRIDGE_SECRET_KEY``, or one generated once and kept in the instance directory."""
    if settings.server.secret_key:
        return settings.server.secret_key
    path = settings.path(settings.server.instance_dir) / "secret_key"
    if not path.exists():
        # Several processes may start at once: write a private temp file, then link it into
        # place, which succeeds for exactly one of them; the others read the winner's key.
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".secret_key.")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(32))
            with contextlib.suppress(FileExistsError):
                os.link(temp, path)
        finally:
            os.unlink(temp)
    return path.read_text().strip()


def build_deps(
    settings: Settings,
    mappings: Mappings,
    *,
    trackers: Mapping[str, Tracker] | None = None,
    huey: Huey | None = None,
    mailer: Mailer | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Deps:
    """Everything the web and worker processes use. ``clock`` is for tests, which move time; without
    it the bridge runs on real time, and on PostgreSQL the database's clock decides when jobs are due
    (``Store``'s ``database_time``), so hosts whose clocks disagree still run immediate jobs at once."""
    database_time = clock is None
    clock = clock or utc_now
    store = Store(make_engine(settings.database_url), clock=clock, database_time=database_time)
    notices = NoticeScheduler(
        debounce_seconds=settings.mail.notify_debounce_seconds, callback_enabled=bool(settings.chatbot.callback_url)
    )
    store.on_status = notices.on_status
    if trackers is None:
        trackers = build_trackers(settings, trackers_in_use(mappings.routing, settings))
    routing = mappings.routing
    planner = SprintPlanner(
        policy=mappings.sprints,
        trackers=trackers,
        bugfix_label=lambda tracker: routing.labels[tracker].kind.format(kind="bugfix"),  # type: ignore[index]
        timezone=settings.timezone,
        clock=clock,
    )
    secret_key = secret_key_for(settings)
    handlers: dict[str, Handler] = {
        FILE_TICKET: TicketFiler(
            store=store, trackers=trackers, mappings=mappings, settings=settings, planner=planner, clock=clock
        ),
        APPLY_FOLLOWUP: FollowupApplier(store=store, trackers=trackers, mappings=mappings, clock=clock),
        NOTIFY: Notifier(
            store=store,
            mailer=mailer or build_mailer(settings),
            mappings=mappings,
            settings=settings,
            secret_key=secret_key,
            clock=clock,
        ),
        CALLBACK: ChatbotCallback(store=store, settings=settings, mappings=mappings, clock=clock),
        SYNC_TICKET: TrackerSync(store=store, trackers=trackers, mappings=mappings, planner=planner, notices=notices),
        RELAY_COMMENT: CommentRelay(store=store, trackers=trackers, mappings=mappings, notices=notices),
        PROCESS_EMAIL: EmailProcessor(store=store, settings=settings, mappings=mappings, clock=clock),
        UPLOAD_ATTACHMENTS: AttachmentUploader(store=store, trackers=trackers, settings=settings),
        FETCH_ATTACHMENTS: AttachmentFetchJob(store=store, trackers=trackers, settings=settings, clock=clock),
        REDACT_ISSUE: IssueRedactor(store=store, trackers=trackers),
    }
    email_intake = EmailIntake(store=store, settings=settings, clock=clock)
    imap_poller = build_imap_poller(settings, email_intake)
    holder: list[JobQueue] = []
    runner = JobRunner(
        store=store,
        handlers=handlers,
        delivery=settings.delivery,
        enqueue=lambda job_id, delay: holder[0].enqueue(job_id, delay=delay),
        clock=clock,
    )
    if huey is None:
        huey = make_huey(redis_url=settings.queue.redis_url, sqlite_path=settings.queue_sqlite_path)
    reconciler = Reconciler(store=store, trackers=trackers, mappings=mappings, settings=settings, clock=clock)
    queue = JobQueue(
        huey,
        run_job=runner.run,
        sweep=runner.sweep,
        reconcile=reconciler.run,
        reconcile_minutes=settings.delivery.reconcile_minutes,
        imap_poll=poll_quietly(imap_poller) if imap_poller is not None else None,
        imap_minutes=settings.imap.poll_minutes,
        retention=retention_task(settings, store, clock),
    )
    holder.append(queue)
    store.enqueue = lambda job_id, delay: queue.enqueue(job_id, delay=delay)
    return Deps(
        settings=settings,
        mappings=mappings,
        store=store,
        queue=queue,
        trackers=trackers,
        runner=runner,
        reconciler=reconciler,
        secret_key=secret_key,
        notices=notices,
        email_intake=email_intake,
        imap_poller=imap_poller,
        clock=clock,
    )


def personal_data(deps: Deps) -> PersonalData:
    """Export and erasure of a reporter's data (CLI and admin API)."""
    return PersonalData(
        store=deps.store, clock=deps.clock, max_attachment_bytes=deps.settings.intake.max_attachment_bytes
    )


def retention_task(settings: Settings, store: Store, clock: Callable[[], datetime]) -> Callable[[], object] | None:
    """The periodic retention purge; None when ``retention.personal_data_days`` is 0 (off)."""
    days = settings.retention.personal_data_days
    if days <= 0:
        return None
    data = PersonalData(store=store, clock=clock, max_attachment_bytes=settings.intake.max_attachment_bytes)
    return Retention(data=data, days=days).run


def build_imap_poller(settings: Settings, intake: EmailIntake) -> ImapPoller | None:
    """The mailbox poller when ``imap.enabled``; it stores through the same path as ``/webhooks/email/raw``."""
    if not settings.imap.enabled:
        return None

    def store(raw: bytes) -> bool:
        try:
            return not intake.store(Delivered(source="imap", raw=raw)).duplicate
        except Unstorable as exc:  # kept as rejected with the reason; the poller flags it and goes on
            raise SetAside(exc.reason) from None

    return ImapPoller(settings.imap, store=store)


def poll_quietly(poller: ImapPoller) -> Callable[[], None]:
    """The periodic task: a failed poll (server down, login refused) is one warning, and the next
    run simply tries again; a message is only moved after it was stored, so nothing is lost."""

    def poll() -> None:
        try:
            poller.poll()
        except Exception as exc:
            log.warning("imap.poll_failed", extra={"mailbox": repr(poller), "error": f"{type(exc).__name__}: {exc}"})

    return poll
