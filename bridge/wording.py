"""Reporter-facing status texts in Danish and English, from ``mappings/templates/<locale>/status.yaml``."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from bridge.domain import Kind, SprintSlot, Status
from bridge.errors import Problem
from bridge.yamlfile import YamlFileError, load_yaml, validate

LOCALES = ("da", "en")


class TriagedTexts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    current: str
    next: str
    unplanned: str


class StatusTexts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    received: str
    triaged: TriagedTexts
    in_progress: str
    in_qa: str
    resolved: str
    declined: str
    reopened: str
    kinds: dict[Kind, str]
    reasons: dict[str, str]

    def text(
        self,
        status: Status,
        *,
        kind: Kind | None = None,
        slot: SprintSlot | None = None,
        sprint: str | None = None,
        reason: str | None = None,
    ) -> str:
        values = {
            "kind": self.kinds.get(kind, "") if kind else "",
            "sprint": sprint or "",
            "reason": self.reasons.get(reason or "", reason or ""),
        }
        if status is Status.TRIAGED:
            by_slot = {SprintSlot.CURRENT: self.triaged.current, SprintSlot.NEXT: self.triaged.next}
            template = by_slot[slot] if slot is not None else self.triaged.unplanned
        else:
            template = getattr(self, status.value)
        return template.format(**values)


def load_wording(templates_dir: Path, problems: list[Problem]) -> dict[str, StatusTexts]:
    wording: dict[str, StatusTexts] = {}
    for locale in LOCALES:
        try:
            loaded = load_yaml(templates_dir / locale / "status.yaml", {})
        except YamlFileError as exc:
            problems.append(exc.problem)
            continue
        texts = validate(StatusTexts, loaded, problems)
        if texts is not None:
            for key, template in _templates(texts):
                try:
                    template.format(kind="", sprint="", reason="")
                except (KeyError, IndexError, ValueError) as exc:
                    problems.append(Problem(file=loaded.path, key=key, line=loaded.line_of(tuple(key.split("."))),
                                            message=f"unknown placeholder: {exc}"))  # fmt: skip
            wording[locale] = texts
    return wording


def _templates(texts: StatusTexts) -> list[tuple[str, str]]:
    pairs = [(s, getattr(texts, s)) for s in ("received", "in_progress", "in_qa", "resolved", "declined", "reopened")]
    pairs += [(f"triaged.{k}", getattr(texts.triaged, k)) for k in ("current", "next", "unplanned")]
    return pairs
