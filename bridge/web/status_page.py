"""``GET /t/<tracking_id>?s=<signature>``: the reporter's status page, from the signed link in our emails.

Server-rendered HTML in the ticket's language, no JavaScript, customer text autoescaped by
Jinja2. A missing or wrong signature and an unknown ticket get the same 404 page, so the
page never reveals whether a tracking ID exists. The URL carries the signature: the page
sends no referrer, is never cached and cannot be framed.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, render_template, request

from bridge.bootstrap import current_deps
from bridge.domain import Status
from bridge.pipeline.notifying.ticket_view import TicketView, iso_utc, ticket_view
from bridge.tracking import is_tracking_id, valid_status_signature

bp = Blueprint("status_page", __name__, template_folder="templates")

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
}

EN_DASH = "\N{EN DASH}"

MONTHS = {
    "da": ("januar", "februar", "marts", "april", "maj", "juni", "juli", "august", "september", "oktober",
           "november", "december"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"),
}  # fmt: skip

PAGE_TEXT: dict[str, dict[str, str]] = {
    "da": {
        "page_title": "Status for sag {tracking_id}",
        "heading": "Status for din fejlrapport",
        "tracking_id": "Sagsnummer",
        "status": "Status",
        "category": "Kategori",
        "plan": "Plan",
        "kind": "Type",
        "sprint": "Sprint",
        "period": "Periode",
        "unplanned": "Ikke planlagt endnu",
        "history": "Forløb",
        "updated": "Senest opdateret",
        "timezone": "Tidspunkter er angivet i tidszonen {timezone}.",
        "help": "Har du spørgsmål, så svar på vores e-mail eller skriv til chatbotten med dit sagsnummer.",
    },
    "en": {
        "page_title": "Status of ticket {tracking_id}",
        "heading": "Status of your problem report",
        "tracking_id": "Tracking ID",
        "status": "Status",
        "category": "Category",
        "plan": "Plan",
        "kind": "Type",
        "sprint": "Sprint",
        "period": "Dates",
        "unplanned": "Not planned yet",
        "history": "History",
        "updated": "Last updated",
        "timezone": "Times are shown in the {timezone} time zone.",
        "help": "Questions? Reply to our email, or ask the chatbot and give it your tracking ID.",
    },
}

# Badge colour per status (a CSS class; the text carries the meaning, colour only helps).
TONES = {
    Status.RECEIVED: "neutral",
    Status.TRIAGED: "info",
    Status.IN_PROGRESS: "active",
    Status.IN_QA: "active",
    Status.RESOLVED: "success",
    Status.DECLINED: "muted",
    Status.REOPENED: "warning",
}


@bp.after_request
def _security_headers(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


@bp.get("/t/<tracking_id>")
def status(tracking_id: str) -> Response | tuple[str, int]:
    deps = current_deps()
    signature = request.args.get("s", "")
    # The signature is checked before the database is asked, so time does not tell whether the ID exists.
    if not (is_tracking_id(tracking_id) and signature.isascii() and signature):
        return _not_found()
    if not valid_status_signature(deps.secret_key, tracking_id, signature):
        return _not_found()
    ticket = deps.store.ticket_by_tracking_id(tracking_id)
    if ticket is None:
        return _not_found()
    mappings = deps.mappings
    view = ticket_view(ticket, deps.store.history(ticket.id), mappings.wording, categories=mappings.categories)
    html = render_template("status/page.html", **page_context(view, deps.settings.timezone))
    return Response(html, mimetype="text/html")


def _not_found() -> tuple[str, int]:
    return render_template("status/not_found.html"), 404


def page_context(view: TicketView, timezone: str) -> dict[str, Any]:
    """Everything the template shows, already localized and formatted."""
    zone = ZoneInfo(timezone)
    locale = view.locale if view.locale in PAGE_TEXT else "en"
    text = PAGE_TEXT[locale]
    plan = view.planned_for
    return {
        "locale": locale,
        "t": text,
        "page_title": text["page_title"].format(tracking_id=view.tracking_id),
        "timezone_note": text["timezone"].format(timezone=timezone),
        "view": view,
        "tone": TONES[view.status],
        "kind_name": (view.kind_name or "").capitalize() or None,
        "sprint_period": format_period(plan.start_date, plan.due_date, locale) if plan else None,
        "updated": {"iso": iso_utc(view.updated_at), "text": format_moment(view.updated_at, zone, locale)},
        "history": [
            {
                "name": entry.name,
                "status": entry.status.value,
                "tone": TONES[entry.status],
                "iso": iso_utc(entry.at),
                "text": format_moment(entry.at, zone, locale),
            }
            for entry in view.history
        ],
    }


def format_date(day: date, locale: str, *, year: bool = True) -> str:
    """``25. november 2026`` (da) or ``25 November 2026`` (en)."""
    month = MONTHS[locale][day.month - 1]
    sep = ". " if locale == "da" else " "
    return f"{day.day}{sep}{month} {day.year}" if year else f"{day.day}{sep}{month}"


def format_period(start: date | None, due: date | None, locale: str) -> str | None:
    """``23. november - 6. december 2026`` (with an en dash); one end alone when the other is unknown."""
    if start and due:
        return f"{format_date(start, locale, year=start.year != due.year)} {EN_DASH} {format_date(due, locale)}"
    single = start or due
    return format_date(single, locale) if single else None


def format_moment(moment: datetime, zone: ZoneInfo, locale: str) -> str:
    """``25. november 2026 kl. 11.15`` (da) or ``25 November 2026, 11:15`` (en), in ``zone``."""
    local = moment.astimezone(zone)
    if locale == "da":
        return f"{format_date(local.date(), locale)} kl. {local:%H.%M}"
    return f"{format_date(local.date(), locale)}, {local:%H:%M}"
