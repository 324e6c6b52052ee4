"""The load: planned reports (chatbot and email) and a sender that retries them as a real sender would.

Every report is planned up front from the seeded RNG: channel, text, where it should be filed, and
which developer actions its issue will see. A chatbot report is retried with the SAME ``event_id`` and
body (freshly signed), an email with the SAME ``Message-ID``, after a connection error, a timeout, a
429 or a 5xx — what the chatbot platform or an email provider does while the web process is being
killed. "Accepted" means a 202 or 200 was received.
"""

from __future__ import annotations

import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Any

import requests

from bridge.web.signatures import sign
from harness.stack import SIGNING_SECRET
from soak.stack import EMAIL_TOKEN, JIRA_DOMAIN, JIRA_PRODUCT, PERMANENT_PRODUCT

# --- developer action chains --------------------------------------------------------------------------

Act = tuple[str, str | None]
"""(``/_sandbox/act`` action, resolution for ``close``)."""

CHAINS: dict[str, tuple[Act, ...]] = {
    "fix": (("progress", None), ("qa", None), ("close", "fixed")),
    "wontfix": (("progress", None), ("close", "wontfix")),
    "reopen-declined": (("close", "fixed"), ("reopen", None), ("close", "duplicate")),
    "reopen-progress": (("progress", None), ("close", "fixed"), ("reopen", None)),
}

# The reporter-facing statuses each chain should produce after ``triaged`` (mappings/status.yaml):
# a reopened GitLab issue keeps its ``workflow::in progress`` label (so it is in progress again), a
# reopened Jira issue goes back to To Do (category new: "reopened" after a resolution).
EXPECTED: dict[tuple[str, str], tuple[str, ...]] = {
    ("gitlab", "fix"): ("in_progress", "in_qa", "resolved"),
    ("jira", "fix"): ("in_progress", "in_qa", "resolved"),
    ("gitlab", "wontfix"): ("in_progress", "declined"),
    ("jira", "wontfix"): ("in_progress", "declined"),
    ("gitlab", "reopen-declined"): ("resolved", "reopened", "declined"),
    ("jira", "reopen-declined"): ("resolved", "reopened", "declined"),
    ("gitlab", "reopen-progress"): ("in_progress", "resolved", "in_progress"),
    ("jira", "reopen-progress"): ("in_progress", "resolved", "reopened"),
}


@dataclass
class Planned:
    """One report as planned, and what became of its delivery."""

    n: int
    channel: str
    """``chatbot`` or ``email``."""
    key: str
    """The chatbot ``event_id`` or the email's ``Message-ID``."""
    reporter: str
    body: bytes
    tracker: str | None
    """Where it should be filed; None for the designed permanent failure (a project that does not exist)."""
    chain: str | None
    """The developer actions its issue will see (a key of ``CHAINS``), or None."""

    attempts: int = 0
    accepted: bool = False
    accepted_status: int | None = None
    answers: list[str] = field(default_factory=list)
    """What each attempt got: ``202``, ``200``, ``503``, ``ConnectionError``, ..."""
    tracking_id: str | None = None
    sent_at: float | None = None
    accepted_at: float | None = None
    refused: str | None = None
    """A 4xx answer (never expected): the body."""

    # the developer actions, driven by soak.acts
    acts_done: list[tuple[str, float]] = field(default_factory=list)
    chain_state: str = "waiting"
    """``waiting``, ``acting``, ``complete`` (the last transition's email arrived) or ``stalled``."""
    chain_note: str = ""

    @property
    def permanent(self) -> bool:
        return self.tracker is None


# --- planning --------------------------------------------------------------------------------------------

_DA = [
    ("Chat-widget indlæses ikke", "Siden viser kun en spinner siden i morges.", "Ingen kunder kan skrive til os"),
    ("Eksport til CSV fejler", "Knappen giver en fejl efter ti sekunder.", "Bogholderiet kan ikke lukke måneden"),
    ("Login virker ikke på mobil", "Appen logger ud med det samme.", "Nogle brugere kan ikke logge ind"),
    ("Faktura viser forkert moms", "Momsen bliver beregnet to gange.", "Kunderne klager over fakturaerne"),
    ("Datoer vises i amerikansk format", "Datoerne står som MM/DD/YYYY.", "Lidt forvirrende"),
]
_EN = [
    ("Dashboard charts are empty", "Since the update the charts show no data.", "Managers cannot see the numbers"),
    ("Password reset mail never arrives", "Users wait but no mail comes.", "Users are locked out"),
    ("Search returns old results", "New articles do not show up in search.", "Support wastes time"),
    ("Typo on the settings page", "It says 'Setings'.", "Cosmetic"),
    ("Payment page times out", "Card payments hang for a minute and fail.", "We lose orders"),
]
_PRIORITIES = ["Kritisk", "high", "normal", "low", None, "høj prioritet", None]
_PRODUCTS = ["widget", "reports", "app", None, "widget"]


def plan_reports(
    count: int,
    *,
    rng: random.Random,
    run_id: str,
    email_fraction: float,
    jira_fraction: float,
    permanent: int,
    chain_fraction: float,
) -> list[Planned]:
    """``count`` reports: ``permanent`` of them routed to the missing project, spread over the run."""
    permanent_at = set(rng.sample(range(count), min(permanent, count)))
    chain_names = sorted(CHAINS)
    plans: list[Planned] = []
    for n in range(count):
        is_permanent = n in permanent_at
        channel = "chatbot" if is_permanent or rng.random() >= email_fraction else "email"
        to_jira = not is_permanent and rng.random() < jira_fraction
        danish = rng.random() < 0.5
        title, description, impact = rng.choice(_DA if danish else _EN)
        title = f"{title} ({run_id} #{n})"
        # Chains start on issues filed in the first three quarters of the load, so they meet the faults.
        chain = None
        if not is_permanent and n < count * 0.75 and rng.random() < chain_fraction:
            chain = rng.choice(chain_names)
        if channel == "chatbot":
            product = PERMANENT_PRODUCT if is_permanent else JIRA_PRODUCT if to_jira else rng.choice(_PRODUCTS)
            reporter = f"soak.{run_id}.{n}@kunde{n % 7}.{'dk' if danish else 'com'}"
            event: dict[str, Any] = {
                "event_id": f"evt_soak_{run_id}_{n}",
                "type": "report.created",
                "occurred_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "conversation_id": f"conv_{run_id}_{n}",
                "reporter": {
                    "email": reporter,
                    "name": f"Soak Reporter {n}",
                    "locale": "da" if danish else "en",
                    "organization": f"Kunde {n % 7} A/S",
                },
                "report": {"title": title, "description": description, "impact": impact},
            }
            priority = rng.choice(_PRIORITIES)
            if priority:
                event["report"]["priority"] = priority
            if product:
                event["report"]["product"] = product
            body = json.dumps(event, ensure_ascii=False).encode()
            key = str(event["event_id"])
        else:
            domain = JIRA_DOMAIN if to_jira else f"kunde{n % 7}.{'dk' if danish else 'com'}"
            reporter = f"soak.{run_id}.{n}@{domain}"
            key = f"<soak.{run_id}.{n}@mail.{domain}>"
            body = _email(reporter, key, title, f"{description}\n\n{impact}.\n\nMvh\nSoak Reporter {n}")
        plans.append(
            Planned(
                n=n,
                channel=channel,
                key=key,
                reporter=reporter,
                body=body,
                tracker=None if is_permanent else "jira" if to_jira else "gitlab",
                chain=chain,
            )
        )
    return plans


def _email(sender: str, message_id: str, subject: str, text: str) -> bytes:
    message = EmailMessage(policy=SMTP)
    message["From"] = f"Soak Reporter <{sender}>"
    message["To"] = "support@bridge.example"
    message["Subject"] = subject
    message["Message-ID"] = message_id
    message["Date"] = format_datetime(datetime.now(UTC))
    message.set_content(text)
    return message.as_bytes()


# --- sending ----------------------------------------------------------------------------------------------


@dataclass
class SendStats:
    connection_errors: int = 0
    timeouts: int = 0
    server_errors: int = 0
    """5xx (and 429) answers from the bridge while it was being killed or restarted."""
    retried_reports: int = 0
    duplicate_answers: int = 0
    """A retry answered 200 "already have it": the first attempt had been stored, its answer lost."""
    gave_up: int = 0
    refused: int = 0


class Sender:
    """Sends planned reports at a steady rate from a thread pool, each until it is accepted."""

    def __init__(self, web_url: str, *, threads: int, give_up_after: float, seed: int) -> None:
        self.web_url = web_url
        self.stats = SendStats()
        self._lock = threading.Lock()
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="soak-send")
        self._give_up_after = give_up_after
        self._rng = random.Random(seed)

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
        return session

    def send_all(self, plans: list[Planned], *, rate: float, stop: threading.Event) -> None:
        """Submit report i at start + i / rate (the pool sends it; retries make some late)."""
        start = time.time()
        futures = []
        for i, planned in enumerate(plans):
            due = start + i / rate
            while (left := due - time.time()) > 0:
                if stop.wait(min(left, 0.2)):
                    break
            if stop.is_set():
                break
            futures.append(self._pool.submit(self.deliver, planned))
        for future in futures:
            future.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self.stats, name, getattr(self.stats, name) + 1)

    def deliver(self, planned: Planned) -> None:
        planned.sent_at = time.time()
        deadline = time.monotonic() + self._give_up_after
        while True:
            planned.attempts += 1
            if planned.attempts == 2:
                self._count("retried_reports")
            try:
                response = self._post(planned)
            except requests.Timeout:
                planned.answers.append("Timeout")
                self._count("timeouts")
                self._session().close()
            except requests.RequestException as exc:
                planned.answers.append(type(exc).__name__)
                self._count("connection_errors")
                self._session().close()  # a connection to a killed server is no good any more
            else:
                planned.answers.append(str(response.status_code))
                if response.status_code in (200, 202):
                    self._accepted(planned, response)
                    return
                if response.status_code < 500 and response.status_code != 429:
                    planned.refused = f"{response.status_code} {response.text[:300]}"
                    self._count("refused")
                    return
                self._count("server_errors")
            if time.monotonic() > deadline:
                self._count("gave_up")
                return
            with self._lock:
                jitter = 0.5 + self._rng.random() / 2
            time.sleep(min(2.0, 0.2 * 2 ** (planned.attempts - 1)) * jitter)

    def _post(self, planned: Planned) -> requests.Response:
        if planned.channel == "chatbot":
            t = int(time.time())
            headers = {
                "Content-Type": "application/json",
                "X-Smarttalk-Signature": f"t={t},v1={sign(SIGNING_SECRET, t, planned.body)}",
            }
            url = f"{self.web_url}/webhooks/chatbot"
        else:
            headers = {"Content-Type": "message/rfc822", "Authorization": f"Bearer {EMAIL_TOKEN}"}
            url = f"{self.web_url}/webhooks/email/raw"
        return self._session().post(url, data=planned.body, headers=headers, timeout=10)

    def _accepted(self, planned: Planned, response: requests.Response) -> None:
        planned.accepted = True
        planned.accepted_status = response.status_code
        planned.accepted_at = time.time()
        body = response.json()
        if planned.channel == "chatbot":
            planned.tracking_id = str(body["tracking_id"])
            duplicate = response.status_code == 200
        else:
            duplicate = body.get("status") == "duplicate"
        if duplicate:
            self._count("duplicate_answers")
