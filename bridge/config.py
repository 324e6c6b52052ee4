"""Settings from ``config.yaml`` and the environment, validated as a whole.

``load_settings`` either returns a complete ``Settings`` or raises ``ConfigError``
listing every problem with file, key and line. Nothing here runs at import time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from bridge.errors import ConfigError, Problem
from bridge.yamlfile import LoadedYaml, YamlFileError, load_yaml, validate

TrackerName = Literal["gitlab", "jira"]


def _comma_list(value: object) -> object:
    """Accept ``"a,b"`` as well as a YAML list (secret rotation lists come from env vars)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


CommaList = Annotated[list[str], BeforeValidator(_comma_list)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Section):
    port: int = Field(8000, ge=1, le=65535)
    public_url: str = "http://127.0.0.1:8000"
    secret_key: str | None = None
    max_body_bytes: int = Field(1_048_576, ge=1024)
    instance_dir: str = "instance"

    @field_validator("public_url")
    @classmethod
    def _absolute_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an absolute http(s) URL")
        return value.rstrip("/")


class DatabaseSettings(_Section):
    url: str | None = None
    """SQLAlchemy URL; unset means a SQLite file in the instance directory."""


class QueueSettings(_Section):
    redis_url: str | None = None
    sqlite_path: str | None = None
    """Unset means ``queue.db`` in the instance directory."""
    worker_threads: int = Field(4, ge=1, le=64)


class ChatbotSettings(_Section):
    signing_secrets: CommaList = Field(default_factory=list)
    api_token: str | None = None
    replay_window_seconds: int = Field(300, ge=1)
    callback_url: str | None = None
    """When set, every status change is POSTed there, signed like the chatbot's own webhooks."""


class _PacedTracker(_Section):
    """Client-side limits of one tracker's calls, shared by every worker process (all off by default:
    the pace then comes from the tracker's own answers, its 429s and ``RateLimit-*`` headers)."""

    max_requests_per_second: int | None = Field(None, ge=1)
    """At most this many calls to the tracker in any second."""
    max_requests_per_minute: int | None = Field(None, ge=1)
    """At most this many calls to the tracker in any minute."""
    max_creates_per_minute: int | None = Field(None, ge=1)
    """At most this many issue creations in any minute (GitLab.com allows 200 without saying so in
    its headers)."""


class GitLabSettings(_PacedTracker):
    url: str | None = None
    token: str | None = None
    project: str | None = None
    webhook_secret: str | None = None
    timeout_seconds: float = Field(10.0, gt=0)


class JiraSettings(_PacedTracker):
    url: str | None = None
    user: str | None = None
    api_token: str | None = None
    project: str | None = None
    board_id: int | None = None
    webhook_secret: str | None = None
    issue_type: str = "Bug"
    story_points_field: str | None = None
    timeout_seconds: float = Field(10.0, gt=0)


class TrackerSettings(_Section):
    default: TrackerName = "gitlab"
    gitlab: GitLabSettings = GitLabSettings()
    jira: JiraSettings = JiraSettings()


class MailSettings(_Section):
    smtp_host: str | None = None
    """Unset: emails are written to the log instead of sent."""
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_username: str | None = None
    """Set: log in (AUTH) with this user and ``smtp_password``."""
    smtp_password: str | None = None
    smtp_starttls: bool = True
    """Upgrade a plain connection with STARTTLS (ignored when ``smtp_tls`` is set)."""
    smtp_tls: bool = False
    """Implicit TLS from the first byte (SMTPS, usually port 465)."""
    smtp_ca_file: str | None = None
    """PEM file of CA certificates to trust instead of the system's (a private mail relay)."""
    smtp_timeout_seconds: float = Field(30, gt=0)
    mail_from: str | None = None
    """Sender of notifications, ``support@example.com`` or ``Support <support@example.com>``."""
    reply_to: str | None = None
    """Reply address with a ``{token}`` placeholder, e.g. ``support+{token}@example.com``;
    unset: derived from ``mail_from`` as ``<local>+{token}@<domain>``."""
    notify_debounce_seconds: float = Field(60, ge=0)

    @field_validator("mail_from")
    @classmethod
    def _an_address(cls, value: str | None) -> str | None:
        if value is not None and "@" not in value:
            raise ValueError("must be an email address such as support@example.com")
        return value

    @field_validator("reply_to")
    @classmethod
    def _has_token(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if "{token}" not in value or "@" not in value:
            raise ValueError("must be an address with a {token} placeholder, e.g. support+{token}@example.com")
        try:
            value.format_map({"token": "t"})
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"unknown placeholder: {exc}") from None
        return value

    @model_validator(mode="after")
    def _sender_for_smtp(self) -> MailSettings:
        if self.smtp_host and not self.mail_from:
            raise ValueError("mail_from is required when smtp_host is set (set MAIL_FROM)")
        return self


class DeliverySettings(_Section):
    retry_horizon_hours: float = Field(72, gt=0)
    backoff_base_seconds: float = Field(5, gt=0)
    backoff_max_seconds: float = Field(1800, gt=0)
    lease_seconds: float = Field(20, gt=0)
    """A running job whose worker stopped renewing its lease for this long is considered lost (worker
    killed) and runs again. Renewed every ``lease_seconds / 8`` while the job runs."""
    reconcile_minutes: int = Field(5, ge=1, le=59)
    """How often the trackers are asked what changed, in case a webhook was lost."""


class IntakeSettings(_Section):
    email_inbound_token: str | None = None
    """Shared secret of the email endpoints: basic-auth password, bearer token or ``?token=``."""
    mailgun_signing_key: str | None = None
    """Mailgun's HTTP webhook signing key; the Mailgun endpoint then also accepts its signature."""
    mailgun_max_age_seconds: int = Field(300, ge=1)
    """A Mailgun signature older (or newer) than this is refused as stale."""
    max_email_bytes: int = Field(26_214_400, ge=1024)
    """Largest request body an email endpoint takes (413 above), 25 MiB by default."""
    max_attachment_bytes: int = Field(10_485_760, ge=0)
    """Attachments up to this size are uploaded to the tracker issue; larger ones are only named."""
    new_tickets_per_sender_hour: int = Field(10, ge=1)
    """More new tickets than this in an hour from one address are held for review."""


class ImapSettings(_Section):
    """A plain mailbox the worker reads mail from (alongside or instead of a provider's webhook)."""

    enabled: bool = False
    host: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    """Unset: 993 with ``tls``, else 143."""
    tls: bool = True
    """Implicit TLS from the first byte (IMAPS)."""
    starttls: bool = True
    """Upgrade a plain connection with STARTTLS (ignored when ``tls`` is set)."""
    ca_file: str | None = None
    """PEM file of CA certificates to trust instead of the system's (a private mail server)."""
    user: str | None = None
    password: str | None = None
    folder: str = Field("INBOX", min_length=1)
    processed_folder: str | None = "Processed"
    """Where each message is moved once stored; unset: it stays and is flagged ``\\Seen`` + a keyword."""
    poll_minutes: int = Field(1, ge=1, le=59)
    """How often the worker polls the mailbox."""
    idle_seconds: float = Field(40, ge=0, le=55)
    """After a poll, wait this long in IDLE (when the server offers it) to take new mail at once."""
    batch_size: int = Field(100, ge=1)
    """At most this many messages per poll; the rest come with the next one."""
    timeout_seconds: float = Field(30, gt=0)

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> ImapSettings:
        if self.enabled:
            missing = [name for name in ("host", "user", "password") if not getattr(self, name)]
            if missing:
                variables = ", ".join(f"IMAP_{name.upper()}" for name in missing)
                raise ValueError(f"enabled needs {', '.join(missing)} (set {variables})")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or (993 if self.tls else 143)


class PrivacySettings(_Section):
    reporter_email_in_tracker: bool = False


class AdminSettings(_Section):
    token: str | None = Field(None, min_length=16)
    """Bearer token of the admin API (``BRIDGE_ADMIN_TOKEN``); unset: the admin API is off and every
    call under ``/api/v1/admin/`` answers 404."""


class RetentionSettings(_Section):
    personal_data_days: int = Field(365, ge=0)
    """Days after a ticket closed (resolved or declined, nothing since) before the reporter's personal
    data in it is erased, and after which inbound emails that made no ticket are deleted; 0: never."""


class LimitsSettings(_Section):
    """Abuse limits of the web endpoints (README "Abuse limits")."""

    reports_per_reporter_hour: int = Field(20, ge=1)
    """More chatbot ``report.created`` events than this from one reporter address within an hour are
    answered 429 with ``Retry-After`` (the chatbot keeps the report and sends it again later)."""
    followups_per_reporter_hour: int = Field(60, ge=1)
    """The same for ``report.followup`` events."""
    tracker_webhook_max_bytes: int = Field(5_242_880, ge=1024)
    """Largest body ``/webhooks/gitlab`` and ``/webhooks/jira`` take (413 above), 5 MiB by default."""


_HOST_PATTERN = re.compile(r"[a-z0-9*?.:-]+")


class AttachmentsSettings(_Section):
    """Fetching the files a chatbot report links (``report.attachments[].url``) into the tracker issue."""

    allowed_hosts: CommaList = Field(default_factory=list)
    """Host names (glob patterns such as ``*.cdn.example``) files may be fetched from; empty: nothing
    is fetched and the attachments stay links in the issue."""
    allow_http: bool = False
    """Also fetch ``http://`` URLs (``https://`` only by default)."""
    allow_private_networks: bool = False
    """Also fetch from private, loopback, link-local and other non-public addresses."""
    max_bytes: int = Field(10_485_760, ge=1)
    """Larger files are not fetched (the declared Content-Length first, then while reading)."""
    connect_timeout_seconds: float = Field(5, gt=0)
    read_timeout_seconds: float = Field(10, gt=0)
    """The longest wait for any one read from the server."""
    total_timeout_seconds: float = Field(30, gt=0)
    """The longest a whole fetch may take, redirects included."""
    max_redirects: int = Field(3, ge=0, le=10)
    """Redirects followed, each checked like the first URL; more are refused."""
    ca_file: str | None = None
    """PEM file of CA certificates to trust instead of the usual bundle (a private file store)."""

    @field_validator("allowed_hosts")
    @classmethod
    def _host_patterns(cls, value: list[str]) -> list[str]:
        patterns = []
        for pattern in value:
            cleaned = pattern.strip().lower().rstrip(".")
            if cleaned.startswith("[") and cleaned.endswith("]"):
                cleaned = cleaned[1:-1]
            if not _HOST_PATTERN.fullmatch(cleaned):
                raise ValueError(f"{pattern!r} is not a host name pattern such as cdn.example or *.cdn.example")
            patterns.append(cleaned)
        return patterns


class Settings(_Section):
    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    queue: QueueSettings = QueueSettings()
    chatbot: ChatbotSettings = ChatbotSettings()
    trackers: TrackerSettings = TrackerSettings()
    mail: MailSettings = MailSettings()
    delivery: DeliverySettings = DeliverySettings()
    intake: IntakeSettings = IntakeSettings()
    imap: ImapSettings = ImapSettings()
    privacy: PrivacySettings = PrivacySettings()
    admin: AdminSettings = AdminSettings()
    limits: LimitsSettings = LimitsSettings()
    attachments: AttachmentsSettings = AttachmentsSettings()
    retention: RetentionSettings = RetentionSettings()
    timezone: str = "Europe/Copenhagen"
    mappings_dir: str = "mappings"
    base_dir: str = "."
    """Directory relative paths (mappings, instance) are resolved against."""

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _admin_token_is_its_own(self) -> Settings:
        if self.admin.token and self.admin.token == self.chatbot.api_token:
            raise ValueError("admin.token must differ from chatbot.api_token (BRIDGE_ADMIN_TOKEN, CHATBOT_API_TOKEN)")
        return self

    def path(self, relative: str) -> Path:
        candidate = Path(relative)
        return candidate if candidate.is_absolute() else Path(self.base_dir) / candidate

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite:///{self.path(self.server.instance_dir) / 'bridge.db'}"

    @property
    def queue_sqlite_path(self) -> Path:
        return self.path(self.queue.sqlite_path or f"{self.server.instance_dir}/queue.db")

    @property
    def mappings_path(self) -> Path:
        return self.path(self.mappings_dir)


# What each tracker needs before the bridge can file into it, and the env var to set.
_REQUIRED_TRACKER_KEYS: dict[str, tuple[tuple[str, str], ...]] = {
    "gitlab": (("url", "GITLAB_URL"), ("token", "GITLAB_TOKEN"), ("project", "GITLAB_PROJECT")),
    "jira": (
        ("url", "JIRA_URL"),
        ("user", "JIRA_USER"),
        ("api_token", "JIRA_API_TOKEN"),
        ("project", "JIRA_PROJECT"),
    ),
}


def tracker_problems(settings: Settings, used: set[str], loaded: LoadedYaml | None = None) -> list[Problem]:
    """Problems for trackers that routing uses but whose connection is incomplete."""
    problems: list[Problem] = []
    file = loaded.path if loaded else "config.yaml"
    for tracker in sorted(used):
        section = getattr(settings.trackers, tracker)
        for key, env_var in _REQUIRED_TRACKER_KEYS[tracker]:
            if not getattr(section, key):
                loc: tuple[str | int, ...] = ("trackers", tracker, key)
                problems.append(
                    Problem(
                        file=file,
                        key=".".join(map(str, loc)),
                        line=loaded.line_of(loc) if loaded else None,
                        message=f"required because routing files issues in {tracker} (set {env_var})",
                    )
                )
    return problems


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> tuple[Settings, LoadedYaml]:
    """Read and validate the config file (``BRIDGE_CONFIG``, default ``config.yaml``)."""
    env = os.environ if env is None else env
    config_path = Path(path or env.get("BRIDGE_CONFIG") or "config.yaml")
    try:
        loaded = load_yaml(config_path, env)
    except YamlFileError as exc:
        raise ConfigError([exc.problem]) from None
    problems: list[Problem] = []
    if isinstance(loaded.data, dict):
        loaded.data.setdefault("base_dir", str(config_path.resolve().parent))
    settings = validate(Settings, loaded, problems)
    if problems or settings is None:
        raise ConfigError(problems)
    return settings, loaded
