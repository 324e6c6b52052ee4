"""Report -> category (the area: widget, billing, login ...), from ``mappings/categories.yaml``.

Pure: no I/O, no clock. What the report says about itself wins over its words: first the chatbot's
``product`` and the address an email was sent to, in rule order; then phrases in the title,
description and impact, in rule order, matched as whole words like the severity rules. The rule
that fired is named, so support can see why.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.domain import Report
from bridge.mappings import CategoryRules
from bridge.pipeline.filing.classify import matching_phrase, normalise


@dataclass(frozen=True, kw_only=True)
class CategoryDecision:
    name: str
    rule: str
    """Why: ``product:<value>``, ``address:<address>``, ``phrase:<phrase>`` or ``default``."""

    @property
    def reason(self) -> str:
        return f"category:{self.name}({self.rule})"


def categorize(report: Report, rules: CategoryRules, *, recipient: str | None = None) -> CategoryDecision:
    """The category of ``report``; ``recipient`` is the address an email report was sent to."""
    if report.product:
        product = normalise(report.product.strip())
        for rule in rules.categories:
            if any(normalise(value) == product for value in rule.products):
                return CategoryDecision(name=rule.name, rule=f"product:{report.product.strip()}")
    if recipient:
        address = normalise(recipient.strip())
        local_part = address.partition("@")[0]
        for rule in rules.categories:
            for value in rule.addresses:
                wanted = normalise(value)
                if wanted == address or ("@" not in wanted and wanted == local_part):
                    return CategoryDecision(name=rule.name, rule=f"address:{value}")
    text = "\n".join(part for part in (report.title, report.description, report.impact) if part)
    for rule in rules.categories:
        phrase = matching_phrase(text, rule.phrases)
        if phrase:
            return CategoryDecision(name=rule.name, rule=f"phrase:{phrase}")
    return CategoryDecision(name=rules.default, rule="default")
