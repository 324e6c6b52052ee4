"""Operator commands: ``python -m bridge <command>`` (also ``flask --app wsgi bridge <command>``).

They read the same ``config.yaml`` as the service and work without the web process.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click

from bridge.adapters.store.db import upgrade
from bridge.bootstrap import Deps, build_deps, build_trackers, load_configuration
from bridge.config import Settings
from bridge.errors import ConfigError
from bridge.mappings import Mappings
from bridge.pipeline.route import destinations, trackers_in_use


def _configuration() -> tuple[Settings, Mappings]:
    try:
        return load_configuration()
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)


def _deps() -> Deps:
    settings, mappings = _configuration()
    return build_deps(settings, mappings)


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
    from bridge.pipeline.plan import SprintPlanner

    trackers = build_trackers(settings, trackers_in_use(mappings.routing, settings))
    planner = SprintPlanner(
        policy=mappings.sprints,
        trackers=trackers,
        bugfix_label=str,
        timezone=settings.timezone,
        clock=lambda: datetime.now(UTC),
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
    deps = _deps()
    ids = list(job_ids)
    if all_dead:
        ids += [job.id for job in deps.store.jobs(state="dead", limit=100_000)]
    if not ids:
        raise click.UsageError("name job ids or pass --all-dead")
    for job_id in ids:
        if deps.store.replay(job_id):
            deps.queue.enqueue(job_id)
            click.echo(f"#{job_id} queued again")
        else:
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
