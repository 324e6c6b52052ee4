"""Developer actions on the filed issues (``/_sandbox/act``), one ticket at a time, gated on email.

A ticket's next action waits until the reporter has been mailed about the previous transition (the
SMTP sink holds 2 + k distinct messages for it after k actions: the acknowledgement, "triaged", then
one per action) and at least ``NOTIFY_DEBOUNCE_SECONDS`` + 1 s have passed since the previous action.
So no two transitions of a ticket fall into one debounce window, and "one email per transition" is
what the bridge must deliver — however late, through SMTP outages and worker kills.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import requests

from soak.db import BridgeDb
from soak.load import CHAINS, Planned
from soak.stack import SoakStack


@dataclass
class ActStats:
    acts: int = 0
    failed: int = 0
    """``/_sandbox/act`` refused an action (the issue was not in the state the chain expected)."""


class ActDriver:
    def __init__(
        self, stack: SoakStack, db: BridgeDb, plans: list[Planned], *, debounce: float, gate_timeout: float
    ) -> None:
        self.stack = stack
        self.db = db
        self.chains = [p for p in plans if p.chain is not None]
        self.debounce = debounce
        self.gate_timeout = gate_timeout
        self.stats = ActStats()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-acts", daemon=True)
        self._since: dict[int, float] = {}
        """When each chain started waiting for its current gate (its filing, then each action)."""
        self._http = requests.Session()
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._http.close()

    def open_chains(self) -> list[Planned]:
        return [p for p in self.chains if p.chain_state in ("waiting", "acting")]

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if self.open_chains():
                    self.step()
                self._stop.wait(0.5)
        except BaseException as exc:  # reported by the run, never silently lost
            self.error = exc
            raise

    def step(self) -> None:
        now = time.time()
        waiting = self.open_chains()
        try:
            filed = self.db.filed()
            by_sender = self.db.email_tickets() if any(p.tracking_id is None for p in waiting) else {}
        except Exception:  # the database is busy (SQLite, during a burst): try again next step
            return
        for planned in waiting:
            if self._stop.is_set():
                return
            if planned.tracking_id is None and planned.channel == "email":
                planned.tracking_id = by_sender.get(planned.reporter.lower())
            tid = planned.tracking_id
            if tid is None or tid not in filed:
                continue  # not filed yet: a chain waits as long as the run does
            since = self._since.setdefault(planned.n, now)  # the gate's clock starts at filing
            chain = CHAINS[planned.chain or ""]
            done = len(planned.acts_done)
            mailed = self.stack.smtp.distinct_count(tid)
            if mailed < 2 + done:
                if now - since > self.gate_timeout:
                    planned.chain_state = "stalled"
                    planned.chain_note = f"no email for transition {done + 1} after {self.gate_timeout:.0f} s"
                continue
            if done == len(chain):
                planned.chain_state = "complete"
                continue
            if planned.acts_done and now < planned.acts_done[-1][1] + self.debounce + 1:
                continue
            action, resolution = chain[done]
            tracker, key = filed[tid]
            body = {"tracker": tracker, "issue": key, "action": action, "resolution": resolution or "fixed"}
            try:
                response = self._http.post(f"{self.stack.sandbox_url}/_sandbox/act", json=body, timeout=10)
            except requests.RequestException:
                continue  # try again next step
            if response.status_code != 200:
                self.stats.failed += 1
                planned.chain_state = "stalled"
                planned.chain_note = f"act {action} refused: {response.status_code} {response.text[:200]}"
                continue
            self.stats.acts += 1
            planned.acts_done.append((action, time.time()))
            planned.chain_state = "acting"
            self._since[planned.n] = time.time()
