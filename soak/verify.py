"""After the soak has settled: prove what survived, and say what was injected.

The proofs (each failure is a line in ``Verdict.failures``):

1. every report was accepted (a 202/200 came back, however many retries it took);
2. every accepted email is stored (the id in its answer), and every stored email comes from a report;
   every email became a ticket — except a NUL mail (``soak/inbound.py``) whose NUL sits where the
   bridge may set the message aside instead: then it is ``rejected`` with a reason and listed by
   ``python -m bridge emails --state rejected``; no ticket holds a NUL, no issue either; every
   accepted report has exactly one ticket, and every ticket comes from an accepted report;
3. every ticket has exactly one tracker issue, in the tracker its route names — except the reports
   routed to the missing project (the designed permanent failure), which have none — and no issue
   exists without a report; the ticket names its issue (the key is stored) and the sprint the issue
   is in (Jira: the Sprint field; GitLab: the milestone), or none and the issue is labelled
   needs-planning; an issue in a sprint that is closed now was filed before it closed (Jira's
   sprints close during the run: ``soak/chaos.py``);
4. no job is pending or running (when the run settled; afterwards only the reconciliation's re-syncs
   may appear); the dead letters are exactly the filing jobs of the reports routed
   to the missing project (one each, refused with 404), nothing else; every lane's jobs (a ticket's
   tracker and notify lanes, the email lane) finished in the order of their ids;
5. per ticket, the SMTP server received exactly one acknowledgement and exactly one status email
   per transition in the ticket's history (the status API's ``history`` after ``received``), telling
   the statuses in the same order; and no other email. Counted by distinct Message-ID (the bridge's
   Message-ID is deterministic per notification: a resend after a crash between the SMTP server's
   "250" and the database commit carries the same one; such resends are counted and shown apart).
   The emails of a ticket arrived in the order of their notifications;
6. every developer action chain ran to its end, and the history it produced is the expected one;
7. every webhook storm (``soak/storms.py``) fired; its ticket ends in the status of the issue's last
   change, the history ends there too, each storm comment reached the reporter exactly once, in the
   order of each comment's first ``relay_comment`` job, and the status emails told transitions of the
   history in order (flips inside the debounce become one email), the last one the final status.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from harness.issues import Issue
from soak.db import BridgeDb, InboundRow, LaneDisorder, NotificationRow, TicketRow, seconds_of
from soak.inbound import MUST_FILE
from soak.load import CHAINS, EXPECTED, Planned
from soak.stack import MISSING_PROJECT, SeenMail
from soak.storms import FINAL_STATUS

NEEDS_PLANNING = "needs-planning"
"""mappings/routing.yaml ``labels.*.needs_planning``."""


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
    plans: list[Planned],
    db: BridgeDb,
    state: dict[str, Any],
    mail: list[SeenMail],
    *,
    settled_at: float | None,
    run_id: str,
    rejected_listing: str | None,
) -> Verdict:
    """``rejected_listing``: what ``python -m bridge emails --state rejected`` printed (None: it failed)."""
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

    # 2. emails and tickets
    tickets = {t.tracking_id: t for t in db.tickets()}
    set_aside = _check_emails(verdict, accepted, db.inbound(run_id), rejected_listing)
    holding_nul = db.tickets_holding_nul()
    if holding_nul:
        verdict.fail("tickets that hold a NUL", [f"{tid} {columns}" for tid, columns in holding_nul.items()])
    without_ticket = [
        f"#{p.n} {p.channel} {p.key}" for p in accepted if p.tracking_id not in tickets and p not in set_aside
    ]
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
    with_nul = [f"{i.tracker} {i.key}" for i in issues if "\\u0000" in json.dumps(i.raw)]
    if with_nul:
        verdict.fail("issues that hold a NUL", with_nul)
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
    filed = [(tickets[tid], found[0]) for tid, found in per_id.items() if tid in tickets and len(found) == 1]
    _check_placement(verdict, filed, state)

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
            if job.state == "pending" and not job.last_error and before is not None and before[1] in ("done", "dead"):
                # Its lane's older job is finished and it has not failed itself, so nothing holds it:
                # the wake-up was lost and only the sweep (30 s grace, every minute) will queue it again.
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
    disorder = db.lane_disorder()
    survived["lane_disorders"] = len(disorder)
    if disorder:
        verdict.fail("jobs that finished before an older job of their lane", [_disorder(d) for d in disorder])
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
    first_seen: dict[str, float] = {}
    strange = []
    for seen in mail:
        copies[seen.message_id] += 1
        first_seen.setdefault(seen.message_id, seen.at)
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
    storm_tickets = {p.tracking_id for p in accepted if p.storm and p.tracking_id}
    ack_wrong, status_wrong, other_kinds, out_of_order = [], [], [], []
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
        if tid in storm_tickets:
            pass  # flips inside the debounce are one email: checked in 7
        else:
            extra += max(0, len(ack) - 1) + max(0, len(told) - len(transitions))
            short += (0 if ack else 1) + max(0, len(transitions) - len(told))
            if told != transitions:
                status_wrong.append(f"{tid} mailed {told} for history {transitions}")
        allowed = ("ack", "status", "comment") if tid in storm_tickets else ("ack", "status")
        other_kinds += [f"{tid} {n.kind}" for n in kinds if n.kind not in allowed]
        arrived = [
            m.notification_id
            for m in sorted(messages, key=lambda m: (first_seen[m.message_id], m.notification_id or 0))
        ]
        if arrived != [m.notification_id for m in messages]:
            out_of_order.append(f"{tid} notifications {arrived}")
    if out_of_order:
        verdict.fail("tickets whose emails arrived out of the order of their notifications", out_of_order)
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

    # 7. webhook storms
    _check_storms(verdict, accepted, tickets, history, notifications, per_ticket, first_seen, db.relayed_comments())
    return verdict


def _check_emails(
    verdict: Verdict, accepted: list[Planned], inbound: list[InboundRow], rejected_listing: str | None
) -> list[Planned]:
    """Section 2 for emails: each stored and made a ticket, or (a NUL mail) set aside with a reason.
    Sets the email reports' tracking IDs; returns the reports set aside."""
    survived = verdict.survived
    rows = {row.id: row for row in inbound}
    survived["inbound_emails_by_state"] = dict(Counter(row.state for row in inbound))
    claimed: set[int] = set()
    lost, not_ticket, crossed, unlisted = [], [], [], []
    set_aside: list[Planned] = []
    nul_outcomes: Counter[str] = Counter()
    listed = set(re.findall(r"(?m)^#(\d+) rejected ", rejected_listing or ""))
    emails = [p for p in accepted if p.channel == "email"]
    for p in emails:
        row = rows.get(p.inbound_id) if p.inbound_id is not None else None
        what = f"#{p.n} {p.provider}" + (f" NUL in {p.nul}" if p.nul else "")
        if row is None:
            lost.append(f"{what}: answered {p.intake_status} id {p.inbound_id}")
            continue
        claimed.add(row.id)
        if row.report is not None and row.report != p.n:
            crossed.append(f"{what}: answered id {row.id}, which holds report #{row.report}")
        if row.state == "ticket" and row.tracking_id:
            p.tracking_id = row.tracking_id
            outcome = "filed"
        elif p.nul and p.nul not in MUST_FILE and row.state == "rejected" and row.reason:
            set_aside.append(p)
            outcome = "set aside"
            if str(row.id) not in listed:
                unlisted.append(f"{what}: #{row.id}")
        else:
            not_ticket.append(f"{what}: #{row.id} {row.state} {(row.reason or '')[:120]}")
            outcome = row.state
        if p.nul:
            nul_outcomes[f"{p.nul} via {p.provider}: {outcome}"] += 1
    strays = [f"#{row.id} {row.state}" for row in inbound if row.id not in claimed]
    if lost:
        verdict.fail("accepted emails the bridge has no record of (lost)", lost)
    if crossed:
        verdict.fail("emails answered with the id of another report's email", crossed)
    if not_ticket:
        verdict.fail("inbound emails that did not become tickets", not_ticket)
    if strays:
        verdict.fail("stored inbound emails that no report sent", strays)
    if rejected_listing is None:
        verdict.fail("python -m bridge emails --state rejected failed")
    elif unlisted:
        verdict.fail("set-aside emails that `python -m bridge emails --state rejected` does not list", unlisted)
    nul = [p for p in emails if p.nul]
    first_nul = min((p.n for p in nul), default=None)
    after = [p for p in emails if first_nul is not None and p.n > first_nul and not p.nul]
    survived["nul_mails"] = len(nul)
    survived["nul_mails_filed"] = sum(1 for p in nul if p.tracking_id)
    survived["nul_mails_set_aside"] = len(set_aside)
    survived["nul_mail_outcomes"] = dict(sorted(nul_outcomes.items()))
    survived["emails_after_a_nul_mail_filed"] = f"{sum(1 for p in after if p.tracking_id)}/{len(after)}"
    return set_aside


def _check_placement(verdict: Verdict, filed: list[tuple[TicketRow, Issue]], state: dict[str, Any]) -> None:
    """Section 3: the ticket names the sprint its issue is in (or none, and the issue needs planning);
    an issue in a closed sprint was filed before that sprint closed."""
    closed_at = {
        str(s["id"]): seconds_of(s["completeDate"].replace("Z", "+00:00"))
        for s in state["jira"]["sprints"]
        if s.get("state") == "closed" and s.get("completeDate")
    }
    wrong: list[str] = []
    placed: Counter[str] = Counter()
    for ticket, issue in filed:
        if issue.tracker == "jira":
            sprints = {str(s["id"]): str(s["state"]) for s in issue.raw["fields"].get("customfield_10020") or []}
        else:
            milestone = issue.raw.get("milestone") or {}
            sprints = {str(milestone["id"]): str(milestone["state"])} if milestone else {}
        where = f"{ticket.tracking_id} {issue.tracker} {issue.key}"
        if ticket.sprint_id is None:
            placed[f"{issue.tracker}: needs planning"] += 1
            if NEEDS_PLANNING not in issue.labels:
                wrong.append(f"{where}: no sprint planned, not labelled {NEEDS_PLANNING} (sprints {sprints})")
            continue
        sprint_state = sprints.get(str(ticket.sprint_id))
        if sprint_state is None:
            wrong.append(f"{where}: planned into sprint {ticket.sprint_id}, the issue is in {sprints or 'none'}")
            continue
        placed[f"{issue.tracker}: {'open' if sprint_state != 'closed' else 'closed'} sprint"] += 1
        if sprint_state == "closed":
            closed = closed_at.get(str(ticket.sprint_id))
            if closed is None or ticket.filed_at is None or seconds_of(ticket.filed_at) >= closed:
                wrong.append(f"{where}: filed into sprint {ticket.sprint_id} after it had closed")
    verdict.survived["issues_placed"] = dict(sorted(placed.items()))
    if wrong:
        verdict.fail("issues whose sprint is not the one their ticket names, or a closed one", wrong)


def _disorder(d: LaneDisorder) -> str:
    owner = f"ticket {d.ticket_id}" if d.ticket_id is not None else "no ticket"
    return f"{owner} lane {d.lane}: #{d.older[0]} {d.older[1]} finished {d.seconds} s after #{d.newer[0]} {d.newer[1]}"


def _check_storms(
    verdict: Verdict,
    accepted: list[Planned],
    tickets: dict[str, TicketRow],
    history: dict[int, list[str]],
    notifications: dict[int, NotificationRow],
    per_ticket: dict[str, dict[str, SeenMail]],
    first_seen: dict[str, float],
    relayed: dict[int, list[tuple[int, str]]],
) -> None:
    """Section 7: per webhook storm, the final status, the status emails, and each comment mailed
    once, in the order the bridge took the webhooks."""
    storms = [p for p in accepted if p.storm]
    survived = verdict.survived
    survived["storms"] = len(storms)
    survived["storm_states"] = dict(Counter(p.storm_state for p in storms))
    unfired = [
        f"#{p.n} {p.tracking_id} {p.storm} {p.storm_state} {p.storm_note}" for p in storms if p.storm_state != "fired"
    ]
    if unfired:
        verdict.fail("webhook storms that did not fire", unfired)
    wrong_status, wrong_told, wrong_comments, wrong_order = [], [], [], []
    in_final_status = comment_emails = 0
    for p in storms:
        ticket = tickets.get(p.tracking_id or "")
        if p.storm_state != "fired" or ticket is None:
            continue
        final = FINAL_STATUS[p.storm or ""]
        steps = history.get(ticket.id, [])
        in_final_status += ticket.status == final
        if ticket.status != final or not steps or steps[-1] != final:
            wrong_status.append(
                f"{ticket.tracking_id} {p.storm}: status {ticket.status}, history {steps}, issue ended {final}"
            )
        messages = sorted(per_ticket.get(ticket.tracking_id, {}).values(), key=lambda m: first_seen[m.message_id])
        notes = [notifications[m.notification_id or 0] for m in messages]
        told = ["received"] + [n.status or "" for n in notes if n.kind == "status"]
        if told[-1] != final or not _in_order(told[1:], steps[1:]):
            wrong_told.append(f"{ticket.tracking_id} mailed {told[1:]} for history {steps[1:]}")
        comments = [n for n in notes if n.kind == "comment"]
        comment_emails += len(comments)
        bodies = [n.body or "" for n in comments]
        if sorted(bodies) != sorted(p.storm_comments):
            wrong_comments.append(f"{ticket.tracking_id} mailed {bodies}, commented {p.storm_comments}")
        first_job: dict[str, int] = {}
        for job_id, comment_id in relayed.get(ticket.id, []):
            first_job.setdefault(comment_id, job_id)
        mailed = [n.dedup_key.rsplit(":", 1)[-1] for n in comments]
        taken = sorted(mailed, key=lambda comment_id: first_job.get(comment_id, 0))
        if mailed != taken:
            jobs = [(comment_id, first_job.get(comment_id)) for comment_id in taken]
            wrong_order.append(f"{ticket.tracking_id} comments mailed {mailed}, webhooks taken (comment, job) {jobs}")
    if wrong_status:
        verdict.fail("storm tickets that do not end in the issue's final status", wrong_status)
    if wrong_told:
        verdict.fail("storm tickets whose status emails do not follow the history to its end", wrong_told)
    if wrong_comments:
        verdict.fail("storm comments not mailed exactly once each", wrong_comments)
    if wrong_order:
        verdict.fail("storm comments mailed out of the order the bridge took their webhooks", wrong_order)
    survived["storms_in_final_status"] = in_final_status
    survived["storm_comment_emails"] = comment_emails


def _in_order(told: list[str], steps: list[str]) -> bool:
    """``told`` is a subsequence of ``steps`` (each email tells a later transition than the one before)."""
    remaining = iter(steps)
    return all(any(step == status for step in remaining) for status in told)
