"""bridge: customer problem reports -> GitLab/Jira issues, and back to the reporter."""

from __future__ import annotations

from flask import Flask

from bridge.bootstrap import Deps, build_deps, check_configuration, load_configuration
from bridge.config import Settings


def create_app(settings: Settings | None = None, deps: Deps | None = None) -> Flask:
    """The web application. Without ``deps`` it builds real adapters from ``settings`` (by
    default read from ``config.yaml``); invalid configuration raises ``ConfigError`` listing
    every problem."""
    if deps is None:
        if settings is None:
            settings, mappings = load_configuration()
        else:
            mappings = check_configuration(settings)
        deps = build_deps(settings, mappings)

    from bridge.cli import cli
    from bridge.web import admin, api, chatbot, email_intake, health, status_page, tracker_hooks, unsubscribe
    from bridge.web.openapi import bp as openapi_bp
    from bridge.web.problems import register_error_handlers
    from bridge.web.request_id import bp as request_id_bp
    from bridge.web.security_headers import register_security_headers

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = deps.settings.server.max_body_bytes
    # "//" is not "/": merged slashes would answer a redirect for a hidden route (the admin API
    # when it is off) and a 404 for an unknown one, telling a prober which routes exist.
    app.url_map.merge_slashes = False
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["bridge"] = deps
    register_error_handlers(app)
    register_security_headers(app, deps.settings.server.public_url)
    app.register_blueprint(request_id_bp)  # first: every request's log lines carry its id
    app.register_blueprint(health.bp)
    app.register_blueprint(chatbot.bp)
    app.register_blueprint(email_intake.bp)
    app.register_blueprint(tracker_hooks.bp)
    app.register_blueprint(api.bp)
    if deps.settings.admin.token:  # off unless configured: no admin route exists at all
        app.register_blueprint(admin.bp)
    app.register_blueprint(status_page.bp)
    app.register_blueprint(unsubscribe.bp)
    app.register_blueprint(openapi_bp)
    app.cli.add_command(cli)
    return app
