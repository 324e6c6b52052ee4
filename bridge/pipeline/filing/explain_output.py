"""An ``Explanation`` for people (Danish or English text) and for tools (JSON, the admin API's answer).

Only the human labels and sentences are translated; values (severities, rule names, labels, sprint
names) are shown as the mappings and the tracker spell them. Never an email address: the input is
described by its channel, locale, organisation and product.
"""

from __future__ import annotations

from typing import Any, Literal

from bridge.domain import Sprint
from bridge.pipeline.filing.explain import Explanation, SlotSeen, SprintDecision

Lang = Literal["da", "en"]
LANGS: tuple[Lang, ...] = ("en", "da")

_TEXT: dict[str, dict[Lang, str]] = {
    "input": {"en": "input", "da": "input"},
    "source.fields": {"en": "fields", "da": "felter"},
    "source.event": {"en": "chatbot event", "da": "chatbot-hændelse"},
    "source.email": {"en": "email", "da": "e-mail"},
    "channel": {"en": "channel", "da": "kanal"},
    "locale": {"en": "language", "da": "sprog"},
    "organization": {"en": "organisation", "da": "organisation"},
    "product": {"en": "product", "da": "produkt"},
    "title": {"en": "title", "da": "titel"},
    "declared_priority": {"en": "declared priority", "da": "angivet prioritet"},
    "intake": {"en": "intake", "da": "modtagelse"},
    "intake.ticket": {"en": "a new ticket", "da": "en ny sag"},
    "intake.ignored": {"en": "ignored, no ticket", "da": "ignoreret, ingen sag"},
    "intake.rejected": {"en": "rejected, no ticket", "da": "afvist, ingen sag"},
    "intake.followup": {
        "en": "a reply to one of our emails: a follow-up on that ticket if it is the sender's",
        "da": "et svar på en af vores e-mails: en opfølgning på den sag, hvis den er afsenderens",
    },
    "severity": {"en": "severity", "da": "alvorlighed"},
    "po_review": {"en": "product-owner review", "da": "produktejer-gennemgang"},
    "yes": {"en": "yes", "da": "ja"},
    "no": {"en": "no", "da": "nej"},
    "category": {"en": "category", "da": "kategori"},
    "category.component": {
        "en": "as the component {component} if the project has one, else as the label {label}",
        "da": "som komponenten {component}, hvis projektet har en, ellers som etiketten {label}",
    },
    "route": {"en": "route", "da": "rute"},
    "route.default": {"en": "default", "da": "standard"},
    "board": {"en": "board", "da": "board"},
    "labels": {"en": "labels", "da": "etiketter"},
    "jira_priority": {"en": "Jira priority", "da": "Jira-prioritet"},
    "sprint": {"en": "sprint", "da": "sprint"},
    "sprint.none": {"en": "no cached sprints; use --online", "da": "ingen gemte sprints; brug --online"},
    "sprint.error": {"en": "sprints could not be read", "da": "sprints kunne ikke læses"},
    "sprint.always": {
        "en": "{severity} always goes to the {slot} sprint",
        "da": "{severity} går altid i den {slot} sprint",
    },
    "sprint.room": {"en": "the {slot} sprint has room", "da": "den {slot} sprint har plads"},
    "dates": {"en": "{start} to {due}", "da": "{start} til {due}"},
    "sprint.unplanned": {
        "en": "no {slots} sprint exists or has room: filed as needs-planning",
        "da": "ingen {slots} sprint findes eller har plads: oprettes som needs-planning",
    },
    "slot.current": {"en": "current", "da": "nuværende"},
    "slot.next": {"en": "next", "da": "næste"},
    "seen.missing": {"en": "no such sprint", "da": "ingen sådan sprint"},
    "seen.load": {"en": "load {load}/{limit} {unit}", "da": "belastning {load}/{limit} {unit}"},
    "seen.full": {"en": "full", "da": "fuld"},
    "seen.unasked": {"en": "load not needed", "da": "belastning ikke nødvendig"},
    "unit.issues": {"en": "issues", "da": "sager"},
    "unit.weight": {"en": "weight", "da": "vægt"},
    "problems": {"en": "problems", "da": "problemer"},
    "problems.text": {
        "en": "grouping not enabled; every report gets an issue of its own",
        "da": "gruppering er ikke slået til; hver rapport får sin egen sag",
    },
    "rules": {"en": "rules that fired", "da": "regler der slog til"},
}


def text(key: str, lang: Lang, **values: object) -> str:
    return _TEXT[key][lang].format(**values)


# --- JSON --------------------------------------------------------------------------------------------


def as_json(explanation: Explanation, *, lang: Lang = "en") -> dict[str, Any]:
    """The explanation as data (the same for the CLI's ``--json`` and the admin API); ``lang`` picks
    the category text and the sprint note."""
    candidate, report = explanation.candidate, explanation.candidate.report
    body: dict[str, Any] = {
        "input": {
            "source": candidate.source,
            "channel": report.channel.value,
            "locale": candidate.locale,
            "organization": report.organization,
            "product": report.product,
            "title": report.title,
            "declared_priority": report.declared_priority,
        },
        "intake": {
            "state": candidate.intake.state,
            "reason": candidate.intake.reason,
            "maybe_followup": candidate.intake.maybe_followup,
        },
        "severity": None,
        "kind": None,
        "po_review": None,
        "category": None,
        "route": None,
        "labels": list(explanation.labels),
        "jira_priority": explanation.jira_priority,
        "sprint": None,
        "problems": {"grouping": False, "reason": explanation.problems, "text": text("problems.text", lang)},
        "rules": list(explanation.rules),
    }
    classification = explanation.classification
    if classification is not None:
        body["severity"] = classification.severity.value
        body["kind"] = classification.kind.value
        body["po_review"] = classification.po_review
    if explanation.category is not None:
        category_text = explanation.category_text
        mark = explanation.category_mark
        body["category"] = {
            "name": explanation.category.name,
            "text": getattr(category_text, lang) if category_text is not None else None,
            "rule": explanation.category.rule,
            "label": mark.label if mark is not None else None,
            "component": mark.component if mark is not None else None,
        }
    dest = explanation.destination
    if dest is not None:
        body["route"] = {
            "name": explanation.route_name,
            "tracker": dest.tracker,
            "project": dest.project,
            "board_id": dest.board_id,
        }
    if explanation.sprint is not None and classification is not None:
        body["sprint"] = _sprint_json(explanation.sprint, classification.severity.value, lang)
    return body


def _sprint_json(sprint: SprintDecision, severity: str, lang: Lang) -> dict[str, Any]:
    plan = sprint.plan
    return {
        "source": sprint.source,
        "chosen": _sprint(plan.sprint) if plan is not None and plan.sprint is not None else None,
        "slot": plan.slot.value if plan is not None and plan.slot is not None else None,
        "needs_planning": plan.needs_planning if plan is not None else None,
        "capacity_unit": sprint.unit,
        "ignore_capacity": sprint.ignore_capacity,
        "considered": [
            {
                "slot": seen.slot.value,
                "sprint": _sprint(seen.sprint) if seen.sprint is not None else None,
                "load": seen.load,
                "limit": seen.limit,
            }
            for seen in sprint.seen
        ],
        "error": sprint.error,
        "text": _sprint_sentence(sprint, severity, lang),
    }


def _sprint(sprint: Sprint) -> dict[str, Any]:
    return {
        "name": sprint.name,
        "start_date": sprint.start_date.isoformat() if sprint.start_date else None,
        "due_date": sprint.due_date.isoformat() if sprint.due_date else None,
    }


# --- text --------------------------------------------------------------------------------------------


def as_text(explanation: Explanation, *, lang: Lang = "en") -> str:
    candidate, report = explanation.candidate, explanation.candidate.report
    lines: list[str] = []

    def line(key: str, value: str) -> None:
        label = text(key, lang)
        lines.append(f"{label[:1].upper()}{label[1:]}: {value}")

    described = [text(f"source.{candidate.source}", lang), f"{text('channel', lang)} {report.channel.value}"]
    described.append(f"{text('locale', lang)} {candidate.locale}")
    if report.organization:
        described.append(f"{text('organization', lang)} {report.organization}")
    if report.product:
        described.append(f"{text('product', lang)} {report.product}")
    line("input", ", ".join(described))
    line("title", report.title)
    if report.declared_priority:
        line("declared_priority", report.declared_priority)
    intake = candidate.intake
    line("intake", text(f"intake.{intake.state}", lang) + (f" ({intake.reason})" if intake.reason else ""))
    if intake.maybe_followup:
        lines.append(f"  {text('intake.followup', lang)}")

    classification = explanation.classification
    if classification is not None:
        review = text("yes" if classification.po_review else "no", lang)
        line(
            "severity",
            f"{classification.severity.value} ({classification.kind.value}); {text('po_review', lang)}: {review}",
        )
    if explanation.category is not None:
        shown = getattr(explanation.category_text, lang) if explanation.category_text is not None else None
        name = explanation.category.name + (f" ({shown})" if shown else "")
        line("category", f"{name}; {explanation.category.rule}")
        mark = explanation.category_mark
        if mark is not None and mark.component is not None:
            lines.append(f"  {text('category.component', lang, component=mark.component, label=mark.label)}")
    dest = explanation.destination
    if dest is not None:
        board = f" {text('board', lang)} {dest.board_id}" if dest.board_id else ""
        which = explanation.route_name or text("route.default", lang)
        line("route", f"{dest.tracker} {dest.project or '-'}{board} ({which})")
        line("labels", ", ".join(explanation.labels) or "-")
        if explanation.jira_priority:
            line("jira_priority", explanation.jira_priority)
    if explanation.sprint is not None and classification is not None:
        line("sprint", _sprint_sentence(explanation.sprint, classification.severity.value, lang))
        for seen in explanation.sprint.seen:
            lines.append(f"  {_seen_text(seen, explanation.sprint, lang)}")
    line("problems", text("problems.text", lang))
    lines.append(f"{text('rules', lang).capitalize()}:")
    lines += [f"  {rule}" for rule in explanation.rules] or ["  -"]
    return "\n".join(lines)


def _sprint_sentence(sprint: SprintDecision, severity: str, lang: Lang) -> str:
    if sprint.error is not None:
        return f"{text('sprint.error', lang)}: {sprint.error}"
    plan = sprint.plan
    if plan is None:
        return text("sprint.none", lang)
    if plan.sprint is None or plan.slot is None:
        slots = "/".join(text(f"slot.{seen.slot.value}", lang) for seen in sprint.seen) or "-"
        return text("sprint.unplanned", lang, slots=slots)
    slot = text(f"slot.{plan.slot.value}", lang)
    why = (
        text("sprint.always", lang, severity=severity, slot=slot)
        if sprint.ignore_capacity
        else text("sprint.room", lang, slot=slot)
    )
    return f"{plan.sprint.name} ({_dates(plan.sprint, lang)}): {why}"


def _seen_text(seen: SlotSeen, sprint: SprintDecision, lang: Lang) -> str:
    slot = text(f"slot.{seen.slot.value}", lang)
    if seen.sprint is None:
        return f"{slot}: {text('seen.missing', lang)}"
    if seen.load is None:
        load = text("seen.unasked", lang)
    else:
        unit = text(f"unit.{sprint.unit}", lang)
        load = text("seen.load", lang, load=f"{seen.load:g}", limit=f"{seen.limit:g}", unit=unit)
        if seen.load >= seen.limit:
            load += f" ({text('seen.full', lang)})"
    return f"{slot}: {seen.sprint.name} ({_dates(seen.sprint, lang)}), {load}"


def _dates(sprint: Sprint, lang: Lang) -> str:
    start = sprint.start_date.isoformat() if sprint.start_date else "?"
    due = sprint.due_date.isoformat() if sprint.due_date else "?"
    return text("dates", lang, start=start, due=due)
