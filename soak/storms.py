"""Webhook storms: many tracker webhooks about ONE ticket, accepted by the bridge at the same moment.

A storm waits until its issue is filed and the reporter has the acknowledgement and "triaged"
emails. Then, as fast as the sandbox answers, the developer comments, closes, reopens and closes
again (``STORMS``); every change makes the sandbox send its webhooks (late and twice, during the
chaos), and the storm posts each of those deliveries ``copies`` more times itself, each copy under
a fresh delivery id (as a second hook on the same project would: a group hook beside the project
hook), all released together from one thread each. So the bridge stores many webhooks of one ticket
in concurrent transactions, each adding jobs to the ticket's lane.

What must hold (``soak/verify.py``): the lane's jobs ran in the order of their ids (each finished
before the next), the ticket ends in the status of the issue's last change, and the reporter gets
each public comment once, in the order the bridge accepted the webhooks (the order of each comment's
first ``relay_comment`` job), with the status emails telling transitions of the history in order,
the last one the final status. With a lane whose ids commit out of order (PostgreSQL without the
per-ticket lock), a newer job runs before an older one and the comments are mailed out of order.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests

from harness.stack import JIRA_WEBHOOK_SECRET
from soak.db import BridgeDb
from soak.stack import SoakStack

if TYPE_CHECKING:
    from soak.load import Planned

StormAct = tuple[str, str | None]
"""(``/_sandbox/act`` action, resolution for ``close``); ``comment`` gets a numbered text."""
Wave = tuple[StormAct, ...]
"""Changes made back to back; their webhooks are then posted all at once."""

STORMS: dict[str, tuple[Wave, ...]] = {
    "flip-resolved": (
        (("comment", None), ("comment", None)),
        (("close", "fixed"), ("comment", None)),
        (("comment", None), ("comment", None)),
        (("reopen", None), ("comment", None)),
        (("comment", None), ("comment", None)),
        (("close", "fixed"),),
    ),
    "flip-declined": (
        (("comment", None), ("progress", None)),
        (("comment", None), ("comment", None)),
        (("close", "fixed"), ("reopen", None)),
        (("comment", None), ("comment", None)),
        (("comment", None), ("close", "wontfix")),
    ),
}
FINAL_STATUS = {"flip-resolved": "resolved", "flip-declined": "declined"}
"""The reporter-facing status of the issue's last change (mappings/status.yaml), for either tracker."""

MARKER = "#reporter"
"""Jira Software relays only marked comments (mappings/status.yaml); GitLab relays every public one.
The bridge strips the marker."""


def comment_text(tracking_id: str, number: int) -> str:
    return f"Storm note {number} on {tracking_id}: we are looking into it."


def subject_of(tracker: str, key: str) -> str:
    """The sandbox's name for an issue in its delivery log (``subject``)."""
    return f"acme/support#{key}" if tracker == "gitlab" else key


@dataclass
class StormStats:
    storms: int = 0
    posts: int = 0
    post_retries: int = 0
    sandbox_deliveries: int = 0


class StormDriver:
    def __init__(
        self,
        stack: SoakStack,
        db: BridgeDb,
        plans: list[Planned],
        *,
        copies: int,
        give_up_after: float = 60.0,
    ) -> None:
        self.stack = stack
        self.db = db
        self.storms = [p for p in plans if p.storm is not None]
        self.copies = copies
        self.give_up_after = give_up_after
        self.stats = StormStats()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-storms", daemon=True)
        self._http = requests.Session()
        self._lock = threading.Lock()

    def start(self) -> None:
        if self.storms:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)
        self._http.close()

    def open_storms(self) -> list[Planned]:
        return [p for p in self.storms if p.storm_state == "waiting"]

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if self.open_storms():
                    self._step()
                self._stop.wait(0.5)
        except BaseException as exc:  # reported by the run, never silently lost
            self.error = exc
            raise

    def _step(self) -> None:
        try:
            filed = self.db.filed()
            by_sender = self.db.email_tickets()
        except Exception:  # the database is busy (SQLite, during a burst): try again next step
            return
        for planned in self.open_storms():
            if self._stop.is_set():
                return
            if planned.tracking_id is None and planned.channel == "email":
                planned.tracking_id = by_sender.get(planned.reporter.lower())
            tid = planned.tracking_id
            if tid is None or tid not in filed or self.stack.smtp.distinct_count(tid) < 2:
                continue  # not filed, or the acknowledgement and "triaged" are not mailed yet
            tracker, key = filed[tid]
            try:
                self._storm(planned, tid, tracker, key)
            except requests.RequestException as exc:
                planned.storm_state = "failed"
                planned.storm_note = f"the sandbox did not answer: {exc}"

    def _storm(self, planned: Planned, tid: str, tracker: str, key: str) -> None:
        """Wave after wave: make the changes, post their webhooks all at once, wait for the lane to drain."""
        subject = subject_of(tracker, key)
        log = f"{self.stack.sandbox_url}/_sandbox/webhooks"
        before = self._http.get(log, params={"subject": subject}, timeout=30).json()["deliveries"]
        since = max((int(d["id"]) for d in before), default=0)
        answers: list[int | None] = []
        for wave in STORMS[planned.storm or ""]:
            for action, resolution in wave:
                body: dict[str, Any] = {"tracker": tracker, "issue": key, "action": action}
                if action == "comment":
                    text = comment_text(tid, len(planned.storm_comments) + 1)
                    planned.storm_comments.append(text)
                    body["text"] = f"{MARKER} {text}"
                if resolution:
                    body["resolution"] = resolution
                response = self._http.post(f"{self.stack.sandbox_url}/_sandbox/act", json=body, timeout=10)
                if response.status_code != 200:
                    planned.storm_state = "failed"
                    planned.storm_note = f"act {action} refused: {response.status_code} {response.text[:200]}"
                    return
            made = self._http.get(log, params={"subject": subject, "since": str(since)}, timeout=30).json()
            originals = [d for d in made["deliveries"] if d["copy"] == 1]
            since = max([since, *(int(d["id"]) for d in made["deliveries"])])
            posts = [d for d in originals for _ in range(self.copies)]
            answers += self._fire(posts)
            planned.storm_posts += len(posts)
            with self._lock:
                self.stats.sandbox_deliveries += len(originals)
                self.stats.posts += len(posts)
            self._drain(tid, subject)
        planned.storm_state = "fired" if all(a == 200 for a in answers) else "failed"
        if planned.storm_state == "failed":
            planned.storm_note = f"webhook posts not accepted: {answers}"
        with self._lock:
            self.stats.storms += 1

    def _drain(self, tracking_id: str, subject: str, timeout: float = 20.0) -> None:
        """Wait (a while) until the sandbox has sent the issue's webhooks and no job of the ticket is
        pending or running: the next wave then meets an idle lane, where a job whose older neighbour
        is not committed yet would run at once."""
        deadline = time.monotonic() + timeout
        log = f"{self.stack.sandbox_url}/_sandbox/webhooks"
        while time.monotonic() < deadline and not self._stop.is_set():
            with contextlib.suppress(Exception):  # the database is busy (SQLite), the sandbox slow: look again
                pending = self._http.get(log, params={"subject": subject, "outcome": "pending"}, timeout=10)
                if not pending.json()["deliveries"] and self.db.ticket_jobs_open(tracking_id) == 0:
                    return
            time.sleep(0.2)

    def _fire(self, deliveries: list[dict[str, Any]]) -> list[int | None]:
        """Post every delivery from a thread of its own, all released at once; the final answers."""
        answers: list[int | None] = [None] * len(deliveries)
        barrier = threading.Barrier(len(deliveries)) if deliveries else None

        def post(index: int) -> None:
            answers[index] = self._post_until_answered(deliveries[index], barrier)

        threads = [threading.Thread(target=post, args=(i,), daemon=True) for i in range(len(deliveries))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=self.give_up_after + 15)
        return answers

    def _post_until_answered(self, delivery: dict[str, Any], barrier: threading.Barrier | None) -> int | None:
        headers = dict(delivery["headers"])
        body = json.dumps(delivery["body"], ensure_ascii=False, separators=(",", ":")).encode()
        fresh = str(uuid.uuid4())
        if delivery["tracker"] == "gitlab":
            headers["Idempotency-Key"] = fresh
        else:
            headers["X-Atlassian-Webhook-Identifier"] = fresh
            signature = hmac.new(JIRA_WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
            headers["X-Hub-Signature"] = f"sha256={signature}"
        url = f"{self.stack.web_url}/webhooks/{delivery['tracker']}"
        if barrier is not None:
            with contextlib.suppress(threading.BrokenBarrierError):  # one thread was late: go anyway
                barrier.wait(timeout=10)
        deadline = time.monotonic() + self.give_up_after
        status: int | None = None
        with requests.Session() as http:
            while True:
                try:
                    status = http.post(url, data=body, headers=headers, timeout=10).status_code
                except requests.RequestException:
                    status = None
                if status == 200 or (status is not None and 400 <= status < 500 and status != 429):
                    return status
                if time.monotonic() > deadline or self._stop.is_set():
                    return status
                with self._lock:
                    self.stats.post_retries += 1
                time.sleep(0.5)  # the web is being killed or restarted: as a tracker retries
