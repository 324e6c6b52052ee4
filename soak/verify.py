"""After the soak has settled: prove what survived, and say what was injected.

The proofs (each failure is a line in ``Verdict.failures``):

1. every report was accepted (a 202/200 came back, however many retries it took);
2. every accepted report has exactly one ticket, and every ticket comes from an accepted report;
   every inbound email became a ticket (none held, ignored or rejected);
3. every ticket has exactly one tracker issue, in the tracker its route names — except the reports
   routed to the missing project (the designed permanent failure), which have none — and no issue
   exists without a report;
4. no job is pending or running (when the run settled; afterwards only the reconciliation's re-syncs
   may appear); the dead letters are exactly the filing jobs of the reports routed
   to the missing project (one each, refused with 404), nothing else;
5. per ticket, the SMTP server received exactly one acknowledgement and exactly one status email
   per transition in the ticket's history (the status API's ``history`` after ``received``), telling
   the statuses in the same order; and no other email. Counted by distinct Message-ID (the bridge's
   Message-ID is deterministic per notification: a resend after a crash between the SMTP server's
   "250" and the database commit carries the same one; such resends are counted and shown apart);
6. every developer action chain ran to its end, and the history it produced is the expected one.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from harness.issues import Issue
from soak.db import BridgeDb, seconds_of
from soak.load import CHAINS, EXPECTED, Planned
from soak.stack import MISSING_PROJECT, SeenMail


@dataclass
class Verdict:
    failures: list[str] = field(default_factory=list)
    survived: dict[str, Any] = field(default_factory=dict)

    def fail(self, message: str, examples: list[Any] | None = None) -> None:
        if examples:
            shown = ", ".join(str(e) for e in examples[:8])
            more = f" (+{len(examples) - 8} more)" if len(examples) > 8 else ""
            message = f"{message}: {shown}{more}"
        self.failures.append(message)


def verify(
    plans: list[Planned], db: BridgeDb, state: dict[str, Any], mail: list[SeenMail], *, settled_at: float | None
) -> Verdict:
    verdict = Verdict()
    survived = verdict.survived

    # 1. accepted
    accepted = [p for p in plans if p.accepted]
    not_accepted = [p for p in plans if not p.accepted]
    survived["reports_planned"] = len(plans)
    survived["reports_accepted"] = len(accepted)
    survived["reports_accepted_by_channel"] = dict(Counter(p.channel for p in accepted))
    if not_accepted:
        verdict.fail(
            "reports never accepted",
            [f"#{p.n} {p.channel} answers={p.answers} {p.refused or ''}" for p in not_accepted],
        )

    # 2. tickets
    tickets = {t.tracking_id: t for t in db.tickets()}
    by_sender = db.email_tickets()
    for p in accepted:
        if p.channel == "email":
            p.tracking_id = by_sender.get(p.reporter.lower())
    emails = db.inbound_emails()
    survived["inbound_emails_by_state"] = dict(Counter(state for _, state, _, _ in emails))
    not_tickets = [f"{key} {state}" for key, state, _, _ in emails if state != "ticket"]
    if not_tickets:
        verdict.fail("inbound emails that did not become tickets", not_tickets)
    if len(emails) != sum(1 for p in accepted if p.channel == "email"):
        verdict.fail(
            f"{len(emails)} inbound emails stored for {survived['reports_accepted_by_channel'].get('email', 0)} sent"
        )
    without_ticket = [f"#{p.n} {p.channel} {p.key}" for p in accepted if p.tracking_id not in tickets]
    if without_ticket:
        verdict.fail("accepted reports without a ticket (lost)", without_ticket)
    report_ids = Counter(p.tracking_id for p in accepted if p.tracking_id)
    shared = [tid for tid, n in report_ids.items() if n > 1]
    if shared:
        verdict.fail("tracking IDs shared by several reports", shared)
    strays = sorted(set(tickets) - set(report_ids))
    if strays:
        verdict.fail("tickets that no accepted report asked for", strays)
    survived["tickets"] = len(tickets)
    survived["lost_reports"] = len(without_ticket)

    # 3. issues
    issues = Issue.all_in(state)
    per_id: dict[str | None, list[Issue]] = defaultdict(list)
    for issue in issues:
        per_id[issue.tracking_id].append(issue)
    survived["issues"] = len(issues)
    survived["issues_by_tracker"] = dict(Counter(i.tracker for i in issues))
    duplicates = {tid: len(found) for tid, found in per_id.items() if len(found) > 1}
    survived["duplicate_issues"] = sum(n - 1 for n in duplicates.values())
    if duplicates:
        verdict.fail("tracking IDs with more than one issue", [f"{tid} x{n}" for tid, n in duplicates.items()])
    orphans = [f"{i.tracker} {i.key} {i.title[:40]}" for i in issues if i.tracking_id not in report_ids]
    if orphans:
        verdict.fail("issues without an accepted report", orphans)
    missing, misrouted, wrong_key, unexpected = [], [], [], []
    for p in accepted:
        tid = p.tracking_id
        if tid is None or tid not in tickets:
            continue
        found = per_id.get(tid, [])
        if p.permanent:
            if found:
                unexpected.append(f"{tid} {found[0].tracker} {found[0].key}")
            continue
        if not found:
            missing.append(f"{tid} ({p.channel}, {tickets[tid].status})")
            continue
        if found[0].tracker != p.tracker:
            misrouted.append(f"{tid} in {found[0].tracker}, expected {p.tracker}")
        if tickets[tid].issue_key != found[0].key:
            wrong_key.append(f"{tid} ticket says {tickets[tid].issue_key}, tracker has {found[0].key}")
    if missing:
        verdict.fail("accepted reports without a tracker issue", missing)
    if misrouted:
        verdict.fail("issues in the wrong tracker", misrouted)
    if wrong_key:
        verdict.fail("tickets pointing at another issue", wrong_key)
    if unexpected:
        verdict.fail("reports routed to the missing project that got an issue anyway", unexpected)
    survived["reports_without_issue"] = len(missing)

    # 4. jobs
    counts = db.job_counts()
    survived["jobs_by_state"] = counts
    survived["jobs_by_kind"] = db.job_kinds()
    survived["job_attempts"] = db.job_attempts()
    # Proven at the settle moment (nothing pending or running, twice in a row); since then the
    # reconciliation (every few minutes) may have queued re-syncs of recently changed tickets.
    later, stranded = [], 0
    for job in db.jobs("pending", "running"):
        created = seconds_of(job.created_at)
        if settled_at is not None and job.kind == "sync_ticket" and created >= settled_at - 1:
            later.append(job)
        else:
            stranded += 1
            before = db.previous_in_lane(job)
            why = ""
            if job.state == "pending" and before is not None and before[1] in ("done", "dead"):
                # Its lane's older job is finished, so nothing blocks it: the wake-up was lost and only
                # the sweep (30 s grace, every minute) will queue it again.
                why = f"; the job before it in its lane, #{before[0]}, ended {before[2]} (lost wake-up)"
            verdict.fail(
                f"job #{job.id} {job.kind} still {job.state} (attempts {job.attempts}{why})",
                [(job.last_error or "")[:160]] if job.last_error else None,
            )
    survived["reconcile_syncs_queued_after_settle"] = len(later)
    survived["jobs_left_pending_or_running"] = stranded
    by_ticket_id = {t.id: t for t in tickets.values()}
    dead = db.jobs("dead")
    expected_dead = {p.tracking_id for p in accepted if p.permanent and p.tracking_id}
    dead_ids = [by_ticket_id[j.ticket_id].tracking_id if j.ticket_id in by_ticket_id else f"job#{j.id}" for j in dead]
    survived["dead_letters"] = len(dead)
    survived["dead_letters_expected"] = len(expected_dead)
    survived["dead_letter_reasons"] = sorted({(j.last_error or "")[:120] for j in dead})
    wrong_dead = [
        f"#{j.id} {j.kind} {tid}: {(j.last_error or '')[:120]}"
        for j, tid in zip(dead, dead_ids, strict=True)
        if j.kind != "file_ticket" or tid not in expected_dead or "404" not in (j.last_error or "")
    ]
    if wrong_dead:
        verdict.fail("dead letters that are not the designed permanent failure", wrong_dead)
    if Counter(dead_ids) != Counter(expected_dead):
        verdict.fail(
            f"dead letters {sorted(Counter(dead_ids).items())} != one per report routed to {MISSING_PROJECT}",
            sorted(expected_dead),
        )

    # 5. emails
    notifications = {n.id: n for n in db.notifications()}
    survived["notifications_by_state"] = dict(Counter(n.state for n in notifications.values()))
    history = db.history()
    survived["status_transitions"] = sum(max(0, len(h) - 1) for h in history.values())
    per_ticket: dict[str, dict[str, SeenMail]] = defaultdict(dict)
    copies: Counter[str] = Counter()
    strange = []
    for seen in mail:
        copies[seen.message_id] += 1
        if seen.tracking_id is None or seen.tracking_id not in tickets or seen.notification_id not in notifications:
            strange.append(f"{seen.message_id} {seen.subject[:50]!r}")
            continue
        per_ticket[seen.tracking_id][seen.message_id] = seen
    resends = {mid: n - 1 for mid, n in copies.items() if n > 1}
    survived["emails_received"] = len(mail)
    survived["emails_distinct"] = len(copies)
    survived["email_resends_same_message_id"] = sum(resends.values())
    if strange:
        verdict.fail("emails the bridge has no record of", strange)
    ack_wrong, status_wrong, other_kinds = [], [], []
    acks = status_mails = extra = short = 0
    for tid, ticket in tickets.items():
        messages = sorted(per_ticket.get(tid, {}).values(), key=lambda s: s.notification_id or 0)
        kinds = [notifications[m.notification_id or 0] for m in messages]
        ack = [n for n in kinds if n.kind == "ack"]
        told = [n.status for n in kinds if n.kind == "status"]
        acks += len(ack)
        status_mails += len(told)
        if len(ack) != 1:
            ack_wrong.append(f"{tid} x{len(ack)}")
        transitions = history.get(ticket.id, [])[1:]
        extra += max(0, len(ack) - 1) + max(0, len(told) - len(transitions))
        short += (0 if ack else 1) + max(0, len(transitions) - len(told))
        if told != transitions:
            status_wrong.append(f"{tid} mailed {told} for history {transitions}")
        other_kinds += [f"{tid} {n.kind}" for n in kinds if n.kind not in ("ack", "status")]
    survived["ack_emails"] = acks
    survived["status_emails"] = status_mails
    if ack_wrong:
        verdict.fail("tickets without exactly one acknowledgement email", ack_wrong)
    if status_wrong:
        verdict.fail("tickets whose status emails do not match their history one to one", status_wrong)
    if other_kinds:
        verdict.fail("emails of kinds nothing in the soak should cause", other_kinds)
    survived["duplicate_emails"] = extra
    survived["missing_emails"] = short

    # 6. developer action chains
    chains = [p for p in accepted if p.chain]
    survived["chains"] = len(chains)
    survived["chain_states"] = dict(Counter(p.chain_state for p in chains))
    survived["developer_actions"] = sum(len(p.acts_done) for p in chains)
    unfinished = [
        f"{p.tracking_id} {p.chain} {p.chain_state} {p.chain_note}" for p in chains if p.chain_state != "complete"
    ]
    if unfinished:
        verdict.fail("developer action chains that did not run to their end", unfinished)
    wrong_history = []
    for p in chains:
        if p.chain_state != "complete" or p.tracking_id not in tickets or p.tracker is None:
            continue
        got = tuple(history.get(tickets[p.tracking_id].id, [])[2:])
        want = EXPECTED[(p.tracker, p.chain or "")]
        if got != want or len(p.acts_done) != len(CHAINS[p.chain or ""]):
            wrong_history.append(f"{p.tracking_id} {p.tracker} {p.chain}: {list(got)} != {list(want)}")
    if wrong_history:
        verdict.fail("histories that do not follow the developer's actions", wrong_history)
    return verdict
