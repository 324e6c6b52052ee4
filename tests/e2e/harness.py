"""End-to-end helpers: the shared stack (``harness/``) and what the e2e tests say to it.

``harness.stack.Stack`` starts the tracker sandbox, an SMTP sink, the migrations, the bridge web
(gunicorn) and worker on loopback ports, configured only through CONTRACT section 7 variables and a
config copy. The e2e ``Stack`` runs the shipped settings (job leases and heartbeat included) and adds
the tests' vocabulary: signed chatbot reports, the status API, the sandbox's issues, faults and
developer actions.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from typing import Any

import requests

from bridge.tracking import TRACKING_ID
from bridge.web.signatures import sign
from harness import stack as base
from harness.issues import Issue
from harness.mail import Mail
from harness.process import REPO, HarnessError, wait_until
from harness.stack import API_TOKEN, SIGNING_SECRET

__all__ = ["REPO", "Issue", "Mail", "Stack", "new_event_id", "wait_until"]


def new_event_id() -> str:
    return f"evt_e2e_{uuid.uuid4().hex[:16]}"


class Stack(base.Stack):
    """The shared stack for one default tracker (``BRIDGE_TRACKER``), as shipped."""

    # -- the chatbot's side ------------------------------------------------------------------------

    def signed_headers(self, body: bytes, *, at: int | None = None, secret: str = SIGNING_SECRET) -> dict[str, str]:
        t = int(time.time()) if at is None else at
        return {"Content-Type": "application/json", "X-Smarttalk-Signature": f"t={t},v1={sign(secret, t, body)}"}

    def post_raw(self, body: bytes, headers: dict[str, str]) -> requests.Response:
        return self.http.post(f"{self.web_url}/webhooks/chatbot", data=body, headers=headers, timeout=10)

    def post_on_new_connection(self, body: bytes, headers: dict[str, str]) -> requests.Response:
        """POST on a connection of its own. For bodies the server refuses unread (413): urllib3 sometimes
        reuses such a connection after the refusal although the answer said ``Connection: close``."""
        return requests.post(f"{self.web_url}/webhooks/chatbot", data=body, headers=headers, timeout=10)

    def post_event(self, event: dict[str, Any], **headers: str) -> requests.Response:
        body = json.dumps(event).encode()
        return self.post_raw(body, {**self.signed_headers(body), **headers})

    def file_report(self, event: dict[str, Any]) -> str:
        """Send a report; it must be accepted with 202. Returns its tracking ID."""
        response = self.post_event(event)
        assert response.status_code == 202, f"report not accepted: {response.status_code} {response.text}"
        tracking_id = response.json()["tracking_id"]
        assert TRACKING_ID.fullmatch(tracking_id), tracking_id
        return str(tracking_id)

    def api_ticket(self, tracking_id: str) -> requests.Response:
        return self.http.get(
            f"{self.web_url}/api/v1/tickets/{tracking_id}",
            headers={"Authorization": f"Bearer {API_TOKEN}"},
            timeout=10,
        )

    def api_status(self, tracking_id: str) -> str | None:
        response = self.api_ticket(tracking_id)
        return str(response.json().get("status")) if response.status_code == 200 else None

    def wait_status(self, tracking_id: str, status: str, timeout: float = 20) -> dict[str, Any]:
        """Poll the status API until the ticket has ``status``; returns the API's body."""
        seen: list[str | None] = []

        def reached() -> dict[str, Any] | None:
            response = self.api_ticket(tracking_id)
            body = response.json() if response.headers.get("Content-Type", "").endswith("json") else {}
            current = body.get("status") if response.status_code == 200 else f"HTTP {response.status_code}"
            if not seen or seen[-1] != current:
                seen.append(current)
            return body if current == status else None

        try:
            return wait_until(reached, timeout, what=f"{tracking_id} to be {status!r} in the status API")
        except HarnessError as exc:
            raise HarnessError(f"{exc}; statuses seen: {seen}") from None

    def wait_filed(self, tracking_ids: Iterable[str], timeout: float = 30) -> None:
        """Barrier: every ticket has left ``received`` (its filing job saved the issue and finished)."""
        ids = list(tracking_ids)

        def all_filed() -> bool:
            return all(self.api_status(tid) not in (None, "received") for tid in ids)

        wait_until(all_filed, timeout, what=f"the status API to show {ids} as filed")

    # -- the tracker sandbox -----------------------------------------------------------------------

    def issues(self, state: dict[str, Any] | None = None) -> list[Issue]:
        """All issues of this stack's tracker."""
        return Issue.all_in(state or self.state(), self.tracker)

    def issues_for(self, tracking_id: str) -> list[Issue]:
        return [issue for issue in self.issues() if issue.tracking_id == tracking_id]

    def wait_issue(self, tracking_id: str, timeout: float = 20) -> Issue:
        found = wait_until(lambda: self.issues_for(tracking_id), timeout, what=f"an issue for {tracking_id}")
        return found[0]

    def current_and_next_sprint(self) -> tuple[str, str]:
        """The names of the sandbox's current and next sprint, as README's "Connecting" sections define them."""
        state = self.state()
        if self.tracker == "gitlab":
            today = state["today"]
            active = [m for m in state["gitlab"]["milestones"] if m["state"] == "active" and m.get("start_date")]
            current = next(m for m in active if m["start_date"] <= today <= m["due_date"])
            later = sorted((m for m in active if m["start_date"] > current["due_date"]), key=lambda m: m["start_date"])
            return current["title"], later[0]["title"]
        sprints = state["jira"]["sprints"]
        current = next(s for s in sprints if s["state"] == "active")
        future = next(s for s in sprints if s["state"] == "future")
        return current["name"], future["name"]

    def requests_log(self, **filters: Any) -> list[dict[str, Any]]:
        return list(self.sandbox_get("/_sandbox/requests", tracker=self.tracker, **filters)["requests"])

    def add_fault(self, **rule: Any) -> None:
        response = self.http.post(
            f"{self.sandbox_url}/_sandbox/faults", json={"tracker": self.tracker, **rule}, timeout=10
        )
        assert response.status_code == 200, response.text

    def clear_faults(self) -> None:
        self.http.delete(f"{self.sandbox_url}/_sandbox/faults", timeout=10).raise_for_status()

    def act(self, issue: Issue | str, action: str, text: str = "", *, internal: bool = False, **extra: Any) -> str:
        """Act as the developer in the sandbox (what ``python -m sandbox act`` does); fires webhooks."""
        key = issue.key if isinstance(issue, Issue) else issue
        body = {"tracker": self.tracker, "issue": key, "action": action, "text": text, "internal": internal, **extra}
        response = self.http.post(f"{self.sandbox_url}/_sandbox/act", json=body, timeout=10)
        assert response.status_code == 200, f"act {action} on {key}: {response.status_code} {response.text}"
        return str(response.json()["message"])
