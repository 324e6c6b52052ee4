"""Operator commands: ``python -m bridge <command>`` (also ``flask --app wsgi bridge <command>``).

They read the same ``config.yaml`` as the service and work without the web process.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import urlsplit

import click

from bridge.adapters.store.db import upgrade
from bridge.bootstrap import Deps, build_deps, build_trackers, load_configuration, utc_now
from bridge.config import Settings
from bridge.domain import Status
from bridge.errors import ConfigError
from bridge.mappings import Mappings
from bridge.pipeline.filing.route import destinations, trackers_in_use

if TYPE_CHECKING:
    from bridge.pipeline.filing.explain_output import Lang


@dataclass(frozen=True)
class CliContext:
    """What the commands run with. ``python -m bridge`` uses real time (None: the database's clock
    decides when jobs are due, as in the service); a test passes its own clock
    (``CliRunner().invoke(cli, args, obj=CliContext(clock=...))``), as it does to ``build_deps``."""

    clock: Callable[[], datetime] | None = None


def _test_clock() -> Callable[[], datetime] | None:
    context = click.get_current_context(silent=True)
    found = context.find_object(CliContext) if context is not None else None
    return (found or CliContext()).clock


def _clock() -> Callable[[], datetime]:
    return _test_clock() or utc_now


def _configuration() -> tuple[Settings, Mappings]:
    try:
        return load_configuration()
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)


def _deps() -> Deps:
    settings, mappings = _configuration()
    return build_deps(settings, mappings, clock=_test_clock())


@click.group(name="bridge")
def cli() -> None:
    """Operate the bridge."""


@cli.command("check-config")
@click.option("--online", is_flag=True, help="Also check tracker credentials, projects, boards and sprints.")
def check_config(online: bool) -> None:
    """Validate config.yaml and mappings/ (exit 2 on problems)."""
    settings, mappings = _configuration()
    click.echo(f"configuration OK: trackers in use: {', '.join(sorted(trackers_in_use(mappings.routing, settings)))}")
    if not online:
        return
    from bridge.pipeline.filing.plan import SprintPlanner

    trackers = build_trackers(settings, trackers_in_use(mappings.routing, settings))
    planner = SprintPlanner(
        policy=mappings.sprints,
        trackers=trackers,
        bugfix_label=str,
        timezone=settings.timezone,
        clock=_clock(),
    )
    failed = False
    for dest in destinations(mappings.routing, settings):
        problems = trackers[dest.tracker].check(dest, planner.query, today=planner.today())
        where = f"{dest.tracker} {dest.project}" + (f" board {dest.board_id}" if dest.board_id else "")
        if problems:
            failed = True
            for problem in problems:
                click.echo(f"{where}: {problem}", err=True)
        else:
            click.echo(f"{where}: OK")
    sys.exit(1 if failed else 0)


@cli.command()
def migrate() -> None:
    """Apply database migrations (run on every deploy; safe to repeat)."""
    settings, _ = _configuration()
    upgrade(settings.database_url)
    click.echo("database schema is up to date")


@cli.command()
@click.option("--state", type=click.Choice(["pending", "running", "done", "dead"]), default=None)
@click.option("--limit", default=50, show_default=True)
def jobs(state: str | None, limit: int) -> None:
    """List jobs, newest first (``--state dead`` lists the dead letters)."""
    deps = _deps()
    counts = deps.store.count_jobs()
    click.echo("jobs: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    for job in deps.store.jobs(state=state, limit=limit):
        subject = deps.store.ticket(job.ticket_id).tracking_id if job.ticket_id else f"subject #{job.subject_id}"
        error = f"  {job.last_error}" if job.last_error and job.state != "done" else ""
        click.echo(f"#{job.id} {job.kind:<15} {subject} {job.state:<8} attempts={job.attempts}{error}")


@cli.command()
@click.argument("job_ids", nargs=-1, type=int)
@click.option("--all-dead", is_flag=True, help="Replay every dead job.")
def replay(job_ids: tuple[int, ...], all_dead: bool) -> None:
    """Give dead jobs a fresh retry horizon and queue them again."""
    from bridge.operations import replay_dead_letters

    if not job_ids and not all_dead:
        raise click.UsageError("name job ids or pass --all-dead")
    # One transaction, oldest first: each lane's replayed jobs run in their original order.
    replayed = replay_dead_letters(_deps(), None if all_dead else job_ids)
    for job_id in replayed:
        click.echo(f"#{job_id} queued again")
    for job_id in job_ids:
        if job_id not in replayed:
            click.echo(f"#{job_id} is not dead; left alone", err=True)


@cli.command()
def sweep() -> None:
    """Re-queue due jobs now (the worker also does this every minute)."""
    click.echo(f"re-queued {_deps().runner.sweep()} job(s)")


@cli.command()
def reconcile() -> None:
    """Ask the trackers what changed since the last run and sync those tickets (the worker
    does this every few minutes)."""
    click.echo(f"queued {_deps().reconciler.run()} ticket sync(s)")


# --- looking at tickets ---------------------------------------------------------------------------


def _when(moment: datetime | date | None) -> str:
    if moment is None:
        return "-"
    if isinstance(moment, datetime):
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return moment.isoformat()


@cli.command()
@click.option("--status", type=click.Choice([s.value for s in Status]), default=None, help="Only this status.")
@click.option(
    "--needs-support",
    is_flag=True,
    help="Only tickets set aside for support (their issue was deleted or can no longer be read), "
    "most recently flagged first, with the reason.",
)
@click.option("--limit", default=50, show_default=True)
def tickets(status: str | None, needs_support: bool, limit: int) -> None:
    """List tickets, newest first: tracking ID, status, severity, tracker issue, created (no personal data)."""
    from bridge.pipeline.following import support

    deps = _deps()
    if needs_support:
        click.echo(f"{'TRACKING ID':<14} {'STATUS':<12} {'REASON':<16} {'ISSUE':<24} FLAGGED")
        for row in support.needing_support(deps.store, status=status, limit=limit):
            issue = f"{row.tracker} {row.issue_key}" if row.issue_key else "-"
            reason = row.support_reason or "-"
            click.echo(
                f"{row.tracking_id:<14} {row.status:<12} {reason:<16} {issue:<24} {_when(row.support_flagged_at)}"
            )
        return
    click.echo(f"{'TRACKING ID':<14} {'STATUS':<12} {'SEVERITY':<9} {'ISSUE':<24} CREATED")
    for row in deps.store.tickets(status=status, limit=limit):
        issue = f"{row.tracker} {row.issue_key}" if row.issue_key else "-"
        severity = row.severity or "-"
        flag = "  needs support" if row.support_reason else ""
        click.echo(f"{row.tracking_id:<14} {row.status:<12} {severity:<9} {issue:<24} {_when(row.created_at)}{flag}")


@cli.command()
@click.argument("tracking_id")
@click.option("--show-personal-data", is_flag=True, help="Also show the reporter's name and email address.")
def ticket(tracking_id: str, show_personal_data: bool) -> None:
    """Everything about one ticket: decisions, issue, history, jobs with their last errors, notifications.

    The reporter's name and email address are left out (and addresses in the report's text masked)
    unless --show-personal-data is given.
    """
    from bridge.adapters.mail import mask_addresses

    deps = _deps()
    row = deps.store.ticket_by_tracking_id(tracking_id.strip().upper())
    if row is None:
        click.echo(f"no ticket {tracking_id!r}", err=True)
        sys.exit(1)

    def text(value: str | None) -> str:
        if not value:
            return "-"
        return value if show_personal_data else mask_addresses(value)

    echo = click.echo
    reason = f" ({row.status_reason})" if row.status_reason else ""
    echo(f"{row.tracking_id}  status: {row.status}{reason}")
    echo(f"  channel: {row.channel}  locale: {row.locale}")
    echo(f"  created: {_when(row.created_at)}  updated: {_when(row.updated_at)}")
    if show_personal_data:
        name = f"{row.reporter_name} " if row.reporter_name else ""
        echo(f"  reporter: {name}<{row.reporter_email}>")
    else:
        echo("  reporter: (hidden; --show-personal-data shows it)")
    echo(f"  organization: {row.organization or '-'}  product: {row.product or '-'}")
    echo(f"  declared priority: {row.declared_priority or '-'}  conversation: {row.conversation_id or '-'}")
    echo(f"  title: {text(row.title)}")
    echo(f"  impact: {text(row.impact)}")
    echo("  description:")
    for line in text(row.description).splitlines() or ["-"]:
        echo(f"    {line}")
    po = {True: "yes", False: "no", None: "-"}[row.po_review]
    echo(f"  severity: {row.severity or '-'}  kind: {row.kind or '-'}  product-owner review: {po}")
    echo(f"  rules: {', '.join(str(r) for r in row.rules or []) or '-'}")
    board = f" board {row.board_id}" if row.board_id else ""
    echo(f"  destination: {row.tracker or '-'} {row.project or '-'}{board}")
    echo(f"  issue: {row.issue_key or '-'} {row.issue_url or ''}".rstrip())
    if row.sprint_name:
        sprint = f"{row.sprint_slot or '-'}: {row.sprint_name} ({_when(row.sprint_start)} to {_when(row.sprint_due)})"
    else:
        sprint = "needs planning" if row.planned else "not planned yet"
    echo(f"  sprint: {sprint}")
    linked = deps.store.ticket(row.linked_ticket_id).tracking_id if row.linked_ticket_id else "-"
    echo(f"  notifications muted: {'yes' if row.notifications_muted else 'no'}  follows up: {linked}")
    echo(f"  resolved: {_when(row.resolved_at)}  last tracker sync: {_when(row.tracker_synced_at)}")
    if row.support_reason:
        echo(f"  needs support: {row.support_reason} (since {_when(row.support_flagged_at)})")

    echo("history:")
    for event in deps.store.history(row.id):
        echo(f"  {_when(event.at)}  {event.status}")
    echo("jobs:")
    for job in deps.store.ticket_jobs(row.id):
        due = f" next: {_when(job.next_attempt_at)}" if job.state == "pending" else ""
        echo(
            f"  #{job.id} {job.kind:<15} lane={job.lane:<8} {job.state:<8} attempts={job.attempts}{due}"
            f" request={job.request_id or '-'}"
        )
        if job.last_error:
            echo(f"      last error: {text(job.last_error)}")
    echo("notifications:")
    for note in deps.store.ticket_notifications(row.id):
        told = f" status={note.status}" if note.status else ""
        when = f"created: {_when(note.created_at)} sent: {_when(note.sent_at)}"
        echo(f"  #{note.id} {note.kind:<8} {note.state:<10}{told} {when}")
    followups = deps.store.ticket_followups(row.id)
    if followups:
        echo("follow-ups:")
        for item in followups:
            flags = " not fixed" if item.not_fixed else ""
            echo(f"  #{item.id} {_when(item.created_at)}{flags} commented: {_when(item.commented_at)}")
            echo(f"      {text(' '.join(item.message.split()))[:300]}")


# --- tracker webhooks -----------------------------------------------------------------------------


@cli.command("setup-webhooks")
@click.option("--tracker", "only", type=click.Choice(["gitlab", "jira"]), default=None, help="Only this tracker.")
@click.option("--dry-run", is_flag=True, help="List the trackers' hooks and say what would change; change nothing.")
@click.option(
    "--no-ssl-verification", is_flag=True, help="GitLab: do not verify the bridge's TLS certificate (test set-ups)."
)
def setup_webhooks(only: str | None, dry_run: bool, no_ssl_verification: bool) -> None:
    """Register the bridge's webhook, with its secret, in the GitLab project(s) and the Jira site.

    Idempotent: a hook that already points at <BRIDGE_PUBLIC_URL>/webhooks/<tracker> is updated
    (events, secret, filter), never added twice. Exit 1 if any tracker failed.
    """
    from bridge.adapters.trackers.gitlab import GitLabTracker
    from bridge.adapters.trackers.jira import JiraTracker
    from bridge.domain import Destination
    from bridge.errors import BridgeError

    settings, mappings = _configuration()
    used = trackers_in_use(mappings.routing, settings)
    names = [only] if only else sorted(used)
    public = settings.server.public_url
    host = urlsplit(public).hostname or ""
    if host in ("localhost", "127.0.0.1", "::1"):
        click.echo(f"warning: BRIDGE_PUBLIC_URL is {public}; the tracker must be able to reach it", err=True)
    dests = destinations(mappings.routing, settings)
    trackers = build_trackers(settings, set(names))
    failed = False
    for name in names:
        secret = settings.trackers.gitlab.webhook_secret if name == "gitlab" else settings.trackers.jira.webhook_secret
        variable = "GITLAB_WEBHOOK_SECRET" if name == "gitlab" else "JIRA_WEBHOOK_SECRET"
        if not secret:
            click.echo(f"{name}: {variable} is not set: the bridge would refuse every delivery", err=True)
            failed = True
            continue
        url = f"{public}/webhooks/{name}"
        tracker = trackers.get(name)
        section = settings.trackers.gitlab if name == "gitlab" else settings.trackers.jira
        # The projects routing files into; the configured one when routing uses none of this tracker's.
        projects = sorted({d.project for d in dests if d.tracker == name}) or [p for p in [section.project] if p]
        if not section.url or not projects:
            click.echo(f"{name}: not configured (set {name.upper()}_URL and {name.upper()}_PROJECT)", err=True)
            failed = True
            continue
        try:
            if isinstance(tracker, GitLabTracker):
                for project in projects:
                    done = tracker.ensure_webhook(
                        Destination(tracker=name, project=project),
                        url=url,
                        secret=secret,
                        ssl_verification=not no_ssl_verification,
                        dry_run=dry_run,
                    )
                    hook = f" #{done.hook_id}" if done.hook_id else ""
                    click.echo(
                        f"gitlab {project}: {done.action} hook{hook} -> {url} (issues, confidential issues, "
                        f"comments, confidential comments; no push events; token from {variable})"
                    )
                    _warn_duplicates(f"gitlab {project}", done.duplicates)
            elif isinstance(tracker, JiraTracker):
                jql = _jira_project_filter(projects)
                done = tracker.ensure_webhook(url=url, secret=secret, jql=jql, dry_run=dry_run)
                hook = f" #{done.hook_id}" if done.hook_id else ""
                click.echo(
                    f"jira: {done.action} webhook{hook} -> {url} (issue created, issue updated, comment created; "
                    f"filter {jql!r}; secret from {variable})"
                )
                _warn_duplicates("jira", done.duplicates)
            else:
                click.echo(f"{name}: not configured", err=True)
                failed = True
        except BridgeError as exc:
            click.echo(f"{name}: {exc}", err=True)
            failed = True
    sys.exit(1 if failed else 0)


def _warn_duplicates(where: str, count: int) -> None:
    if count:
        click.echo(f"{where}: {count} more hook(s) with the same URL; delete them in the tracker", err=True)


def _jira_project_filter(keys: list[str]) -> str:
    quoted = [key if key.isalnum() else '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"' for key in keys]
    if len(quoted) == 1:
        return f"project = {quoted[0]}"
    return f"project in ({', '.join(quoted)})"


# --- inbound email --------------------------------------------------------------------------------


@cli.command()
@click.option(
    "--state",
    type=click.Choice(["pending", "ticket", "followup", "ignored", "held", "unsubscribed", "rejected"]),
    default=None,
    help="Only emails in this state (held: over the rate limit; rejected: unreadable).",
)
@click.option("--limit", default=50, show_default=True)
@click.option("--show-personal-data", is_flag=True, help="Show sender addresses unmasked.")
def emails(state: str | None, limit: int, show_personal_data: bool) -> None:
    """List inbound emails, newest first, with what became of each and why (``--state held`` for the
    ones over the rate limit, ``--state rejected`` for the unreadable; both can be processed again)."""
    from sqlalchemy import select

    from bridge.adapters.mail import mask_addresses
    from bridge.adapters.store.models import InboundEmail, Ticket

    def text(value: str | None) -> str:
        if not value:
            return "-"
        return value if show_personal_data else mask_addresses(value)

    deps = _deps()
    with deps.store.session() as session:
        query = select(InboundEmail, Ticket.tracking_id).outerjoin(Ticket, Ticket.id == InboundEmail.ticket_id)
        if state:
            query = query.where(InboundEmail.state == state)
        rows = session.execute(query.order_by(InboundEmail.id.desc()).limit(limit)).all()
    for email, tracking_id in rows:
        reason = f"  {text(email.reason)}" if email.reason else ""
        ticket_text = tracking_id or "-"
        click.echo(
            f"#{email.id} {email.state:<12} {email.source:<8} {ticket_text:<12} "
            f"{email.received_at:%Y-%m-%d %H:%M} {text(email.sender)}{reason}"
        )


def _reprocess(inbound_id: int, *, release: bool) -> None:
    from bridge.pipeline.intake.email.process import NotReplayable, reprocess

    deps = _deps()
    try:
        reprocess(deps.store, inbound_id, now=deps.clock(), release=release)
    except (LookupError, NotReplayable) as exc:
        click.echo(str(exc.args[0] if exc.args else exc), err=True)
        sys.exit(1)
    click.echo(f"#{inbound_id} queued for processing{' past the rate limit' if release else ''}")


@cli.command("email-release")
@click.argument("inbound_id", type=int)
def email_release(inbound_id: int) -> None:
    """Process a held email (over the sender's hourly limit) as a new report after all."""
    _reprocess(inbound_id, release=True)


@cli.command("email-replay")
@click.argument("inbound_id", type=int)
def email_replay(inbound_id: int) -> None:
    """Process a rejected, ignored or held email again from its stored original (e.g. after a fix)."""
    _reprocess(inbound_id, release=False)


# --- personal data (GDPR) -------------------------------------------------------------------------


def _operator() -> str:
    """``cli:<os user>``: who ran a personal-data command, for the audit log."""
    import getpass

    try:
        user = getpass.getuser()
    except Exception:  # no user name in the environment or the password database
        user = "unknown"
    return f"cli:{user}"


@cli.command("gdpr-export")
@click.argument("email")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), help="Write to this file (mode 600).")
def gdpr_export(email: str, output: str | None) -> None:
    """Everything held about the reporter EMAIL (case-insensitive) as one JSON document: tickets with
    history, follow-ups and notifications, and their emails. Audited (kind export)."""
    import json
    import os

    from bridge.bootstrap import personal_data

    result = personal_data(_deps()).export(email, actor=_operator())
    text = json.dumps(result.document, ensure_ascii=False, indent=2) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
    audit = result.audit
    click.echo(
        f"exported {audit.tickets} ticket(s), {audit.inbound_emails} email(s); audit reference {audit.reference}",
        err=True,
    )


@cli.command("gdpr-erase")
@click.argument("email")
@click.option("--redact-tracker", is_flag=True, help="Also replace the tracker issues' descriptions (queued jobs).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def gdpr_erase(email: str, redact_tracker: bool, yes: bool) -> None:
    """Erase the reporter EMAIL's personal data: the address becomes a random pseudonym, their texts
    are removed, their emails are no longer sent; tickets, statuses and tracker links stay. Audited."""
    from bridge.bootstrap import personal_data

    data = personal_data(_deps())
    found = data.preview(email)
    click.echo(
        f"{found.tickets} ticket(s), {found.followups} follow-up(s), {found.notifications} notification(s), "
        f"{found.inbound_emails} email(s) and {found.tracker_events} tracker comment(s) hold this reporter's data",
        err=True,
    )
    if not yes:
        what = " and redact their tracker issues" if redact_tracker else ""
        click.confirm(f"Erase them irreversibly{what}?", abort=True, err=True)
    audit = data.erase(email, actor=_operator(), redact_tracker=redact_tracker)
    redactions = f"; {audit.tracker_redactions} tracker redaction(s) queued" if redact_tracker else ""
    click.echo(f"erased {audit.tickets} ticket(s), {audit.inbound_emails} email(s){redactions}")
    click.echo(f"audit reference {audit.reference}")


@cli.command("gdpr-log")
@click.option("--limit", default=50, show_default=True)
def gdpr_log(limit: int) -> None:
    """The audit log of exports, erasures and retention purges, newest first (no personal data)."""
    deps = _deps()
    from bridge.pipeline.privacy.gdpr import AuditRecord

    click.echo(f"{'REFERENCE':<16} {'KIND':<9} {'WHEN':<23} {'WHO':<20} TICKETS EMAILS TRACKER")
    for row in deps.store.erasures(limit=limit):
        audit = AuditRecord.of(row)
        tracker = f"{audit.tracker_redactions_done}/{audit.tracker_redactions}" if audit.redact_tracker else "-"
        click.echo(
            f"{audit.reference:<16} {audit.kind:<9} {_when(audit.at):<23} {audit.actor:<20} "
            f"{audit.tickets:>7} {audit.inbound_emails:>6} {tracker}"
        )


@cli.command("retention")
def retention() -> None:
    """Run the retention purge now (the worker does it every hour): erase tickets closed longer than
    retention.personal_data_days ago, delete old emails that made no ticket."""
    from bridge.bootstrap import personal_data

    deps = _deps()
    days = deps.settings.retention.personal_data_days
    if days <= 0:
        click.echo("retention is off (retention.personal_data_days / RETENTION_DAYS is 0)")
        return
    audit = personal_data(deps).purge_expired(days=days)
    if audit is None:
        click.echo(f"nothing is older than {days} days")
        return
    click.echo(
        f"erased {audit.tickets} ticket(s) and {audit.inbound_emails} email(s) older than {days} days; "
        f"audit reference {audit.reference}"
    )


# --- numbers for support --------------------------------------------------------------------------


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> timedelta:
    from bridge.pipeline.reporting.stats import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@cli.command()
@click.option(
    "--since", "window", default="30d", show_default=True, callback=_duration, help="Window: 90m, 12h, 30d, 2w ..."
)
@click.option("--top", default=10, show_default=True, type=click.IntRange(0, 1000), help="Organisations listed.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def stats(window: timedelta, top: int, as_json: bool) -> None:
    """Reports in the window by category x severity and by channel, median time to triage and to
    resolve, reopen rate, and the organisations with the most reports (never an address). Read-only."""
    import json

    from bridge.adapters.store.db import make_engine
    from bridge.adapters.store.reporting import ReportingQueries
    from bridge.adapters.store.repository import Store
    from bridge.pipeline.reporting import stats as reporting

    settings, mappings = _configuration()
    clock = _clock()
    store = Store(make_engine(settings.database_url), clock=clock)  # only the database: no queue, no tracker
    until = clock()
    numbers = reporting.gather(
        ReportingQueries(store),
        since=until - window,
        until=until,
        category_names=mappings.categories.names,
        top=top,
    )
    if as_json:
        click.echo(json.dumps(reporting.as_json(numbers), ensure_ascii=False, indent=2))
    else:
        click.echo(reporting.as_text(numbers))


# --- tuning the mappings ----------------------------------------------------------------------------


@cli.command()
@click.option("--title", help="The report's title (an email's subject).")
@click.option("--description", default="", help="What the reporter wrote.")
@click.option("--impact", help="The chatbot's impact field.")
@click.option("--priority", help="The priority the reporter declared (any language).")
@click.option("--product", help="The chatbot's product field.")
@click.option("--organization", help="The reporter's organisation.")
@click.option("--locale", help="The reporter's language tag (da, en, da-DK ...).")
@click.option("--recipient", help="The address an email was sent to (category addresses).")
@click.option(
    "--event",
    "event_file",
    type=click.File("rb"),
    help="A chatbot report.created event (JSON), checked like the webhook.",
)
@click.option("--email", "email_file", type=click.File("rb"), help="A raw RFC 822 message, read like the email intake.")
@click.option("--online", is_flag=True, help="Ask the tracker for its sprints and their load (read-only).")
@click.option(
    "--lang", type=click.Choice(["en", "da"]), default="en", show_default=True, help="Language of the labels."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def explain(
    title: str | None,
    description: str,
    impact: str | None,
    priority: str | None,
    product: str | None,
    organization: str | None,
    locale: str | None,
    recipient: str | None,
    event_file: BinaryIO | None,
    email_file: BinaryIO | None,
    online: bool,
    lang: Lang,
    as_json: bool,
) -> None:
    """What the bridge would decide about a report, and every rule that fired: severity, kind, product-owner
    review, category, route, labels, sprint (with --online) and grouping. Files nothing and writes nothing."""
    import json

    from pydantic import ValidationError

    from bridge.pipeline.filing import explain as explaining
    from bridge.pipeline.filing.explain_output import as_json as explanation_json
    from bridge.pipeline.filing.explain_output import as_text as explanation_text
    from bridge.web.chatbot import field_errors

    given = [name for name, value in [("--title", title), ("--event", event_file), ("--email", email_file)] if value]
    if len(given) != 1:
        raise click.UsageError("give exactly one of --title (with the other fields), --event FILE or --email FILE")
    if title is not None and not title.strip():
        raise click.UsageError("--title must not be blank")
    if title is None and any([description, impact, priority, product, organization, locale, recipient]):
        raise click.UsageError("the report fields go with --title, not with --event or --email")

    settings, mappings = _configuration()
    try:
        if event_file is not None:
            candidate = explaining.candidate_from_event(json.loads(event_file.read()))
        elif email_file is not None:
            candidate = explaining.candidate_from_email(
                email_file.read(), rules=mappings.email, max_attachment_bytes=settings.intake.max_attachment_bytes
            )
        else:
            given_fields = {
                "title": title,
                "description": description,
                "impact": impact,
                "priority": priority,
                "product": product,
                "organization": organization,
                "locale": locale,
                "recipient": recipient,
            }
            candidate = explaining.ExplainFields.model_validate(
                {name: value for name, value in given_fields.items() if value is not None}
            ).candidate()
    except (ValueError, RecursionError) as exc:  # JSON, a schema (the event's or the fields'), a follow-up event
        if isinstance(exc, ValidationError):
            what = "the event does not match the chatbot schema" if event_file else "invalid report fields"
            problems = [f"{error['field']}: {error['message']}" for error in field_errors(exc)]
            message = f"{what}:\n  " + "\n  ".join(problems)
        else:
            message = f"cannot read the event: {exc}"
        click.echo(message, err=True)
        sys.exit(2)

    sprints: explaining.SprintSource = explaining.NoSprints()
    if online:
        trackers = build_trackers(settings, trackers_in_use(mappings.routing, settings))
        sprints = explaining.OnlineSprints(trackers=trackers, mappings=mappings, settings=settings, clock=_clock())
    explanation = explaining.explain(candidate, mappings=mappings, settings=settings, sprints=sprints)
    if as_json:
        click.echo(json.dumps(explanation_json(explanation, lang=lang), ensure_ascii=False, indent=2))
    else:
        click.echo(explanation_text(explanation, lang=lang))
    failed = explanation.sprint is not None and explanation.sprint.error is not None
    sys.exit(1 if online and failed else 0)
