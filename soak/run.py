"""One soak run: start the stack, send the reports, drive the developer actions, inject the chaos,
wait until everything has settled, prove what survived (``soak/verify.py``) and report.

Timeline: reports go out at ``rate``/s from t=0; the chaos (``soak/chaos.py``) runs from t=0 until
``chaos_tail`` s after the last report is due; developer action chains (``soak/acts.py``) and
webhook storms (``soak/storms.py``) start as soon as their issue is filed and its emails have
arrived, and go on after the chaos. Then every
process is made to run, the faults are cleared, and the run waits — against ``settle_timeout`` —
until every chain has ended, no job is pending or running and the sandbox has no webhook left to
send (twice in a row, a few seconds apart).
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.databases import drop_pg_schema, flush_redis, new_pg_schema
from harness.process import HarnessError
from soak.acts import ActDriver
from soak.chaos import Chaos, plan_chaos
from soak.db import BridgeDb
from soak.load import Planned, Sender, plan_reports
from soak.observe import SandboxObserver
from soak.stack import MISSING_PROJECT, SoakStack
from soak.storms import StormDriver
from soak.verify import verify

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "soak" / "results"


@dataclass(frozen=True)
class SoakSettings:
    backend: str = "sqlite"
    """``sqlite`` (the embedded defaults) or ``postgres`` (PostgreSQL + Redis)."""
    reports: int = 2000
    rate: float = 8.0
    """Reports sent per second (what the worker keeps up with on 2 cores, between the faults)."""
    email_fraction: float = 0.25
    jira_fraction: float = 0.2
    permanent: int = 6
    """Reports routed to the GitLab project that does not exist: each must end as one dead letter."""
    chain_fraction: float = 0.3
    """Share of the reports (of the first three quarters) whose issue gets a developer action chain."""
    nul_mails: int = 27
    """Emails with a NUL (soak/inbound.py): each placement in turn, through raw, Postmark and Mailgun."""
    storms: int = 8
    """Issues that get a webhook storm (soak/storms.py), GitLab and Jira in turn."""
    storm_copies: int = 3
    """Extra posts of each webhook a storm makes, each under a fresh delivery id."""
    workers: int | None = None
    """Worker processes; None: two on PostgreSQL (jobs of one ticket taken by either), one on SQLite."""
    seed: int = 20261125
    small: bool = False
    debounce_seconds: float = 1.0
    reconcile_minutes: int = 2
    """delivery.reconcile_minutes: the lost webhooks' safety net (each run re-syncs every ticket changed
    in the last interval + 2 minutes, so 1 minute triples the sync jobs)."""
    worker_threads: int = 8
    """queue.worker_threads: jobs mostly wait on the (slowed) tracker; 8 keeps up with ``rate``."""
    chaos_tail: float = 20.0
    settle_timeout: float = 300.0
    gate_timeout: float = 240.0
    """How long a chain waits for the email of its last transition before it counts as stalled."""
    send_threads: int = 16
    give_up_after: float = 120.0
    """A report not accepted after this long is given up (and fails the run)."""
    pg_base_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    redis_url: str = "redis://127.0.0.1:6379/13"
    root: Path | None = None

    @classmethod
    def from_env(cls, *, small: bool = False, **overrides: Any) -> SoakSettings:
        env = os.environ
        base = cls.small_defaults() if small else cls()
        values: dict[str, Any] = {
            "backend": env.get("SOAK_BACKEND", base.backend),
            "reports": int(env.get("SOAK_REPORTS", base.reports)),
            "rate": float(env.get("SOAK_RATE", base.rate)),
            "seed": int(env.get("SOAK_SEED", base.seed)),
            "email_fraction": float(env.get("SOAK_EMAIL_FRACTION", base.email_fraction)),
            "worker_threads": int(env.get("SOAK_WORKER_THREADS", base.worker_threads)),
            "reconcile_minutes": int(env.get("SOAK_RECONCILE_MINUTES", base.reconcile_minutes)),
            "nul_mails": int(env.get("SOAK_NUL_MAILS", base.nul_mails)),
            "storms": int(env.get("SOAK_STORMS", base.storms)),
            "workers": int(env["SOAK_WORKERS"]) if env.get("SOAK_WORKERS") else base.workers,
            "pg_base_url": env.get("SOAK_DATABASE_URL", env.get("TEST_DATABASE_URL", base.pg_base_url)),
            "redis_url": env.get("SOAK_REDIS_URL", base.redis_url),
        }
        values.update(overrides)
        return replace(base, **values)

    @classmethod
    def small_defaults(cls) -> SoakSettings:
        return cls(
            reports=60,
            rate=6.0,
            permanent=2,
            email_fraction=0.35,  # room for the NUL mails and emails after them
            chain_fraction=0.4,
            nul_mails=9,  # each placement once
            storms=2,
            small=True,
            reconcile_minutes=1,  # a webhook lost while the web is down is found within the short run
            chaos_tail=35.0,  # 45 s of chaos: see soak.chaos._small_plan
            # Typically settled ~40 s after the chaos; a lost wake-up late in the run costs up to
            # another sweep cycle (30 s grace + 60 s).
            settle_timeout=130.0,
            gate_timeout=130.0,
            send_threads=8,
            give_up_after=60.0,
        )


@dataclass
class Progress:
    label: str = ""
    """The backend: two soaks may run side by side (the small variant)."""
    started: float = field(default_factory=time.time)
    lines: list[str] = field(default_factory=list)

    def say(self, text: str) -> None:
        line = f"[soak {self.label} +{time.time() - self.started:6.1f}s] {text}"
        self.lines.append(line)
        print(line, flush=True)


def run_soak(settings: SoakSettings) -> dict[str, Any]:
    """Run one soak; returns the result (``result["failures"]`` is empty when everything held)."""
    root = settings.root or Path(tempfile.mkdtemp(prefix=f"bridge-soak-{settings.backend}-"))
    root.mkdir(parents=True, exist_ok=True)
    progress = Progress(label=settings.backend)
    schema: str | None = None
    database_url = redis_url = None
    if settings.backend == "postgres":
        database_url, schema = new_pg_schema(settings.pg_base_url, prefix="soak")
        redis_url = settings.redis_url
        flush_redis(redis_url)
    elif settings.backend != "sqlite":
        raise ValueError(f"SOAK_BACKEND must be sqlite or postgres, not {settings.backend!r}")
    try:
        result = _run(settings, root, database_url, redis_url, progress)
    finally:
        if schema is not None:
            drop_pg_schema(settings.pg_base_url, schema)
    result["seconds"] = round(time.time() - progress.started, 1)
    result.setdefault("failures", [])
    return result


def _run(
    settings: SoakSettings, root: Path, database_url: str | None, redis_url: str | None, progress: Progress
) -> dict[str, Any]:
    rng = random.Random(settings.seed)
    run_id = f"{settings.seed % 100000:05d}{rng.randrange(36**3):04x}"
    (root / "stack").mkdir(parents=True, exist_ok=True)
    workers = settings.workers or (2 if settings.backend == "postgres" else 1)
    stack = SoakStack(
        root / "stack",
        database_url=database_url,
        redis_url=redis_url,
        debounce_seconds=settings.debounce_seconds,
        sandbox_seed=settings.seed,
        reconcile_minutes=settings.reconcile_minutes,
        worker_threads=settings.worker_threads,
        workers=workers,
    )
    result: dict[str, Any] = {
        "backend": settings.backend,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(settings).items()},
        "run_dir": str(root),
    }
    engine = None
    try:
        progress.say(f"starting the stack in {root} ({settings.backend})")
        stack.start()
        engine = stack.engine()
        db = BridgeDb(engine)
        result.update(_soak(settings, stack, db, rng, run_id, progress))
        result["workers"] = workers
    except BaseException as exc:
        result.setdefault("failures", []).append(f"the soak itself failed: {type(exc).__name__}: {exc}")
        result["process_logs"] = stack.tails(30)
        if not isinstance(exc, Exception):
            raise
    finally:
        stack.stop()
        if engine is not None:
            engine.dispose()
    if result.get("failures"):
        result.setdefault("process_logs_dir", str(stack.root / "logs"))
    return result


def _soak(
    settings: SoakSettings, stack: SoakStack, db: BridgeDb, rng: random.Random, run_id: str, progress: Progress
) -> dict[str, Any]:
    plans = plan_reports(
        settings.reports,
        rng=rng,
        run_id=run_id,
        email_fraction=settings.email_fraction,
        jira_fraction=settings.jira_fraction,
        permanent=settings.permanent,
        chain_fraction=settings.chain_fraction,
        nul_mails=settings.nul_mails,
        storms=settings.storms,
    )
    load_seconds = settings.reports / settings.rate
    chaos_plan = plan_chaos(rng, load_seconds + settings.chaos_tail, small=settings.small, create_rate=settings.rate)
    observer = SandboxObserver(stack.sandbox_url, missing_project=MISSING_PROJECT)
    acts = ActDriver(stack, db, plans, debounce=settings.debounce_seconds, gate_timeout=settings.gate_timeout)
    storms = StormDriver(stack, db, plans, copies=settings.storm_copies, give_up_after=settings.give_up_after)
    sender = Sender(
        stack.web_url, threads=settings.send_threads, give_up_after=settings.give_up_after, seed=rng.randrange(2**32)
    )
    chaos = Chaos(stack, chaos_plan, seed=rng.randrange(2**32))
    stop = threading.Event()
    ticker = threading.Thread(target=_tick, args=(stack, db, plans, acts, progress, stop), daemon=True)

    progress.say(
        f"{settings.reports} reports at {settings.rate}/s ({load_seconds:.0f} s), "
        f"chaos for {chaos_plan.duration:.0f} s, "
        f"{sum(1 for p in plans if p.chain)} action chains, {len(storms.storms)} webhook storms, "
        f"{sum(1 for p in plans if p.nul)} NUL mails, {settings.permanent} reports to {MISSING_PROJECT}, "
        f"{len(stack.workers)} worker process(es)"
    )
    observer.start()
    acts.start()
    storms.start()
    ticker.start()
    chaos.start()
    timings: dict[str, float] = {}
    try:
        sender.send_all(plans, rate=settings.rate, stop=stop)
        timings["load_done"] = round(time.time() - progress.started, 1)
        progress.say("every report sent (and retried until accepted)")
        chaos.wait()
        timings["chaos_done"] = round(time.time() - progress.started, 1)
        progress.say("chaos over: every process up, faults cleared, SMTP up; settling")
        chaos.faults.clear()
        stack.ensure_running()
        settled_at = _settle(stack, db, acts, storms, observer, settings.settle_timeout, progress)
        timings["settled"] = round(time.time() - progress.started, 1)
    finally:
        stop.set()
        chaos.stop()
        sender.close()
        acts.stop()
        storms.stop()
        observer.stop()
        ticker.join(timeout=10)
    progress.say("verifying")
    try:
        rejected_listing: str | None = stack.bridge_cli("emails", "--state", "rejected", "--limit", "100000")
    except (HarnessError, OSError) as exc:
        progress.say(f"python -m bridge emails failed: {exc}")
        rejected_listing = None
    verdict = verify(
        plans,
        db,
        stack.state(),
        stack.smtp.snapshot(),
        settled_at=settled_at,
        run_id=run_id,
        rejected_listing=rejected_listing,
    )
    logs = [worker.stderr_path for worker in stack.workers]
    verdict.survived["latencies"] = db.latencies()
    verdict.survived["blocked_job_runs"] = sum(_count_in_log(path, '"job.blocked"') for path in logs)
    verdict.survived["sweep_requeued_jobs"] = sum(_sum_in_log(path, "sweep.requeued", "count") for path in logs)
    verdict.survived["sprint_refusals_replanned"] = sum(_count_in_log(path, '"plan.replanned"') for path in logs)
    failures = list(verdict.failures)
    if settled_at is None:
        failures.insert(0, f"did not settle within {settings.settle_timeout:.0f} s")
    failures += [f"chaos: {e}" for e in chaos.log.errors]
    if acts.error is not None:
        failures.append(f"the action driver crashed: {acts.error!r}")
    if storms.error is not None:
        failures.append(f"the storm driver crashed: {storms.error!r}")
    injected = _injected(stack, chaos, observer, sender, acts, storms)
    return {
        "timings_s": timings,
        "injected": injected,
        "survived": verdict.survived,
        "failures": failures,
        "chaos_plan": chaos_plan.to_json(),
        "chaos_events": chaos.log.events,
        "reports": [
            _report_json(p)
            for p in plans
            if p.chain or p.storm or p.nul or p.permanent or p.attempts > 1 or not p.accepted
        ],
    }


def _tick(
    stack: SoakStack, db: BridgeDb, plans: list[Planned], acts: ActDriver, progress: Progress, stop: threading.Event
) -> None:
    while not stop.wait(10):
        try:
            jobs = str(db.job_counts())
        except Exception as exc:  # SQLite busy for a moment: say so in this line
            jobs = f"? ({str(exc)[:40]})"
        accepted = sum(1 for p in plans if p.accepted)
        chains = acts.chains
        complete = sum(1 for p in chains if p.chain_state == "complete")
        progress.say(
            f"accepted {accepted}/{len(plans)}, jobs {jobs}, emails {len(stack.smtp.seen)}, "
            f"acts {acts.stats.acts} (chains complete {complete}/{len(chains)}), "
            f"worker {'up' if stack.workers_alive() else 'DOWN'}, web {'up' if stack.web.alive() else 'DOWN'}, "
            f"smtp {'up' if stack.smtp.up else 'DOWN'}"
        )


def _count_in_log(path: Path, needle: str) -> int:
    if not path.exists():
        return 0
    with path.open(errors="replace") as handle:
        return sum(1 for line in handle if needle in line)


def _sum_in_log(path: Path, event: str, field_name: str) -> int:
    """Sum of ``field_name`` over the JSON log lines of ``event``."""
    total = 0
    if not path.exists():
        return 0
    with path.open(errors="replace") as handle:
        for line in handle:
            if f'"{event}"' not in line:
                continue
            try:
                total += int(json.loads(line).get(field_name, 0))
            except (ValueError, TypeError):
                continue
    return total


def _settle(
    stack: SoakStack,
    db: BridgeDb,
    acts: ActDriver,
    storms: StormDriver,
    observer: SandboxObserver,
    timeout: float,
    progress: Progress,
) -> float | None:
    """Wait until every chain has ended, every storm has fired, no job is pending or running and no
    webhook is left to send, twice in a row 3 s apart; returns that moment (epoch seconds), or None at
    the deadline."""
    deadline = time.monotonic() + timeout
    calm = 0
    first_calm = 0.0
    while time.monotonic() < deadline:
        time.sleep(3)
        try:
            counts = db.job_counts()
        except Exception:
            calm = 0
            continue
        busy = counts.get("pending", 0) + counts.get("running", 0)
        open_work = len(acts.open_chains()) + len(storms.open_storms())
        idle = busy == 0 and open_work == 0 and observer.poll_webhooks()
        calm = calm + 1 if idle else 0
        if calm == 1:
            first_calm = time.time()
        if calm >= 2:
            progress.say("settled: no job pending or running, every chain ended, no webhook left to send")
            return first_calm
        if not (stack.workers_alive() and stack.web.alive()):
            stack.ensure_running()
    return None


def _injected(
    stack: SoakStack, chaos: Chaos, observer: SandboxObserver, sender: Sender, acts: ActDriver, storms: StormDriver
) -> dict[str, Any]:
    plan = chaos.plan
    log = chaos.log
    seen = observer.summary()
    downtimes = stack.smtp.downtimes
    return {
        "worker_sigkills": log.count("worker SIGKILL"),
        "web_sigkills_whole": log.count("web SIGKILL (master and workers)"),
        "web_worker_sigkills": log.count("web worker SIGKILL"),
        "web_restarts": stack.web.restarts,
        "smtp_down_windows": len(downtimes),
        "smtp_down_seconds": round(sum(b - a for a, b in downtimes), 1),
        "latency_ms": plan.latency_ms,
        "windows_5xx": len(plan.windows_5xx),
        "windows_5xx_seconds": round(sum(s for _, s, _ in plan.windows_5xx), 1),
        "outage_seconds": plan.outage[1],
        "rate_limit_window_seconds": plan.rate_limit[1],
        "rate_limit_creates_per_minute": plan.rate_limit[2],
        "create_then_502_budget": plan.create_then_502[1],
        "webhook_delay_ms": plan.webhook_delay_ms,
        **seen,
        "load_connection_errors": sender.stats.connection_errors,
        "load_timeouts": sender.stats.timeouts,
        "load_5xx_answers": sender.stats.server_errors,
        "load_reports_retried": sender.stats.retried_reports,
        "load_retries_answered_duplicate": sender.stats.duplicate_answers,
        "developer_actions": acts.stats.acts,
        "developer_actions_refused": acts.stats.failed,
        "worker_processes": len(stack.workers),
        "jira_sprints_closed_mid_outage": log.count("jira sprint closed"),
        "jira_sprint_closes_after_create": plan.jira_close_after_create[1],
        "storms_fired": storms.stats.storms,
        "storm_webhook_posts": storms.stats.posts,
        "storm_webhook_post_retries": storms.stats.post_retries,
        "storm_sandbox_deliveries": storms.stats.sandbox_deliveries,
    }


def _report_json(p: Planned) -> dict[str, Any]:
    return {
        "n": p.n,
        "channel": p.channel,
        "key": p.key,
        "tracking_id": p.tracking_id,
        "tracker": p.tracker,
        "answers": p.answers,
        "chain": p.chain,
        "chain_state": p.chain_state,
        "chain_note": p.chain_note,
        "acts": [a for a, _ in p.acts_done],
        "provider": p.provider,
        "nul": p.nul,
        "intake": p.intake_status,
        "storm": p.storm,
        "storm_state": p.storm_state,
        "storm_note": p.storm_note,
        "storm_posts": p.storm_posts,
    }


# --- the table --------------------------------------------------------------------------------------------

Keys = str | tuple[str, ...] | None
"""The result key(s) a table row shows; None for a row computed apart."""

_INJECTED_ROWS: list[tuple[str, Keys]] = [
    ("worker SIGKILLs (restarted)", "worker_sigkills"),
    ("web SIGKILLs: master+workers (restarted)", "web_sigkills_whole"),
    ("web SIGKILLs: one gunicorn worker", "web_worker_sigkills"),
    ("SMTP server down (windows / seconds)", ("smtp_down_windows", "smtp_down_seconds")),
    ("tracker latency on every call (ms)", "latency_ms"),
    ("5xx windows (count / seconds)", ("windows_5xx", "windows_5xx_seconds")),
    ("full outage (seconds)", "outage_seconds"),
    ("rate limit window (s / creates per min)", ("rate_limit_window_seconds", "rate_limit_creates_per_minute")),
    ("tracker API requests seen", "tracker_requests"),
    ("  answered 429 (Retry-After)", "answers_429"),
    ("  answered 5xx", "answers_5xx"),
    ("  created but answered 502", "created_but_answered_502"),
    ("  refused 404 (missing project)", "missing_project_404"),
    ("webhook deliveries (sandbox)", "webhook_deliveries"),
    ("  duplicate copies", "webhook_duplicate_copies"),
    ("  delivered late (>= 0.2 s)", "webhook_delayed"),
    ("  retried / failed (web down)", ("webhook_retried", "webhook_failed")),
    ("intake: connection errors / 5xx / timeouts", ("load_connection_errors", "load_5xx_answers", "load_timeouts")),
    ("intake: reports retried (same key)", "load_reports_retried"),
    ("  retry answered 'already stored'", "load_retries_answered_duplicate"),
    ("developer actions (refused)", ("developer_actions", "developer_actions_refused")),
    ("worker processes", "worker_processes"),
    (
        "Jira sprint closed mid-outage / after a create",
        ("jira_sprints_closed_mid_outage", "jira_sprint_closes_after_create"),
    ),
    ("  Jira sprint calls (refused: sprint closed)", ("jira_sprint_calls", "jira_sprint_calls_refused")),
    ("webhook storms fired (posts / retried)", ("storms_fired", "storm_webhook_posts", "storm_webhook_post_retries")),
]
_SURVIVED_ROWS: list[tuple[str, Keys]] = [
    ("reports accepted / planned", ("reports_accepted", "reports_planned")),
    ("tickets", "tickets"),
    ("tracker issues", "issues"),
    ("  duplicate issues", "duplicate_issues"),
    ("  reports without issue (lost)", "reports_without_issue"),
    ("  reports without ticket (lost)", "lost_reports"),
    ("status transitions (history)", "status_transitions"),
    ("status emails (distinct)", "status_emails"),
    ("acknowledgement emails (distinct)", "ack_emails"),
    ("  duplicate / missing emails", ("duplicate_emails", "missing_emails")),
    ("  resends with the same Message-ID", "email_resends_same_message_id"),
    ("action chains complete / total", None),
    ("NUL mails: filed / set aside / sent", ("nul_mails_filed", "nul_mails_set_aside", "nul_mails")),
    ("  emails after a NUL mail filed", "emails_after_a_nul_mail_filed"),
    ("issues re-planned (sprint refused)", "sprint_refusals_replanned"),
    ("storms ending in the issue's status", None),
    ("  storm comment emails (in order)", "storm_comment_emails"),
    ("lanes with a job finished out of order", "lane_disorders"),
    ("dead letters / expected", ("dead_letters", "dead_letters_expected")),
    ("jobs left pending or running", "jobs_left_pending_or_running"),
    ("  reconcile re-syncs queued after settling", "reconcile_syncs_queued_after_settle"),
    ("job attempts (all jobs)", "job_attempts"),
    ("  blocked runs / jobs the sweep re-queued", ("blocked_job_runs", "sweep_requeued_jobs")),
]


def _cell(section: dict[str, Any], keys: Keys) -> str:
    if keys is None:
        return "-"
    if isinstance(keys, tuple):
        return " / ".join(str(section.get(k, "-")) for k in keys)
    return str(section.get(keys, "-"))


def format_table(result: dict[str, Any]) -> str:
    injected = result.get("injected", {})
    survived = result.get("survived", {})
    lines = [f"== soak on {result['backend']}: {result.get('seconds', '?')} s, run dir {result.get('run_dir')} =="]
    lines.append(f"{'INJECTED':<44} {'':>12}")
    for label, keys in _INJECTED_ROWS:
        lines.append(f"  {label:<42} {_cell(injected, keys):>14}")
    lines.append(f"{'SURVIVED':<44}")
    for label, keys in _SURVIVED_ROWS:
        if label.startswith("action chains"):
            states = survived.get("chain_states", {})
            value = f"{states.get('complete', 0)} / {survived.get('chains', '-')}"
        elif label.startswith("storms ending"):
            value = f"{survived.get('storms_in_final_status', '-')} / {survived.get('storms', '-')}"
        else:
            value = _cell(survived, keys)
        lines.append(f"  {label:<42} {value:>14}")
    failures = result.get("failures", [])
    lines.append("RESULT: " + ("PASS" if not failures else f"FAIL ({len(failures)})"))
    lines += [f"  - {f}" for f in failures]
    return "\n".join(lines)


def write_results(results: list[dict[str, Any]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"runs": results}, indent=2, default=str))
    return path
