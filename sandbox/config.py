"""Start-up settings of the sandbox (CLI flags map one to one onto these fields)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date
from typing import Any


@dataclass
class SandboxConfig:
    base_url: str = "http://127.0.0.1:8900"
    """How clients reach the sandbox: used in ``self``/``web_url`` links and ``X-Gitlab-Instance``."""

    gitlab_token: str = "glpat-sandbox-token"
    jira_user: str = "bridge@example.com"
    jira_token: str = "jira-sandbox-token"
    jira_deployment_type: str = "Cloud"
    """``serverInfo.deploymentType``. The ``jira`` library searches via ``/search/jql`` for ``Cloud``
    and via the classic ``/search`` otherwise; both endpoints are served."""

    gitlab_webhook_url: str | None = None
    gitlab_webhook_secret: str | None = None
    jira_webhook_url: str | None = None
    jira_webhook_secret: str | None = None

    webhook_retry_base_s: float = 0.5
    """First retry delay; doubles per attempt."""
    webhook_max_attempts: int = 5
    webhook_timeout_s: float = 10.0

    latency_ms: int = 0
    error_rate: float = 0.0
    create_rate_per_minute: int | None = None
    faults: list[dict[str, Any]] = field(default_factory=list)
    """Extra fault rules, same JSON shape as ``POST /_sandbox/faults``."""
    seed: int = 0
    """Seed of the random generator behind error rates and webhook drops."""

    seed_today: date | None = None
    """The day the seeded sprints are chosen around; ``None`` means the real today."""

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> SandboxConfig:
        """A config from a dict; unknown keys are an error, ``seed_today`` may be an ISO string."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown sandbox config keys: {', '.join(unknown)}")
        values = dict(values)
        today = values.get("seed_today")
        if isinstance(today, str):
            values["seed_today"] = date.fromisoformat(today)
        return cls(**values)

    def initial_fault_rules(self) -> list[dict[str, Any]]:
        """Fault rules implied by the flags, followed by the explicit ``faults``."""
        rules: list[dict[str, Any]] = []
        if self.latency_ms:
            rules.append({"tracker": "both", "latency_ms": self.latency_ms})
        if self.error_rate:
            rules.append({"tracker": "both", "error_rate": self.error_rate})
        if self.create_rate_per_minute is not None:
            rules.append(
                {
                    "tracker": "both",
                    "rate_limit": {"endpoint": "create_issue", "per_minute": self.create_rate_per_minute},
                }
            )
        rules.extend(self.faults)
        return rules
