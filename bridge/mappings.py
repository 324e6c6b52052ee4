"""Behaviour as data: ``mappings/*.yaml`` parsed into typed, validated objects."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bridge.domain import Severity, SprintSlot, Status
from bridge.errors import ConfigError, Problem
from bridge.pipeline.intake.email.rules import EmailRules
from bridge.wording import StatusTexts, load_wording
from bridge.yamlfile import LoadedYaml, YamlFileError, load_yaml, validate


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _phrases_ok(phrases: list[str]) -> list[str]:
    cleaned = [p.strip() for p in phrases]
    if any(not p for p in cleaned):
        raise ValueError("phrases must not be empty")
    return cleaned


# --- severity.yaml -------------------------------------------------------------------------


class KeywordRule(_Model):
    name: str = Field(min_length=1)
    severity: Severity
    po_review: bool = False
    phrases: list[str] = Field(min_length=1)

    _check_phrases = field_validator("phrases")(_phrases_ok)


class OrganizationTier(_Model):
    min_severity: Severity | None = None
    po_review: bool = False


class ProductRule(_Model):
    min_severity: Severity | None = None
    po_review: bool = False


class Negations(_Model):
    """Words that negate a phrase: ``before`` it ("ikke kritisk", "not so urgent": at most one word
    between), or ``after`` it ("det haster ikke"). A negated phrase never raises the severity."""

    before: list[str] = []
    after: list[str] = []

    _check_before = field_validator("before")(_phrases_ok)
    _check_after = field_validator("after")(_phrases_ok)


class SeverityRules(_Model):
    default: Severity = Severity.MEDIUM
    hotfix_severities: list[Severity] = [Severity.CRITICAL]
    declared_priority: dict[Severity, list[str]] = {}
    keywords: list[KeywordRule] = []
    high_impact_phrases: list[str] = []
    po_review_severities: list[Severity] = [Severity.CRITICAL]
    organization_tiers: dict[str, OrganizationTier] = {}
    organizations: dict[str, str] = {}
    products: dict[str, ProductRule] = {}
    negations: Negations = Negations()

    @model_validator(mode="after")
    def _tiers_exist(self) -> SeverityRules:
        unknown = sorted({t for t in self.organizations.values() if t not in self.organization_tiers})
        if unknown:
            raise ValueError(f"organizations refer to undefined tier(s): {', '.join(unknown)}")
        return self


# --- routing.yaml --------------------------------------------------------------------------


class RouteCondition(_Model):
    """Every condition given must hold; each lists the values that match (case-insensitive)."""

    product: list[str] = []
    organization: list[str] = []
    category: list[str] = []
    """Category names from ``categories.yaml``: routing then comes after categorising."""

    @model_validator(mode="after")
    def _not_empty(self) -> RouteCondition:
        if not self.product and not self.organization and not self.category:
            raise ValueError("a route needs `product`, `organization` and/or `category` in `when`")
        return self


class Route(_Model):
    name: str = Field(min_length=1)
    when: RouteCondition
    tracker: Literal["gitlab", "jira"]
    project: str | None = None
    board_id: int | None = None


CATEGORY_PLACEHOLDER = "{category}"

CATEGORY_DEFAULTS: dict[str, dict[str, object]] = {
    "gitlab": {"category": "category::{category}", "category_as_component": False},
    "jira": {"category": "category-{category}", "category_as_component": True},
}
"""CONTRACT section 6: GitLab's scoped label; Jira's component of that name, else the label."""


class LabelScheme(_Model):
    severity: str
    kind: str
    source: str
    po_review: str
    needs_planning: str
    support_review: str = "needs-support-review"
    """Set when a reporter disputes a declined ticket: a person should look."""
    category: str = "category::{category}"
    """The category's label, ``{category}`` its name (Jira's default, ``category-{category}``, is
    filled in by ``Routing``). Read back from the tracker too, so it holds ``{category}`` once."""
    category_as_component: bool = False
    """Jira: the category goes in as the project's component of that name when the project has one,
    else as the label (on by default for Jira)."""

    @field_validator("severity", "kind", "source", "po_review", "needs_planning", "support_review")
    @classmethod
    def _placeholders_known(cls, value: str) -> str:
        try:
            value.format(severity="s", kind="k", source="c")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"unknown placeholder in {value!r}: {exc}") from None
        return value

    @field_validator("category")
    @classmethod
    def _one_category_placeholder(cls, value: str) -> str:
        try:
            value.format(category="c")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"unknown placeholder in {value!r}: {exc}") from None
        if value.count(CATEGORY_PLACEHOLDER) != 1 or "{{" in value or "}}" in value:
            raise ValueError(f"{value!r} must hold {CATEGORY_PLACEHOLDER} exactly once (and no other braces)")
        return value

    def category_label(self, name: str) -> str:
        return self.category.replace(CATEGORY_PLACEHOLDER, name)

    def category_of_label(self, label: str) -> str | None:
        """The category name a label of the ``category`` form carries (prefix and suffix compared
        case-insensitively), as written; None for any other label."""
        prefix, _, suffix = self.category.partition(CATEGORY_PLACEHOLDER)
        if len(label) <= len(prefix) + len(suffix):
            return None
        head, tail = label[: len(prefix)], label[len(label) - len(suffix) :]
        if head.casefold() != prefix.casefold() or tail.casefold() != suffix.casefold():
            return None
        return label[len(prefix) : len(label) - len(suffix)].strip() or None


class Routing(_Model):
    routes: list[Route] = []
    labels: dict[Literal["gitlab", "jira"], LabelScheme]
    jira_priority: dict[Severity, str]

    @model_validator(mode="before")
    @classmethod
    def _category_defaults(cls, value: object) -> object:
        """Each tracker's own category defaults where its label scheme does not set them."""
        if not isinstance(value, dict) or not isinstance(value.get("labels"), dict):
            return value
        labels = dict(value["labels"])
        for tracker, defaults in CATEGORY_DEFAULTS.items():
            scheme = labels.get(tracker)
            if isinstance(scheme, dict):
                labels[tracker] = {**defaults, **scheme}
        return {**value, "labels": labels}

    @model_validator(mode="after")
    def _complete(self) -> Routing:
        missing = [t for t in ("gitlab", "jira") if t not in self.labels]
        if missing:
            raise ValueError(f"labels missing for: {', '.join(missing)}")
        gitlab = self.labels.get("gitlab")
        if gitlab is not None and gitlab.category_as_component:
            raise ValueError("labels.gitlab.category_as_component: GitLab has no components (a Jira setting)")
        missing_prio = [s.value for s in Severity if s not in self.jira_priority]
        if missing_prio:
            raise ValueError(f"jira_priority missing for: {', '.join(missing_prio)}")
        return self


# --- sprints.yaml --------------------------------------------------------------------------


class Placement(_Model):
    sprints: list[SprintSlot] = Field(min_length=1)
    ignore_capacity: bool = False


class Capacity(_Model):
    unit: Literal["issues", "weight"] = "issues"
    current: float = Field(10, ge=0)
    next: float = Field(20, ge=0)

    def limit(self, slot: SprintSlot) -> float:
        return self.current if slot is SprintSlot.CURRENT else self.next


class SprintMatch(_Model):
    title_pattern: str | None = None
    include_group_milestones: bool = True

    @field_validator("title_pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class SprintPolicy(_Model):
    placement: dict[Severity, Placement]
    capacity: Capacity = Capacity()
    cache_seconds: float = Field(60, ge=0)
    match: SprintMatch = SprintMatch()

    @model_validator(mode="after")
    def _every_severity_placed(self) -> SprintPolicy:
        missing = [s.value for s in Severity if s not in self.placement]
        if missing:
            raise ValueError(f"placement missing for: {', '.join(missing)}")
        return self


# --- status.yaml ---------------------------------------------------------------------------


class GitLabStatusMap(_Model):
    open_labels: dict[str, Status] = {}
    declined_labels: dict[str, str] = {}


class JiraStatusMap(_Model):
    status_ids: dict[str, Status] = {}
    status_names: dict[str, Status] = {}
    categories: dict[str, Status] = {}
    declined_resolutions: dict[str, str] = {}


class CommentPolicy(_Model):
    """Which of one tracker's comments reach the reporter (internal ones never do).

    ``all``: every comment that is not internal. ``marked``: only comments marked for the reporter:
    public in Jira Service Management (``jsdPublic: true``), or starting with ``marker``.
    """

    public: Literal["all", "marked"] = "all"
    marker: str = Field("#reporter", min_length=1)
    """Removed from the comment before it is sent (under both policies)."""


class CommentPolicies(_Model):
    """Per tracker (CONTRACT section 5): a GitLab note that is not internal is public, as in Service
    Desk; Jira Software has no internal comments, so there only marked comments go out."""

    gitlab: CommentPolicy = CommentPolicy(public="all")
    jira: CommentPolicy = CommentPolicy(public="marked")

    @model_validator(mode="before")
    @classmethod
    def _one_policy_for_both(cls, value: object) -> object:
        """The earlier form, one policy (``public``, ``marker``) for every tracker, still reads."""
        if isinstance(value, dict) and value and set(value) <= {"public", "marker"}:
            return {"gitlab": value, "jira": value}
        return value

    def of(self, tracker: str) -> CommentPolicy:
        return self.jira if tracker == "jira" else self.gitlab


class StatusMap(_Model):
    gitlab: GitLabStatusMap = GitLabStatusMap()
    jira: JiraStatusMap = JiraStatusMap()
    jira_priority_severity: dict[str, Severity] = {}
    comments: CommentPolicies = CommentPolicies()
    reopen_window_days: float = Field(30, ge=0)


# --- categories.yaml -----------------------------------------------------------------------

CATEGORY_NAME = r"^[a-z0-9][a-z0-9-]*$"
"""Category names become tracker labels (``category::<name>``, ``category-<name>``) and metric labels."""


class CategoryText(_Model):
    da: str = Field(min_length=1)
    en: str = Field(min_length=1)


class CategoryRule(_Model):
    name: str = Field(pattern=CATEGORY_NAME)
    text: CategoryText
    products: list[str] = []
    """Values of the chatbot's ``product`` field that mean this category (case-insensitive)."""
    addresses: list[str] = []
    """Recipient addresses of an email (whole address, or the part before ``@``)."""
    phrases: list[str] = []
    """Whole-word phrases in the title, description and impact."""

    _check_phrases = field_validator("products", "addresses", "phrases")(_phrases_ok)


class CategoryRules(_Model):
    default: str = Field("other", pattern=CATEGORY_NAME)
    categories: list[CategoryRule] = Field(min_length=1)

    @model_validator(mode="after")
    def _default_is_a_category(self) -> CategoryRules:
        if self.default not in self.names:
            raise ValueError(f"default {self.default!r} is not one of the categories")
        return self

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(rule.name for rule in self.categories)

    def rule(self, name: str) -> CategoryRule | None:
        return next((rule for rule in self.categories if rule.name == name), None)


def duplicate_names(loaded: LoadedYaml, path: tuple[str, ...], field: str = "name") -> list[Problem]:
    """A problem, at its file, line and key, for each entry of the list at ``path`` whose ``field``
    repeats an earlier entry's (validation sees only the values, not where the second one is)."""
    entries: object = loaded.data
    for key in path:
        entries = entries.get(key) if isinstance(entries, dict) else None
    if not isinstance(entries, list):
        return []
    problems: list[Problem] = []
    first: dict[str, int] = {}
    for index, entry in enumerate(entries):
        name = entry.get(field) if isinstance(entry, dict) else None
        if not isinstance(name, str):
            continue
        if name in first:
            loc: tuple[str | int, ...] = (*path, index, field)
            problems.append(
                Problem(
                    file=loaded.path,
                    key=".".join(str(part) for part in loc),
                    line=loaded.line_of(loc),
                    message=f"duplicate {field} {name!r} (already used by entry {first[name]})",
                )
            )
        else:
            first[name] = index
    return problems


def unknown_route_categories(loaded: LoadedYaml, routing: Routing, categories: CategoryRules) -> list[Problem]:
    """A problem for each route condition naming a category ``categories.yaml`` does not have:
    such a route could never match."""
    known = {name.casefold() for name in categories.names}
    problems: list[Problem] = []
    for index, candidate in enumerate(routing.routes):
        for position, name in enumerate(candidate.when.category):
            if name.strip().casefold() not in known:
                loc: tuple[str | int, ...] = ("routes", index, "when", "category", position)
                problems.append(
                    Problem(
                        file=loaded.path,
                        key=".".join(str(part) for part in loc),
                        line=loaded.line_of(loc),
                        message=f"unknown category {name!r} (categories.yaml has: {', '.join(categories.names)})",
                    )
                )
    return problems


# --- all of them ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Mappings:
    severity: SeverityRules
    routing: Routing
    sprints: SprintPolicy
    status: StatusMap
    email: EmailRules
    """Sender domains, languages and reply phrases of the email intake (``email.yaml``)."""
    categories: CategoryRules
    """The area of a report (``categories.yaml``)."""
    wording: dict[str, StatusTexts]
    """Status texts per locale (``da``, ``en``)."""
    templates_dir: Path


_FILES: dict[str, tuple[str, type[BaseModel]]] = {
    "severity": ("severity.yaml", SeverityRules),
    "routing": ("routing.yaml", Routing),
    "sprints": ("sprints.yaml", SprintPolicy),
    "status": ("status.yaml", StatusMap),
    "email": ("email.yaml", EmailRules),
    "categories": ("categories.yaml", CategoryRules),
}

# Lists whose entries are named: a repeated name is refused where it stands.
_NAMED_LISTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "severity": (("keywords",),),
    "routing": (("routes",),),
    "categories": (("categories",),),
}


def load_mappings(directory: Path, env: Mapping[str, str] | None = None) -> Mappings:
    """Load every mapping file; raise one ``ConfigError`` listing all problems in all files."""
    problems: list[Problem] = []
    parsed: dict[str, BaseModel] = {}
    files: dict[str, LoadedYaml] = {}
    for attr, (filename, model) in _FILES.items():
        try:
            loaded = load_yaml(directory / filename, env or {})
        except YamlFileError as exc:
            problems.append(exc.problem)
            continue
        files[attr] = loaded
        duplicates = [problem for path in _NAMED_LISTS.get(attr, ()) for problem in duplicate_names(loaded, path)]
        problems.extend(duplicates)
        result = validate(model, loaded, problems)
        if result is not None and not duplicates:
            parsed[attr] = result
    routing, categories = parsed.get("routing"), parsed.get("categories")
    if isinstance(routing, Routing) and isinstance(categories, CategoryRules):
        problems.extend(unknown_route_categories(files["routing"], routing, categories))
    wording = load_wording(directory / "templates", problems)
    if problems:
        raise ConfigError(problems)
    return Mappings(
        wording=wording,
        templates_dir=directory / "templates",
        severity=parsed["severity"],  # type: ignore[arg-type]
        routing=parsed["routing"],  # type: ignore[arg-type]
        sprints=parsed["sprints"],  # type: ignore[arg-type]
        status=parsed["status"],  # type: ignore[arg-type]
        email=parsed["email"],  # type: ignore[arg-type]
        categories=parsed["categories"],  # type: ignore[arg-type]
    )
