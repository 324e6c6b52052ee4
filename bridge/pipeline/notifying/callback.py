"""The ``chatbot_callback`` job: push a status change to the chatbot, signed.

When ``chatbot.callback_url`` is set, every reporter-facing status change is POSTed there as

    {"event": "ticket.status_changed", "tracking_id": ..., "status": ..., "status_text": ...,
     "locale": ..., "at": ..., "planned_for": ...}

signed like the chatbot's own webhooks to us (CONTRACT section 2): ``X-Smarttalk-Signature:
t=<unix>,v1=<hex HMAC-SHA256 with the first signing secret over "<t>." + body>``. The body is
built from the reporter-facing view, so it never carries tracker internals. ``Idempotency-Key``
names the status event, so a receiver can drop a delivery we retried after a lost answer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import requests

from bridge.adapters.store.models import Job
from bridge.adapters.store.repository import Store
from bridge.adapters.trackers.http_errors import retry_after_seconds
from bridge.config import Settings
from bridge.domain import Status
from bridge.errors import PermanentError, RetryableError
from bridge.mappings import Mappings
from bridge.pipeline.notifying.ticket_view import iso_utc, locale_of, planned_for, status_text
from bridge.web.signatures import sign

log = logging.getLogger(__name__)

EVENT = "ticket.status_changed"
TIMEOUT_SECONDS = 10.0
RETRYABLE_STATUSES = frozenset({408, 425, 429})


class ChatbotCallback:
    def __init__(self, *, store: Store, settings: Settings, mappings: Mappings, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._settings = settings
        self._mappings = mappings
        self._now = clock

    def __call__(self, job: Job) -> None:
        url = self._settings.chatbot.callback_url
        if not url:
            return  # switched off after the job was queued: nothing to tell
        secrets = self._settings.chatbot.signing_secrets
        if not secrets:
            raise PermanentError("chatbot callback: no signing secret configured")
        body = json.dumps(self.payload(job), ensure_ascii=False, separators=(",", ":")).encode()
        t = int(self._now().timestamp())
        headers = {
            "Content-Type": "application/json",
            "X-Smarttalk-Signature": f"t={t},v1={sign(secrets[0], t, body)}",
            "Idempotency-Key": f"{EVENT}:{job.subject_id}",
        }
        try:
            response = requests.post(url, data=body, headers=headers, timeout=TIMEOUT_SECONDS, allow_redirects=False)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise RetryableError(f"chatbot callback: {type(exc).__name__}: {exc}") from exc
        except requests.RequestException as exc:  # an invalid URL and the like: retrying will not help
            raise PermanentError(f"chatbot callback: {type(exc).__name__}: {exc}") from exc
        self._check(response)
        log.info("callback.sent", extra={"job_id": job.id, "status_event": job.subject_id})

    def payload(self, job: Job) -> dict[str, Any]:
        """The body for the status event ``job.subject_id``; ``LookupError`` if it is gone."""
        ticket = self._store.job_ticket(job)
        event = next((e for e in self._store.history(ticket.id) if e.id == job.subject_id), None)
        if event is None:
            raise LookupError(f"status event {job.subject_id} of ticket {job.ticket_id} does not exist")
        wording = self._mappings.wording
        plan = planned_for(ticket)
        return {
            "event": EVENT,
            "tracking_id": ticket.tracking_id,
            "status": event.status,
            "status_text": status_text(ticket, Status(event.status), wording),
            "locale": locale_of(ticket, wording),
            "at": iso_utc(event.at),
            "planned_for": plan.as_json() if plan else None,
        }

    @staticmethod
    def _check(response: requests.Response) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        detail = f"chatbot callback: HTTP {status}"
        snippet = response.text[:200].strip()
        if snippet:
            detail += f": {snippet}"
        if status in RETRYABLE_STATUSES or status >= 500:
            # Only Retry-After: rate-limit reset headers on a 5xx describe a quota that was not the problem.
            hint = {"Retry-After": response.headers.get("Retry-After", "")}
            raise RetryableError(detail, retry_after=retry_after_seconds(hint))
        raise PermanentError(detail)
