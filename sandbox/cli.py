"""``python -m sandbox serve ...`` runs the sandbox; ``python -m sandbox act ...`` acts as the developer."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import date
from typing import Any

import requests

from sandbox.config import SandboxConfig
from sandbox.devactions import ACTIONS, RESOLUTIONS


def _fault(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"--fault must be JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("--fault must be a JSON object")
    return value


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m sandbox", description="GitLab + Jira tracker sandbox")
    commands = root.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the sandbox HTTP server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8900)
    serve.add_argument("--base-url", help="URL clients use (default http://HOST:PORT)")
    serve.add_argument("--gitlab-token", default=SandboxConfig.gitlab_token)
    serve.add_argument("--jira-user", default=SandboxConfig.jira_user)
    serve.add_argument("--jira-token", default=SandboxConfig.jira_token)
    serve.add_argument("--jira-deployment-type", default=SandboxConfig.jira_deployment_type)
    serve.add_argument("--gitlab-webhook-url")
    serve.add_argument("--gitlab-webhook-secret")
    serve.add_argument("--jira-webhook-url")
    serve.add_argument("--jira-webhook-secret")
    serve.add_argument("--webhook-retry-base", type=float, default=SandboxConfig.webhook_retry_base_s)
    serve.add_argument("--webhook-max-attempts", type=int, default=SandboxConfig.webhook_max_attempts)
    serve.add_argument("--webhook-timeout", type=float, default=SandboxConfig.webhook_timeout_s)
    serve.add_argument("--latency-ms", type=int, default=0)
    serve.add_argument("--error-rate", type=float, default=0.0)
    serve.add_argument("--create-rate-per-minute", type=int)
    serve.add_argument("--fault", type=_fault, action="append", default=[], help="a fault rule as JSON (repeatable)")
    serve.add_argument("--seed", type=int, default=0, help="seed of the fault random generator")
    serve.add_argument("--seed-today", type=date.fromisoformat, help="day the seeded sprints are placed around")
    serve.add_argument("--quiet", action="store_true", help="do not log each request")

    act = commands.add_parser("act", help="act on an issue as the developer (fires webhooks)")
    act.add_argument("--url", default="http://127.0.0.1:8900")
    act.add_argument("tracker", choices=("gitlab", "jira"))
    act.add_argument("issue", help="GitLab iid or Jira key")
    act.add_argument("action", choices=ACTIONS)
    act.add_argument("argument", nargs="?", default="", help="comment text, the severity, or the category")
    act.add_argument("--internal", action="store_true", help="internal comment")
    act.add_argument("--resolution", choices=RESOLUTIONS, default="fixed")
    return root


def config_from(args: argparse.Namespace) -> SandboxConfig:
    return SandboxConfig(
        base_url=args.base_url or f"http://{args.host}:{args.port}",
        gitlab_token=args.gitlab_token,
        jira_user=args.jira_user,
        jira_token=args.jira_token,
        jira_deployment_type=args.jira_deployment_type,
        gitlab_webhook_url=args.gitlab_webhook_url,
        gitlab_webhook_secret=args.gitlab_webhook_secret,
        jira_webhook_url=args.jira_webhook_url,
        jira_webhook_secret=args.jira_webhook_secret,
        webhook_retry_base_s=args.webhook_retry_base,
        webhook_max_attempts=args.webhook_max_attempts,
        webhook_timeout_s=args.webhook_timeout,
        latency_ms=args.latency_ms,
        error_rate=args.error_rate,
        create_rate_per_minute=args.create_rate_per_minute,
        faults=args.fault,
        seed=args.seed,
        seed_today=args.seed_today,
    )


def _serve(args: argparse.Namespace) -> int:
    from sandbox.server import SandboxServer

    server = SandboxServer(config_from(args), args.host, args.port, quiet=args.quiet)
    sb = server.state
    print(f"tracker sandbox on {server.url}  (developer page: {server.url}/)", flush=True)
    print(f"  GitLab: {server.url}/api/v4  token {sb.config.gitlab_token}  project 1 acme/support", flush=True)
    print(
        f"  Jira:   {server.url}  user {sb.config.jira_user} token {sb.config.jira_token}  project SUP, board 1",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def _act(args: argparse.Namespace) -> int:
    body = {
        "tracker": args.tracker,
        "issue": args.issue,
        "action": args.action,
        "text": args.argument if args.action == "comment" else "",
        "severity": args.argument if args.action == "severity" else "",
        "category": args.argument if args.action == "category" else "",
        "internal": args.internal,
        "resolution": args.resolution,
    }
    response = requests.post(f"{args.url.rstrip('/')}/_sandbox/act", json=body, timeout=30)
    data = response.json()
    print(data.get("message") or data.get("error"))
    return 0 if response.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    return _act(args)


if __name__ == "__main__":
    sys.exit(main())
