"""A tracker change that webhooks report, before it is addressed to any receiver."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HookEvent:
    tracker: str
    """``gitlab`` or ``jira``."""
    name: str
    """``X-Gitlab-Event`` value (``Issue Hook``...) or Jira ``webhookEvent`` (``jira:issue_updated``...)."""
    scope: str
    """GitLab hook flag that must be on (``issues_events``...); for Jira the event name."""
    project_id: int
    payload: dict[str, Any]
    subject: str
    """The issue it is about, for logs: ``acme/support#3`` or ``SUP-3``."""
