"""The ``notify`` job: one email to the reporter for one notification row.

A notification ends ``sent``, ``superseded`` (a newer status notification of the same
ticket exists: flapping becomes one email) or ``skipped`` (muted ticket, or the final
status is the one the reporter was last told). Each state is final, so a re-run or a
redelivered job sends nothing twice.

Wording lives in ``mappings/templates/<locale>/email/``: Jinja2 templates per kind, text
and HTML, checked when the ``Notifier`` is built so that a broken template stops the
start-up instead of the first email.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from email.errors import MessageError
from email.headerregistry import Address, BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.policy import SMTP, Policy
from email.utils import format_datetime, parseaddr
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit

from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    TemplateSyntaxError,
    select_autoescape,
)
from markupsafe import Markup, escape
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bridge import metrics
from bridge.adapters.mail import Mailer
from bridge.adapters.store.models import Job, Notification, Ticket
from bridge.adapters.store.repository import Store
from bridge.config import Settings
from bridge.domain import Kind, SprintSlot, Status
from bridge.errors import BridgeError, ConfigError, PermanentError, Problem
from bridge.mappings import Mappings
from bridge.pipeline.notifying.notices import ACK, COMMENT, PLAN, STATUS
from bridge.pipeline.notifying.ticket_view import DEFAULT_DECLINE_REASON, locale_of, planned_for, status_text
from bridge.tracking import status_url, unsubscribe_url
from bridge.wording import LOCALES, StatusTexts

log = logging.getLogger(__name__)

PENDING, SENT, SUPERSEDED, SKIPPED = "pending", "sent", "superseded", "skipped"
KINDS = (ACK, STATUS, COMMENT, PLAN)
EXCERPT_CHARS = 300

# --- locale-aware dates ---------------------------------------------------------------------

_MONTHS = {
    "da": (
        "januar",
        "februar",
        "marts",
        "april",
        "maj",
        "juni",
        "juli",
        "august",
        "september",
        "oktober",
        "november",
        "december",
    ),
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
}


def format_date(day: date, locale: str, *, with_year: bool = True) -> str:
    """``23. november 2026`` in Danish, ``23 November 2026`` in English."""
    month = _MONTHS.get(locale, _MONTHS["en"])[day.month - 1]
    text = f"{day.day}. {month}" if locale == "da" else f"{day.day} {month}"
    return f"{text} {day.year}" if with_year else text


@dataclass(frozen=True, kw_only=True)
class SprintInfo:
    name: str
    start: date | None
    due: date | None
    start_text: str
    """The start date; without the year when the sprint ends in the same year."""
    due_text: str


def sprint_info(name: str | None, start: date | None, due: date | None, locale: str) -> SprintInfo | None:
    if not name:
        return None
    same_year = start is not None and due is not None and start.year == due.year
    return SprintInfo(
        name=name,
        start=start,
        due=due,
        start_text=format_date(start, locale, with_year=not same_year) if start else "",
        due_text=format_date(due, locale) if due else "",
    )


# --- templates ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Rendered:
    subject: str
    """Without the ``[ST-…]`` prefix."""
    text: str
    html: str


def _sentence(value: str) -> str:
    """First letter upper-case, the rest untouched (``capitalize`` would lower the rest)."""
    return value[:1].upper() + value[1:]


def _paragraphs(value: str) -> Markup:
    """Untrusted multi-line text as HTML: escaped, blank lines become paragraphs, newlines ``<br>``."""
    blocks = [b for b in re.split(r"\n\s*\n", value.replace("\r\n", "\n").strip()) if b.strip()]
    return Markup("\n").join(
        Markup('<p style="margin:0 0 8px;">{}</p>').format(
            Markup("<br>\n").join(escape(line) for line in b.split("\n"))
        )
        for b in blocks
    )


class EmailTemplates:
    """The email (and unsubscribe page) templates of every locale, compiled and test-rendered once.

    Raises ``ConfigError`` naming file and line for a syntax error, a missing template, or a
    template that fails with sample data (e.g. a misspelt variable: undefined names are errors).
    """

    def __init__(self, templates_dir: Path, wording: Mapping[str, StatusTexts]) -> None:
        self.templates_dir = templates_dir
        self._wording = wording
        self._env = Environment(
            loader=FileSystemLoader(str(templates_dir)),
            # HTML templates escape every value (reporter and developer text is untrusted); text ones do not.
            autoescape=select_autoescape(enabled_extensions=("html", "html.j2"), default=False),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,  # an included greeting keeps its blank line
            auto_reload=False,
        )
        self._env.filters["sentence"] = _sentence
        self._env.filters["paragraphs"] = _paragraphs
        problems = self._compile_all()
        if not problems:
            problems = self._render_samples()
        if problems:
            raise ConfigError(problems)

    def _compile_all(self) -> list[Problem]:
        problems: list[Problem] = []
        for locale in LOCALES:
            base = self.templates_dir / locale
            for name in [*_required(locale), f"{locale}/unsubscribe.html.j2"]:
                if not (self.templates_dir / name).is_file():
                    problems.append(Problem(file=str(self.templates_dir / name), key="", message="template missing"))
            for path in sorted(base.rglob("*.j2")):
                name = path.relative_to(self.templates_dir).as_posix()
                try:
                    self._env.get_template(name)
                except TemplateSyntaxError as exc:
                    problems.append(
                        Problem(file=exc.filename or str(path), key="", line=exc.lineno, message=exc.message or "")
                    )
                except (TemplateError, UnicodeDecodeError) as exc:
                    problems.append(Problem(file=str(path), key="", message=str(exc)))
        return problems

    def _render_samples(self) -> list[Problem]:
        problems: list[Problem] = []
        seen: set[tuple[str | None, int | None, str]] = set()
        for locale in LOCALES:
            for context in sample_contexts(locale, self._wording[locale]):
                try:
                    self.render(locale, context)
                except (TemplateError, ArithmeticError, LookupError, TypeError, ValueError, AttributeError) as exc:
                    file, line = _template_position(exc.__traceback__)
                    key = (file, line, str(exc))
                    if key not in seen:
                        seen.add(key)
                        problems.append(
                            Problem(
                                file=file or str(self.templates_dir / locale),
                                key="",
                                line=line,
                                message=f"cannot render: {exc}",
                            )
                        )
            try:
                self.page(locale, "unsubscribe", tracking_id="ST-7K3Q9X2M", state="confirm", action_url="/u/x")
            except (TemplateError, LookupError, TypeError, ValueError, AttributeError) as exc:
                file, line = _template_position(exc.__traceback__)
                problems.append(Problem(file=file or "", key="", line=line, message=f"cannot render: {exc}"))
        return problems

    def render(self, locale: str, context: Mapping[str, Any]) -> Rendered:
        """The subject and both bodies of one email; ``context["kind"]`` picks the templates."""
        kind = context["kind"]
        subject = " ".join(self._env.get_template(f"{locale}/email/subject.txt.j2").render(context).split())
        full = {**context, "subject": subject}
        text = self._env.get_template(f"{locale}/email/{kind}.txt.j2").render(full)
        html = self._env.get_template(f"{locale}/email/{kind}.html.j2").render(full)
        return Rendered(subject=subject, text=_tidy_text(text), html=html.strip() + "\n")

    def page(self, locale: str, name: str, **context: Any) -> str:
        """A small web page (``unsubscribe``) in the reporter's language."""
        return self._env.get_template(f"{locale}/{name}.html.j2").render(**context)


def _required(locale: str) -> list[str]:
    names = [f"{locale}/email/subject.txt.j2"]
    names += [f"{locale}/email/{kind}.{ext}.j2" for kind in KINDS for ext in ("txt", "html")]
    return names


def _tidy_text(text: str) -> str:
    """Trailing spaces off (except the ``-- `` signature separator), at most one blank line in a row."""
    lines = [line if line == "-- " else line.rstrip() for line in text.strip().split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)) + "\n"


def _template_position(tb: TracebackType | None) -> tuple[str | None, int | None]:
    """The innermost template frame of a rendering error (Jinja rewrites frames to template lines)."""
    file: str | None = None
    line: int | None = None
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name.endswith(".j2"):
            file, line = name, tb.tb_lineno
        tb = tb.tb_next
    return file, line


def sample_contexts(locale: str, texts: StatusTexts) -> list[dict[str, Any]]:
    """Contexts that take every branch of the shipped templates: each kind, each status, hotfix and
    bugfix in the current and next sprint, no sprint, no name, no reason. The start-up check renders
    them all, so a misspelt variable in a rarely used branch fails at start-up too."""
    sprint = sprint_info("Sprint 48", date(2026, 11, 23), date(2026, 12, 6), locale)
    report = {"title": "Titel", "excerpt": "Beskrivelse", "impact": "Konsekvens", "priority": "Kritisk"}
    base: dict[str, Any] = {
        "locale": locale,
        "tracking_id": "ST-7K3Q9X2M",
        "first_name": "Anna",
        "report": report,
        "comment": "Tak for din rapport.\n\nVi kigger på det.",
        "status_url": "https://bridge.example/t/ST-7K3Q9X2M?s=x",
        "unsubscribe_url": "https://bridge.example/u/ST-7K3Q9X2M?s=x",
        "reason_text": texts.reasons.get("duplicate", "duplicate"),
    }
    plans: list[dict[str, Any]] = [
        {"ticket_kind": kind.value, "kind_text": texts.kinds.get(kind, kind.value), "slot": slot, "sprint": sprint}
        for kind, slot in ((Kind.HOTFIX, "current"), (Kind.BUGFIX, "current"), (Kind.BUGFIX, "next"))
    ]
    plans.append({"ticket_kind": None, "kind_text": "", "slot": None, "sprint": None})
    variants: list[dict[str, Any]] = [
        {},
        {"first_name": None, "reason_text": None},
        {"report": {**report, "impact": None, "priority": None}},
    ]
    contexts: list[dict[str, Any]] = []
    for kind in KINDS:
        for status in list(Status) if kind == STATUS else [Status.RECEIVED if kind == ACK else Status.TRIAGED]:
            text = texts.text(status, kind=Kind.BUGFIX, slot=SprintSlot.NEXT, sprint="Sprint 48", reason="duplicate")
            for plan in plans:
                for variant in variants:
                    contexts.append(
                        {**base, **plan, **variant, "kind": kind, "status": status.value, "status_text": text}
                    )
    return contexts


# --- composing one email --------------------------------------------------------------------


def excerpt(text: str | None, limit: int = EXCERPT_CHARS) -> str:
    """One line of at most ``limit`` characters, cut at a word and marked with an ellipsis."""
    flat = " ".join((text or "").split())
    if len(flat) <= limit:
        return flat
    cut = flat[:limit].rsplit(" ", 1)[0] or flat[:limit]
    return cut.rstrip(" ,.;:") + "…"


def sender_domain(mail_from: str) -> str:
    return parseaddr(mail_from)[1].rpartition("@")[2] or "localhost"


def reply_address(mail_from: str, reply_to: str | None, token: str | None) -> str:
    """The Reply-To plus-address carrying the ticket's reply token (``support+<token>@example.com``)."""
    address = parseaddr(mail_from)[1]
    if not token:
        return address
    if reply_to:
        return reply_to.format(token=token)
    local, _, domain = address.rpartition("@")
    return f"{local}+{token}@{domain}"


def message_id(tracking_id: str, notification_id: int, domain: str) -> str:
    """Deterministic per notification.

    The one duplicate we cannot rule out is a crash after the mail server accepted the
    message and before we recorded it as sent: the re-run then sends the same
    Message-ID, and mail clients and servers collapse the two. The tracking ID in it
    also lets a reply be matched through ``In-Reply-To``/``References``.
    """
    return f"<{tracking_id.lower()}.n{notification_id}@{domain}>"


@dataclass(frozen=True, kw_only=True)
class Outgoing:
    """What ``Notifier`` decided to send, read in one transaction."""

    notification_id: int
    kind: str
    ticket: Ticket
    announced: str | None
    """The status the email tells (``ack``/``status``), recorded on the row once sent."""
    comment: str | None
    thread: Sequence[str]
    """Message-IDs of the ticket's earlier emails, oldest first."""


class Notifier:
    def __init__(
        self,
        *,
        store: Store,
        mailer: Mailer,
        mappings: Mappings,
        settings: Settings,
        secret_key: str,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._mailer = mailer
        self._wording = mappings.wording
        self._settings = settings
        self._secret_key = secret_key
        self._now = clock
        self.templates = EmailTemplates(mappings.templates_dir, mappings.wording)
        public = settings.server.public_url
        self._mail_from = settings.mail.mail_from or f"bridge@{urlsplit(public).hostname or 'localhost'}"
        self._domain = sender_domain(self._mail_from)

    def __call__(self, job: Job) -> None:
        if job.subject_id is None:
            raise PermanentError("notify job without a notification id")
        outgoing = self._decide(job.subject_id)
        if outgoing is None:
            return
        try:
            message = self.compose(outgoing)
            self._mailer.send(message)  # raises RetryableError/PermanentError: the row stays pending
        except BridgeError:
            metrics.notification(outgoing.kind, "failed")
            raise
        self._mark_sent(outgoing, str(message["Message-ID"]))
        metrics.notification(outgoing.kind, "sent")

    # --- deciding -----------------------------------------------------------------------------

    def _decide(self, notification_id: int) -> Outgoing | None:
        with self._store.session() as session:
            note = session.get(Notification, notification_id)
            if note is None:
                raise LookupError(f"notification {notification_id} does not exist")
            if note.state != PENDING:
                log.info("notify.already_final", extra={"notification_id": note.id, "state": note.state})
                return None
            ticket = session.get(Ticket, note.ticket_id)
            if ticket is None:
                raise LookupError(f"ticket {note.ticket_id} does not exist")
            announced: str | None = None
            if ticket.notifications_muted:
                return self._close(note, ticket, SKIPPED, "muted")
            if note.kind == ACK:
                if _sent_before(session, note, kinds=(ACK,)) is not None:
                    return self._close(note, ticket, SKIPPED, "already_acknowledged")
                announced = Status.RECEIVED.value
            elif note.kind == STATUS:
                if _newest(session, note) != note.id:
                    return self._close(note, ticket, SUPERSEDED, "newer_status")
                # The final state, not the event's: the reporter hears where the ticket is now.
                announced = ticket.status
                if _sent_before(session, note, kinds=(ACK, STATUS)) == announced:
                    return self._close(note, ticket, SKIPPED, "unchanged")
            elif note.kind == PLAN:
                if _newest(session, note) != note.id:
                    return self._close(note, ticket, SUPERSEDED, "newer_plan")
            elif note.kind != COMMENT:
                raise PermanentError(f"notification {note.id}: unknown kind {note.kind!r}")
            thread = session.scalars(
                select(Notification.message_id)
                .where(
                    Notification.ticket_id == ticket.id,
                    Notification.state == SENT,
                    Notification.message_id.is_not(None),
                )
                .order_by(Notification.id)
            ).all()
            return Outgoing(
                notification_id=note.id,
                kind=note.kind,
                ticket=ticket,
                announced=announced,
                comment=note.body,
                thread=[t for t in thread if t],
            )

    @staticmethod
    def _close(note: Notification, ticket: Ticket, state: str, reason: str) -> None:
        note.state = state
        metrics.notification(note.kind, state)
        log.info(
            f"notify.{state}",
            extra={"notification_id": note.id, "tracking_id": ticket.tracking_id, "kind": note.kind, "reason": reason},
        )

    def _mark_sent(self, outgoing: Outgoing, sent_id: str) -> None:
        values: dict[str, Any] = {"state": SENT, "message_id": sent_id, "sent_at": self._now()}
        if outgoing.announced is not None:
            values["status"] = outgoing.announced  # what the reporter was told, for the next "unchanged" check
        with self._store.session() as session:
            session.execute(
                update(Notification)
                .where(Notification.id == outgoing.notification_id, Notification.state == PENDING)
                .values(**values)
            )
        log.info(
            "notify.sent",
            extra={
                "notification_id": outgoing.notification_id,
                "tracking_id": outgoing.ticket.tracking_id,
                "kind": outgoing.kind,
                "status": outgoing.announced,
                "message_id": sent_id,
            },
        )

    # --- composing ----------------------------------------------------------------------------

    def context(self, outgoing: Outgoing) -> dict[str, Any]:
        ticket = outgoing.ticket
        locale = locale_of(ticket, self._wording)
        texts = self._wording[locale]
        kind = Kind(ticket.kind) if ticket.kind in {k.value for k in Kind} else None
        slot = SprintSlot(ticket.sprint_slot) if ticket.sprint_slot in {s.value for s in SprintSlot} else None
        planned = planned_for(ticket)
        sprint = sprint_info(planned.name, planned.start_date, planned.due_date, locale) if planned else None
        if sprint is None:
            slot = None  # planned without a sprint: "waiting to be planned"
        status = Status(outgoing.announced or ticket.status)
        reason = ticket.status_reason or (DEFAULT_DECLINE_REASON if status is Status.DECLINED else None)
        public = self._settings.server.public_url
        return {
            "kind": outgoing.kind,
            "locale": locale,
            "tracking_id": ticket.tracking_id,
            "first_name": (ticket.reporter_name or "").split()[0] if (ticket.reporter_name or "").strip() else None,
            "status": status.value,
            "status_text": status_text(ticket, status, self._wording),  # the same sentence as API and status page
            "ticket_kind": kind.value if kind else None,
            "kind_text": texts.kinds.get(kind, "") if kind else "",
            "slot": slot.value if slot else None,
            "sprint": sprint,
            "reason_text": texts.reasons.get(reason, reason) if reason else None,
            "report": {
                "title": ticket.title,
                "excerpt": excerpt(ticket.description),
                "impact": excerpt(ticket.impact) or None,
                "priority": ticket.declared_priority,
            },
            "comment": outgoing.comment or "",
            "status_url": status_url(public, self._secret_key, ticket.tracking_id),
            "unsubscribe_url": unsubscribe_url(public, self._secret_key, ticket.tracking_id),
        }

    def compose(self, outgoing: Outgoing) -> EmailMessage:
        ticket = outgoing.ticket
        context = self.context(outgoing)
        rendered = self.templates.render(context["locale"], context)
        reply_to = reply_address(self._mail_from, self._settings.mail.reply_to, ticket.reply_token)
        own_id = message_id(ticket.tracking_id, outgoing.notification_id, self._domain)

        message = EmailMessage(policy=MAIL_POLICY)
        try:
            message["From"] = self._mail_from
            message["To"] = Address(
                display_name=" ".join((ticket.reporter_name or "").split()), addr_spec=ticket.reporter_email.strip()
            )
            message["Reply-To"] = reply_to
        except (MessageError, ValueError, IndexError, TypeError) as exc:
            # An address no header can hold (``x@kunde.dk.`` raises HeaderParseError) never will:
            # a dead letter now, not 72 h of retries. Never the address itself in the error: it
            # ends up in logs and the dead-letter list.
            raise PermanentError(f"{ticket.tracking_id}: cannot address the email: {type(exc).__name__}") from None
        message["Subject"] = f"[{ticket.tracking_id}] {rendered.subject}"
        message["Date"] = format_datetime(self._now())
        message["Message-ID"] = own_id
        if outgoing.thread:
            # RFC 5322 3.6.4: the parent is our previous email; the thread starts with the first one.
            parent = outgoing.thread[-1]
            message["In-Reply-To"] = parent
            message["References"] = " ".join(dict.fromkeys([outgoing.thread[0], parent]))
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: auto-responders must not answer
        message["X-Auto-Response-Suppress"] = "All"  # Exchange: no out-of-office replies to us
        message["List-Unsubscribe"] = (
            f"<{context['unsubscribe_url']}>, "
            f"<mailto:{quote(reply_to, safe='@+')}?subject={quote('unsubscribe ' + ticket.tracking_id)}>"
        )
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"  # RFC 8058
        message.set_content(rendered.text)
        message.add_alternative(rendered.html, subtype="html")
        # After the parts exist: making the message multipart moves Content-* headers into the first part.
        message["Content-Language"] = context["locale"]
        return message


class _UrlListHeader(UnstructuredHeader, BaseHeader):
    """``List-Unsubscribe`` (RFC 2369): ASCII URLs in angle brackets, folded between the URLs only.

    The default folding turns a token longer than a line into RFC 2047 encoded-words, and a mail
    client cannot use an encoded ``mailto:``; RFC 5322 allows lines of up to 998 characters, which
    each URL stays well within.
    """

    def fold(self, *, policy: Policy) -> str:
        urls = [url.strip() for url in str(self).split(",") if url.strip()]
        return f"{self.name}: " + f",{policy.linesep} ".join(urls) + policy.linesep


def _mail_policy() -> Policy:
    """SMTP (CRLF line ends, non-ASCII headers as RFC 2047 encoded-words) with URL lists kept readable."""
    registry = HeaderRegistry()
    registry.map_to_type("list-unsubscribe", _UrlListHeader)
    return SMTP.clone(header_factory=registry)


MAIL_POLICY = _mail_policy()


def _newest(session: Session, note: Notification) -> int | None:
    """The newest pending-or-sent notification of the same kind and ticket."""
    newest: int | None = session.scalar(
        select(func.max(Notification.id)).where(
            Notification.ticket_id == note.ticket_id,
            Notification.kind == note.kind,
            Notification.state.in_((PENDING, SENT)),
        )
    )
    return newest


def _sent_before(session: Session, note: Notification, *, kinds: tuple[str, ...]) -> str | None:
    """The status told by the ticket's last sent notification of these kinds (None: none sent)."""
    last = session.execute(
        select(Notification.status)
        .where(
            Notification.ticket_id == note.ticket_id,
            Notification.kind.in_(kinds),
            Notification.state == SENT,
            Notification.id != note.id,
        )
        .order_by(Notification.id.desc())
        .limit(1)
    ).first()
    if last is None:
        return None
    return str(last[0] or "")


def build_mailer(settings: Settings) -> Mailer:
    """SMTP when ``mail.smtp_host`` is set, otherwise the log."""
    mail = settings.mail
    if mail.smtp_host:
        from bridge.adapters.mail.smtp import SmtpMailer

        return SmtpMailer(
            host=mail.smtp_host,
            port=mail.smtp_port,
            username=mail.smtp_username,
            password=mail.smtp_password,
            starttls=mail.smtp_starttls,
            tls=mail.smtp_tls,
            ca_file=mail.smtp_ca_file,
            timeout=mail.smtp_timeout_seconds,
        )
    from bridge.adapters.mail.log import LogMailer

    return LogMailer()
