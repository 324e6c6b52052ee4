"""Configuration and mappings: interpolation, shipped files, and precise start-up errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bridge.bootstrap import check_configuration
from bridge.config import load_settings
from bridge.errors import ConfigError
from bridge.mappings import load_mappings
from bridge.yamlfile import interpolate
from tests.conftest import REPO

FULL_ENV = {
    "CHATBOT_SIGNING_SECRET": "s",
    "GITLAB_URL": "https://gitlab.example",
    "GITLAB_TOKEN": "t",
    "GITLAB_PROJECT": "acme/support",
}


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${A}", {"A": "1"}, "1"),
        ("${A}", {}, ""),
        ("${A:-dflt}", {}, "dflt"),
        ("${A:-dflt}", {"A": ""}, "dflt"),
        ("${A:-dflt}", {"A": "set"}, "set"),
        ("x-${A}-${B:-b}-y", {"A": "a"}, "x-a-b-y"),
        ("$A {A} $${A}", {"A": "1"}, "$A {A} $1"),
    ],
)
def test_interpolation(text: str, env: dict[str, str], expected: str) -> None:
    """${VAR} is empty when unset; ${VAR:-default} falls back when unset or empty."""
    assert interpolate(text, env) == expected


def test_shipped_config_and_mappings_load_with_contract_defaults() -> None:
    """config.yaml reads the CONTRACT section 7 variables with their documented defaults."""
    settings, loaded = load_settings(REPO / "config.yaml", FULL_ENV)
    assert settings.server.port == 8000
    assert settings.trackers.default == "gitlab"
    assert settings.queue.redis_url is None
    assert settings.database_url.endswith("instance/bridge.db")
    assert settings.mail.notify_debounce_seconds == 60
    assert settings.chatbot.signing_secrets == ["s"]
    mappings = check_configuration(settings, loaded)
    assert mappings.routing.labels["gitlab"].severity == "severity::{severity}"


def test_environment_overrides_reach_settings() -> None:
    """PORT, DATABASE_URL, REDIS_URL, BRIDGE_TRACKER and rotation lists come from the environment."""
    env = {
        **FULL_ENV,
        "PORT": "9100",
        "DATABASE_URL": "postgresql://db/x",
        "REDIS_URL": "redis://r:6379/0",
        "BRIDGE_TRACKER": "jira",
        "CHATBOT_SIGNING_SECRET": "old, new",
        "JIRA_BOARD_ID": "7",
    }
    settings, _ = load_settings(REPO / "config.yaml", env)
    assert settings.server.port == 9100
    assert settings.database_url == "postgresql://db/x"
    assert settings.queue.redis_url == "redis://r:6379/0"
    assert settings.trackers.default == "jira"
    assert settings.chatbot.signing_secrets == ["old", "new"]
    assert settings.trackers.jira.board_id == 7


def test_every_problem_is_reported_with_file_key_and_line(tmp_path: Path) -> None:
    """Several mistakes give one error listing each, with its line."""
    config = tmp_path / "config.yaml"
    config.write_text(
        "server:\n  port: ${PORT:-eighty}\n  public_url: ftp://x\n"
        "trackers:\n  default: bugzilla\n"
        "delivery:\n  retry_horizon_hourz: 3\n"
    )
    with pytest.raises(ConfigError) as info:
        load_settings(config, {})
    found = {(p.key, p.line) for p in info.value.problems}
    assert ("server.port", 2) in found
    assert ("server.public_url", 3) in found
    assert ("trackers.default", 5) in found
    assert ("delivery.retry_horizon_hourz", 7) in found
    assert str(config) in str(info.value)


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    """Broken YAML is reported at its line, not as a stack trace."""
    config = tmp_path / "config.yaml"
    config.write_text("server:\n  port: 1\n  public_url: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config, {})
    (problem,) = info.value.problems
    assert problem.file == str(config)
    assert problem.line is not None
    assert problem.line >= 3
    assert "invalid YAML" in problem.message


def test_missing_config_file_is_reported(tmp_path: Path) -> None:
    """A wrong BRIDGE_CONFIG path is named in the error."""
    with pytest.raises(ConfigError, match="cannot read file"):
        load_settings(None, {"BRIDGE_CONFIG": str(tmp_path / "nope.yaml")})


def test_tracker_in_use_without_connection_is_refused_naming_env_vars() -> None:
    """The default tracker needs its URL, token and project; each missing one is listed."""
    settings, loaded = load_settings(REPO / "config.yaml", {"CHATBOT_SIGNING_SECRET": "s", "GITLAB_URL": "https://g"})
    with pytest.raises(ConfigError) as info:
        check_configuration(settings, loaded)
    messages = {p.key: p.message for p in info.value.problems}
    assert "GITLAB_TOKEN" in messages["trackers.gitlab.token"]
    assert "GITLAB_PROJECT" in messages["trackers.gitlab.project"]
    assert "trackers.gitlab.url" not in messages
    assert all(p.line for p in info.value.problems)


def test_missing_signing_secret_is_refused() -> None:
    """Without CHATBOT_SIGNING_SECRET every report would be rejected: refuse to start instead."""
    env = {k: v for k, v in FULL_ENV.items() if k != "CHATBOT_SIGNING_SECRET"}
    settings, loaded = load_settings(REPO / "config.yaml", env)
    with pytest.raises(ConfigError, match="CHATBOT_SIGNING_SECRET"):
        check_configuration(settings, loaded)


def _copy_mappings(tmp_path: Path) -> Path:
    target = tmp_path / "mappings"
    shutil.copytree(REPO / "mappings", target)
    return target


def test_bad_mappings_report_every_file_and_line(tmp_path: Path) -> None:
    """Mistakes in two mapping files come back together, each with its file and line."""
    directory = _copy_mappings(tmp_path)
    severity = directory / "severity.yaml"
    severity.write_text(severity.read_text().replace("default: medium", "default: urgent"))
    sprints = directory / "sprints.yaml"
    sprints.write_text(sprints.read_text().replace("title_pattern: null", 'title_pattern: "Sprint ("'))
    with pytest.raises(ConfigError) as info:
        load_mappings(directory)
    by_file = {Path(p.file).name: p for p in info.value.problems}
    assert by_file["severity.yaml"].key == "default"
    assert by_file["severity.yaml"].line == severity.read_text().splitlines().index("default: urgent") + 1
    assert by_file["sprints.yaml"].key == "match.title_pattern"
    assert "regular expression" in by_file["sprints.yaml"].message


def test_route_to_unconfigured_jira_is_refused(tmp_path: Path) -> None:
    """A route that sends reports to Jira makes the Jira connection required."""
    directory = _copy_mappings(tmp_path)
    routing = directory / "routing.yaml"
    routing.write_text(
        routing.read_text().replace(
            "routes: []", "routes:\n  - name: billing\n    when: {product: [billing]}\n    tracker: jira"
        )
    )
    settings, loaded = load_settings(REPO / "config.yaml", {**FULL_ENV})
    settings = settings.model_copy(update={"mappings_dir": str(directory)})
    with pytest.raises(ConfigError) as info:
        check_configuration(settings, loaded)
    assert {p.key for p in info.value.problems} >= {"trackers.jira.url", "trackers.jira.project"}


def test_undefined_tier_is_refused(tmp_path: Path) -> None:
    """An organisation mapped to a tier that does not exist is a mapping error."""
    directory = _copy_mappings(tmp_path)
    severity = directory / "severity.yaml"
    severity.write_text(severity.read_text().replace('"Kunde A/S": enterprise', '"Kunde A/S": platinum'))
    with pytest.raises(ConfigError, match="platinum"):
        load_mappings(directory)


def test_bad_status_text_placeholder_is_refused(tmp_path: Path) -> None:
    """A typo in a status text placeholder is caught at start-up, not when a reporter is mailed."""
    directory = _copy_mappings(tmp_path)
    texts = directory / "templates" / "en" / "status.yaml"
    texts.write_text(texts.read_text().replace("Closed without a fix: {reason}", "Closed: {raeson}"))
    with pytest.raises(ConfigError) as info:
        load_mappings(directory)
    (problem,) = info.value.problems
    assert problem.key == "declined"
    assert problem.file.endswith("templates/en/status.yaml")
    assert problem.line is not None


def test_broken_email_template_fails_check_config(tmp_path: Path) -> None:
    """check-config (and start-up) names a broken email template with its file and line."""
    from bridge.config import Settings

    directory = _copy_mappings(tmp_path)
    template = directory / "templates" / "da" / "email" / "ack.txt.j2"
    template.write_text(template.read_text() + "\n{% if %}\n")
    settings = Settings.model_validate(
        {
            "mappings_dir": str(directory),
            "chatbot": {"signing_secrets": ["s"]},
            "trackers": {"gitlab": {"url": "https://g", "token": "t", "project": "p"}},
        }
    )
    with pytest.raises(ConfigError) as info:
        check_configuration(settings)
    assert any(p.file.endswith("da/email/ack.txt.j2") and p.line for p in info.value.problems)


def test_generated_secret_key_is_shared_by_concurrent_processes(tmp_path: Path) -> None:
    """Many processes starting at once all end up with the same, private status-link key."""
    from concurrent.futures import ThreadPoolExecutor

    from bridge.bootstrap import secret_key_for
    from bridge.config import Settings

    settings = Settings.model_validate({"server": {"instance_dir": str(tmp_path / "instance")}})
    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = set(pool.map(lambda _: secret_key_for(settings), range(32)))
    assert len(keys) == 1
    assert len(keys.pop()) >= 32
    assert (tmp_path / "instance" / "secret_key").stat().st_mode & 0o077 == 0
    assert [p.name for p in (tmp_path / "instance").iterdir()] == ["secret_key"]
