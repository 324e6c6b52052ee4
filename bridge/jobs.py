"""Running one job: claim, keep per-ticket order, retry with backoff, or dead-letter.

Every job ends ``done`` or ``dead`` with its last error; nothing is retried forever
and nothing is dropped.

A claim holds the job under a lease (``delivery.lease_seconds``) and a claim token. While the job
runs, the worker process's heartbeat (``JobRunner.heartbeat``) renews the leases of all the jobs it
holds; a killed worker's leases run out, and the next heartbeat of any worker takes its jobs back.
The outcome is recorded only under the claim token: a run whose job was taken over records nothing.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from bridge import metrics
from bridge.adapters.store.models import Job
from bridge.adapters.store.repository import LeaseLost, Store
from bridge.config import DeliverySettings
from bridge.errors import PermanentError, RetryableError
from bridge.logs import new_request_id, request_id

log = logging.getLogger(__name__)

Handler = Callable[[Job], None]
Enqueue = Callable[[int, float], None]

SWEEP_GRACE = timedelta(seconds=30)
HEARTBEATS_PER_LEASE = 8
"""Renewals per lease: a worker's leases survive seven missed or late heartbeats (a slow database),
and a dead worker's jobs are taken back at most one heartbeat after their lease ran out."""


def backoff_seconds(
    attempt: int,
    *,
    retry_after: float | None,
    base: float,
    cap: float,
    rng: Callable[[], float] = random.random,
) -> float:
    """Delay before the next attempt: the server's ``Retry-After`` when given (plus a little
    jitter so a burst does not return at the same instant), else capped exponential backoff
    with equal jitter."""
    if retry_after is not None:
        return retry_after + rng() * min(1.0, 0.1 * retry_after)
    exp = min(cap, base * 2.0 ** min(max(0, attempt - 1), 32))  # bounded exponent: no overflow
    return exp / 2 + rng() * exp / 2


class JobRunner:
    def __init__(
        self,
        *,
        store: Store,
        handlers: Mapping[str, Handler],
        delivery: DeliverySettings,
        enqueue: Enqueue,
        clock: Callable[[], datetime],
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._handlers = handlers
        self._delivery = delivery
        self._enqueue = enqueue
        self._now = clock
        self._rng = rng
        self._lease = timedelta(seconds=delivery.lease_seconds)
        self._held: dict[int, str] = {}
        """Job id -> claim token of the jobs this process runs now (its worker threads')."""
        self._held_lock = threading.Lock()

    @property
    def heartbeat_seconds(self) -> float:
        """How often the worker process calls ``heartbeat``."""
        return self._delivery.lease_seconds / HEARTBEATS_PER_LEASE

    def run(self, job_id: int) -> None:
        job = self._store.claim(job_id, lease=self._lease)
        if job is None or job.claim_token is None:
            return  # not due yet, already finished, or another worker holds it
        claim = job.claim_token
        with self._held_lock:
            self._held[job.id] = claim
        # The request that created the job (or a fresh id): on every log line of this run and on
        # the jobs it creates.
        token = request_id.set(job.request_id or new_request_id())
        try:
            self._run(job, claim)
        except LeaseLost:
            # Taken over after the lease ran out (this process stalled or lost the database): the
            # run that holds it now records the outcome; its steps are idempotent.
            log.warning("job.lease_lost", extra={"job_id": job.id, "kind": job.kind, "at": "finish"})
            metrics.job_run(job.kind, "lease_lost")
        finally:
            with self._held_lock:
                if self._held.get(job.id) == claim:
                    del self._held[job.id]
            request_id.reset(token)

    def heartbeat(self) -> None:
        """Renew the leases of the jobs this process runs (one UPDATE), then take back the jobs of
        workers that stopped renewing theirs. Called every ``heartbeat_seconds`` by the worker."""
        with self._held_lock:
            held = dict(self._held)
        if held:
            renewed = self._store.renew_leases(held, lease=self._lease)
            for job_id in held.keys() - renewed:
                with self._held_lock:
                    if self._held.get(job_id) != held[job_id]:
                        continue  # it ended between the snapshot and the renewal
                    del self._held[job_id]  # lost: stop renewing it; its finish will be refused
                log.warning("job.lease_lost", extra={"job_id": job_id, "at": "renewal"})
        self.recover()

    def recover(self) -> int:
        """Queue the jobs whose lease ran out (their worker was killed or stopped renewing)."""
        job_ids = self._store.release_expired_leases()
        for job_id in job_ids:
            self._enqueue(job_id, 0)
        if job_ids:
            log.warning("job.lease_expired", extra={"count": len(job_ids), "job_ids": job_ids[:20]})
        return len(job_ids)

    def _run(self, job: Job, claim: str) -> None:
        blocker = self._store.blocking_job(job)
        if blocker is not None:
            # The older job wakes this one when it ends; the sweep is the fallback if that is lost.
            self._store.reschedule(job.id, at=job.next_attempt_at, error=None, count_attempt=False, claim_token=claim)
            log.info("job.blocked", extra={"job_id": job.id, "kind": job.kind, "blocked_by": blocker})
            metrics.job_run(job.kind, "blocked")
            if self._store.blocking_job(job) is None:
                # The older job ended while this one was parking: its wake-up found nothing pending.
                self._enqueue(job.id, 0)
            return
        handler = self._handlers.get(job.kind)
        if handler is None:
            self._dead(job, claim, f"no handler for job kind {job.kind!r}")
            return
        started = time.perf_counter()
        try:
            handler(job)
        except RetryableError as exc:
            self._retry(job, claim, str(exc), exc.retry_after, started=started)
        except (PermanentError, LookupError) as exc:
            self._dead(job, claim, str(exc), started=started)
        except Exception as exc:
            # A bug, not the tracker: keep the job and retry, so a fixed deploy can finish it.
            log.exception("job.crashed", extra={"job_id": job.id, "kind": job.kind})
            self._retry(job, claim, f"unexpected {type(exc).__name__}: {exc}", None, started=started)
        else:
            duration = time.perf_counter() - started
            next_job = self._store.finish(job.id, claim_token=claim)
            log.info(
                "job.done",
                extra={"job_id": job.id, "kind": job.kind, "attempts": job.attempts, "duration_s": round(duration, 3)},
            )
            metrics.job_run(job.kind, "done", duration)
            self._wake(next_job)

    def sweep(self) -> int:
        """Re-queue due jobs the queue lost (crash between commit and enqueue, killed worker)."""
        recovered = self.recover()
        job_ids = self._store.jobs_to_sweep(grace=SWEEP_GRACE)
        for job_id in job_ids:
            self._enqueue(job_id, 0)
        if job_ids:
            log.info("sweep.requeued", extra={"count": len(job_ids)})
        return recovered + len(job_ids)

    def _retry(self, job: Job, claim: str, error: str, retry_after: float | None, *, started: float) -> None:
        delay = backoff_seconds(
            job.attempts,
            retry_after=retry_after,
            base=self._delivery.backoff_base_seconds,
            cap=self._delivery.backoff_max_seconds,
            rng=self._rng,
        )
        now = self._now()
        horizon = job.retry_from + timedelta(hours=self._delivery.retry_horizon_hours)
        if now + timedelta(seconds=delay) > horizon:
            hours = (now - job.retry_from).total_seconds() / 3600
            self._dead(
                job, claim, f"gave up after {job.attempts} attempts over {hours:.1f} h: {error}", started=started
            )
            return
        self._store.reschedule(job.id, delay=delay, error=error, claim_token=claim)
        metrics.job_run(job.kind, "retry", time.perf_counter() - started)
        log.warning(
            "job.retry",
            extra={
                "job_id": job.id,
                "kind": job.kind,
                "attempt": job.attempts,
                "delay_s": round(delay, 2),
                "error": error,
            },
        )
        self._enqueue(job.id, delay)

    def _dead(self, job: Job, claim: str, reason: str, *, started: float | None = None) -> None:
        next_job = self._store.finish(job.id, dead_reason=reason, claim_token=claim)
        log.error("job.dead", extra={"job_id": job.id, "kind": job.kind, "reason": reason})
        metrics.job_run(job.kind, "dead", None if started is None else time.perf_counter() - started)
        self._wake(next_job)

    def _wake(self, next_job_id: int | None) -> None:
        if next_job_id is not None:
            self._enqueue(next_job_id, 0)
