"""``/u/<tracking_id>?s=<sig>``: stop the emails about one ticket.

``GET`` only shows a confirmation page with a button: link scanners and previews fetch
links, and must not unsubscribe anyone. ``POST`` mutes the ticket, from that button or
as the RFC 8058 one-click POST (body ``List-Unsubscribe=One-Click``) a mail client sends
for the ``List-Unsubscribe`` header. The signature has its own purpose, so a status link
cannot be turned into an unsubscribe link; a wrong one is a 404, like an unknown ticket.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, request, url_for
from sqlalchemy import update

from bridge.adapters.store.models import Ticket
from bridge.bootstrap import Deps, current_deps
from bridge.pipeline.notifying.email import EmailTemplates
from bridge.tracking import is_tracking_id, valid_unsubscribe_signature
from bridge.web.problems import problem

log = logging.getLogger(__name__)

bp = Blueprint("unsubscribe", __name__)

_TEMPLATES = "unsubscribe.templates"


@bp.route("/u/<tracking_id>", methods=["GET", "POST"])
def unsubscribe(tracking_id: str) -> Response:
    deps = current_deps()
    signature = request.args.get("s", "")
    if not is_tracking_id(tracking_id) or not valid_unsubscribe_signature(deps.secret_key, tracking_id, signature):
        return _not_found()
    ticket = deps.store.ticket_by_tracking_id(tracking_id)
    if ticket is None:
        return _not_found()
    locale = ticket.locale if ticket.locale in ("da", "en") else "en"
    if request.method == "POST":
        with deps.store.session() as session:
            session.execute(update(Ticket).where(Ticket.id == ticket.id).values(notifications_muted=True))
        log.info(
            "unsubscribe.muted",
            extra={"tracking_id": tracking_id, "one_click": request.form.get("List-Unsubscribe") == "One-Click"},
        )
        state = "done"
    else:
        state = "done" if ticket.notifications_muted else "confirm"
    html = _templates(deps).page(
        locale,
        "unsubscribe",
        tracking_id=tracking_id,
        state=state,
        action_url=url_for("unsubscribe.unsubscribe", tracking_id=tracking_id, s=signature),
    )
    response = Response(html, status=200, mimetype="text/html")
    response.headers["Content-Language"] = locale
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # the URL carries the signature
    response.headers["X-Robots-Tag"] = "noindex"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    )
    return response


def _templates(deps: Deps) -> EmailTemplates:
    templates = deps.extras.get(_TEMPLATES)
    if not isinstance(templates, EmailTemplates):
        templates = EmailTemplates(deps.mappings.templates_dir, deps.mappings.wording)
        deps.extras[_TEMPLATES] = templates
    return templates


def _not_found() -> Response:
    return problem(404, "Not Found", "this unsubscribe link is not valid", slug="unsubscribe-link")
