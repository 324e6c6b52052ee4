"""``make run``: the whole bridge on one machine with embedded defaults.

Starts the web process (gunicorn) and the worker on SQLite; when neither GitLab nor Jira
is configured it also starts the tracker sandbox and points the bridge at it. Ctrl-C
stops everything.

The console shows the bridge's own events and everyone's warnings; ``--verbose`` (``make run
VERBOSE=1``) adds huey's line per task, gunicorn's start-up lines and the sandbox's access log.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from bridge.adapters.store.db import upgrade
from bridge.bootstrap import load_configuration
from bridge.config import Settings
from bridge.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SANDBOX_PORT = int(os.environ.get("SANDBOX_PORT", "8900"))
SANDBOX_ENV = {
    "GITLAB_URL": f"http://127.0.0.1:{SANDBOX_PORT}",
    "GITLAB_TOKEN": "sandbox-gitlab-token",
    "GITLAB_PROJECT": "acme/support",
    "GITLAB_WEBHOOK_SECRET": "sandbox-gitlab-webhook-secret",
    "JIRA_URL": f"http://127.0.0.1:{SANDBOX_PORT}",
    "JIRA_USER": "bridge@example.com",
    "JIRA_API_TOKEN": "sandbox-jira-token",
    "JIRA_PROJECT": "SUP",
    "JIRA_BOARD_ID": "1",
    "JIRA_WEBHOOK_SECRET": "sandbox-jira-webhook-secret",
}
DEV_DEFAULTS = {
    "CHATBOT_SIGNING_SECRET": "dev-signing-secret",
    "CHATBOT_API_TOKEN": "dev-api-token",
    "PORT": "8000",
}


def _wait_for(url: str, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback URL we built
                return True
        except OSError:
            time.sleep(0.2)
    return False


def curl_example(port: str, secret: str) -> str:
    body = (
        '{"event_id":"evt_demo_\'"$(date +%s%N)"\'","type":"report.created",'
        '"reporter":{"email":"anna@kunde.dk","name":"Anna Jensen","locale":"da","organization":"Kunde A/S"},'
        '"report":{"title":"Chat-widget indlæses ikke","description":"Siden viser kun en spinner.",'
        '"impact":"Ingen af vores kunder kan skrive til os","priority":"Kritisk","product":"widget"}}'
    )
    return (
        f"BODY='{body}'\n"
        "T=$(date +%s)\n"
        f"SIG=$(printf '%s.%s' \"$T\" \"$BODY\" | openssl dgst -sha256 -hmac '{secret}' | sed 's/^.* //')\n"
        f"curl -sS -X POST http://127.0.0.1:{port}/webhooks/chatbot -H 'Content-Type: application/json' \\\n"
        '  -H "X-Smarttalk-Signature: t=$T,v1=$SIG" -d "$BODY"'
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = argparse.ArgumentParser(
        prog="python -m bridge.devserver", description="make run: the whole bridge on one machine."
    )
    args.add_argument("--verbose", action="store_true", help="also huey's, gunicorn's and the sandbox's routine lines")
    verbose = args.parse_args(argv).verbose

    env = dict(os.environ)
    for key, value in DEV_DEFAULTS.items():
        env.setdefault(key, value)
    sandbox_mode = not env.get("GITLAB_URL") and not env.get("JIRA_URL")
    if sandbox_mode:
        env.update(SANDBOX_ENV)
    env.setdefault("BIND", f"127.0.0.1:{env['PORT']}")
    env.setdefault("BRIDGE_PUBLIC_URL", f"http://127.0.0.1:{env['PORT']}")  # status links on this PORT
    if not verbose:
        env.setdefault("LOG_LEVELS", "huey=WARNING")  # the bridge logs each job itself (job.done, job.retry)
    os.environ.update(env)

    try:
        settings, _ = load_configuration()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    upgrade(settings.database_url)

    children: list[subprocess.Popen[bytes]] = []

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)
    try:
        return _serve(children, settings, env, sandbox_mode=sandbox_mode, verbose=verbose)
    except KeyboardInterrupt:
        return _stop(children, 0)


def _spawn(children: list[subprocess.Popen[bytes]], command: list[str], env: dict[str, str]) -> None:
    # Each child in a process group of its own: Ctrl-C reaches only this process, which then stops
    # the children with SIGTERM (gunicorn's gevent workers print a traceback when they get SIGINT).
    children.append(subprocess.Popen(command, cwd=ROOT, env=env, process_group=0))


def _serve(
    children: list[subprocess.Popen[bytes]],
    settings: Settings,
    env: dict[str, str],
    *,
    sandbox_mode: bool,
    verbose: bool,
) -> int:
    python = sys.executable
    if sandbox_mode:
        _spawn(
            children,
            [
                python,
                "-m",
                "sandbox",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(SANDBOX_PORT),
                "--gitlab-token",
                SANDBOX_ENV["GITLAB_TOKEN"],
                "--jira-user",
                SANDBOX_ENV["JIRA_USER"],
                "--jira-token",
                SANDBOX_ENV["JIRA_API_TOKEN"],
                "--gitlab-webhook-url",
                f"http://127.0.0.1:{env['PORT']}/webhooks/gitlab",
                "--gitlab-webhook-secret",
                SANDBOX_ENV["GITLAB_WEBHOOK_SECRET"],
                "--jira-webhook-url",
                f"http://127.0.0.1:{env['PORT']}/webhooks/jira",
                "--jira-webhook-secret",
                SANDBOX_ENV["JIRA_WEBHOOK_SECRET"],
                *([] if verbose else ["--quiet"]),
            ],
            env,
        )
        if not _wait_for(f"http://127.0.0.1:{SANDBOX_PORT}/_sandbox/state"):
            print("the tracker sandbox did not start", file=sys.stderr)
            return _stop(children, 1)
    # Requests here take milliseconds: a short graceful timeout lets Ctrl-C stop the web process at once.
    gunicorn = [python, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--graceful-timeout", "2"]
    _spawn(children, [*gunicorn, *([] if verbose else ["--log-level", "warning"]), "wsgi:app"], env)
    _spawn(children, [python, "-m", "bridge.worker"], env)
    if not _wait_for(f"http://127.0.0.1:{env['PORT']}/healthz"):
        print("the web process did not start", file=sys.stderr)
        return _stop(children, 1)

    tracker = settings.trackers.default
    print("\n" + "=" * 78)
    print(f"bridge is running on http://127.0.0.1:{env['PORT']}  (database: {settings.database_url})")
    if sandbox_mode:
        print(f"mode: SANDBOX - no GitLab or Jira configured; issues go to the sandbox's {tracker} API.")
        print(f"      sandbox developer page: http://127.0.0.1:{SANDBOX_PORT}/")
    else:
        print(f"mode: REAL TRACKER - default tracker {tracker}")
    print("send a signed report (paste into a shell):\n")
    print(curl_example(env["PORT"], settings.chatbot.signing_secrets[0]))
    if not verbose:
        print("\nbelow: the bridge's events and any warnings (`make run VERBOSE=1` shows every task and request)")
    print("=" * 78 + "\n", flush=True)

    while all(child.poll() is None for child in children):
        time.sleep(0.5)
    print("a process exited; stopping the others", file=sys.stderr)
    return _stop(children, 1)


def _stop(children: list[subprocess.Popen[bytes]], code: int) -> int:
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
    return code


if __name__ == "__main__":
    sys.exit(main())
