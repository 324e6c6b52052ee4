"""The load: planned reports (chatbot and email) and a sender that retries them as a real sender would.

Every report is planned up front from the seeded RNG: channel, text, where it should be filed, and
which developer actions its issue will see: an action chain (``soak/acts.py``) or a webhook storm
(``soak/storms.py``). Emails are raw RFC 822; the NUL mails (``soak/inbound.py``) go through the raw,
Postmark and Mailgun endpoints in turn. A chatbot report is retried with the SAME ``event_id`` and
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
from typing import Any

import requests

from bridge.web.signatures import sign
from harness.stack import SIGNING_SECRET
from soak.inbound import NUL_PLACEMENTS, PROVIDERS, Mail, Post, encode, soak_ref
from soak.stack import EMAIL_TOKEN, JIRA_DOMAIN, JIRA_PRODUCT, PERMANENT_PRODUCT
from soak.storms import STORMS

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
    path: str = "/webhooks/chatbot"
    content_type: str = "application/json"
    provider: str = "chatbot"
    """``chatbot``, or the email endpoint: ``raw``, ``postmark`` or ``mailgun``."""
    nul: str | None = None
    """Where this email carries a NUL (``soak.inbound.NUL_PLACEMENTS``), or None."""
    storm: str | None = None
    """The webhook storm its issue will see (a key of ``soak.storms.STORMS``), or None."""

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
    intake_status: str | None = None
    """An email's answer: ``stored``, ``duplicate`` or ``rejected`` (set aside as it arrived)."""
    inbound_id: int | None = None
    """The stored email's id, from the answer."""

    # the developer actions, driven by soak.acts
    acts_done: list[tuple[str, float]] = field(default_factory=list)
    chain_state: str = "waiting"
    """``waiting``, ``acting``, ``complete`` (the last transition's email arrived) or ``stalled``."""
    chain_note: str = ""

    # the webhook storm, driven by soak.storms
    storm_state: str = "waiting"
    """``waiting``, ``fired`` or ``failed``."""
    storm_note: str = ""
    storm_comments: list[str] = field(default_factory=list)
    """The public comments the storm made, in the order it made them."""
    storm_posts: int = 0
    """Webhook posts the storm sent (the sandbox's own deliveries come on top)."""

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
    nul_mails: int = 0,
    storms: int = 0,
) -> list[Planned]:
    """``count`` reports: ``permanent`` of them routed to the missing project, spread over the run;
    ``nul_mails`` of the emails carry a NUL; ``storms`` issues get a webhook storm."""
    permanent_at = set(rng.sample(range(count), min(permanent, count)))
    chain_names = sorted(CHAINS)
    plans: list[Planned] = []
    mails: dict[int, Mail] = {}
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
            text = f"{description}\n\n{impact}.\n\nMvh\nSoak Reporter {n}\n"
            mails[n] = Mail(reporter, "Soak Reporter", key, title, text, soak_ref(run_id, n))
            body = b""  # encoded below, once the NUL mails are chosen
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
    _choose_nul_mails(plans, rng, nul_mails)
    for planned in plans:
        if planned.channel == "email":
            planned.provider = "raw" if planned.nul is None else planned.provider
            _set_post(planned, encode(mails[planned.n], planned.provider, planned.nul))
    _choose_storms(plans, rng, storms)
    return plans


def _set_post(planned: Planned, post: Post) -> None:
    planned.path, planned.content_type, planned.body = post.path, post.content_type, post.body


def _plain(planned: Planned) -> bool:
    """Neither a designed failure nor already given something special to do."""
    return not planned.permanent and planned.chain is None and planned.nul is None and planned.storm is None


def _choose_nul_mails(plans: list[Planned], rng: random.Random, count: int) -> None:
    """``count`` emails of the first three fifths (so that many emails come after them) get a NUL: every
    placement in turn, each time through the next provider (``body-encoded`` is raw's). A NUL mail
    gets no action chain: it may be set aside."""
    eligible = [p for p in plans if p.channel == "email" and not p.permanent and p.n < len(plans) * 0.6]
    chosen = sorted(rng.sample(eligible, min(count, len(eligible))), key=lambda p: p.n)
    for i, planned in enumerate(chosen):
        turn, placement = divmod(i, len(NUL_PLACEMENTS))
        planned.nul = NUL_PLACEMENTS[placement]
        planned.provider = PROVIDERS[(placement + turn) % len(PROVIDERS)]
        if planned.nul == "body-encoded":
            planned.provider = "raw"
        planned.chain = None


def _choose_storms(plans: list[Planned], rng: random.Random, count: int) -> None:
    """``count`` reports of the first half get a webhook storm, GitLab and Jira in turn."""
    names = sorted(STORMS)
    pools = {
        tracker: [p for p in plans if p.tracker == tracker and _plain(p) and p.n < len(plans) * 0.5]
        for tracker in ("gitlab", "jira")
    }
    for i in range(count):
        pool = pools["jira" if i % 2 else "gitlab"] or pools["gitlab"] or pools["jira"]
        if not pool:
            return
        planned = pool.pop(rng.randrange(len(pool)))
        planned.storm = names[i % len(names)]


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
        headers = {"Content-Type": planned.content_type}
        if planned.channel == "chatbot":
            t = int(time.time())
            headers["X-Smarttalk-Signature"] = f"t={t},v1={sign(SIGNING_SECRET, t, planned.body)}"
        else:
            headers["Authorization"] = f"Bearer {EMAIL_TOKEN}"
        return self._session().post(f"{self.web_url}{planned.path}", data=planned.body, headers=headers, timeout=10)

    def _accepted(self, planned: Planned, response: requests.Response) -> None:
        planned.accepted = True
        planned.accepted_status = response.status_code
        planned.accepted_at = time.time()
        body = response.json()
        if planned.channel == "chatbot":
            planned.tracking_id = str(body["tracking_id"])
            duplicate = response.status_code == 200
        else:
            planned.intake_status = str(body.get("status"))
            planned.inbound_id = int(body["id"])
            duplicate = planned.intake_status == "duplicate"
        if duplicate:
            self._count("duplicate_answers")
