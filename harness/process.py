"""Child processes with their output in files, and the waiting around them.

Every child runs in a session (and so a process group) of its own: stopping or killing it reaches
its children too (gunicorn's workers), and a Ctrl-C in the terminal reaches only this process, whose
teardown then stops them (``harness.stack.stop_all``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TypeVar

import requests

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

T = TypeVar("T")


class HarnessError(AssertionError):
    """The harness could not do its part (a process did not start, a wait timed out)."""


def wait_until(
    predicate: Callable[[], T | None],
    timeout: float,
    *,
    what: str = "condition",
    interval: float = 0.1,
    ignore: tuple[type[BaseException], ...] = (requests.ConnectionError,),
) -> T:
    """Poll ``predicate`` until it returns something truthy (returned), or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = predicate()
        except ignore as exc:
            last = exc
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise HarnessError(f"timed out after {timeout:.0f} s waiting for {what}; last value: {last!r}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on at this moment."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def descendants(pid: int) -> list[int]:
    """The children of ``pid``, their children, and so on (from /proc)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            children += [int(child) for child in (task / "children").read_text().split()]
    found = list(children)
    for child in children:
        found += descendants(child)
    return found


class Process:
    """One child process with its stdout and stderr in files (appended to on every start); restartable."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str], log_dir: Path, cwd: Path = REPO) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.stdout_path = log_dir / f"{name}.stdout.log"
        self.stderr_path = log_dir / f"{name}.stderr.log"
        self.popen: subprocess.Popen[bytes] | None = None
        self._files: list[IO[bytes]] = []
        self._group_gone = False
        """Set after ``kill()``: its SIGKILL reached the whole group, so ``stop()`` need not signal it again."""
        self.starts = 0

    @property
    def restarts(self) -> int:
        return max(0, self.starts - 1)

    def start(self) -> None:
        if self.alive():  # a second Popen would leave the first one running, unstopped
            raise HarnessError(f"{self.name} is already running")
        self.starts += 1
        self._close_files()
        marker = f"\n----- start #{self.starts} of {self.name} at {time.strftime('%H:%M:%S')} -----\n".encode()
        out, err = self.stdout_path.open("ab"), self.stderr_path.open("ab")
        for handle in (out, err):
            handle.write(marker)
            handle.flush()
        self._files = [out, err]
        self._group_gone = False
        self.popen = subprocess.Popen(  # noqa: S603 - our own interpreter and fixed arguments
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise HarnessError(f"{self.name} was never started")
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def exit_code(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def kill(self) -> None:
        """SIGKILL of the process and its children at once, no goodbye: what a pulled plug does."""
        if self.popen is None:
            return
        self._kill_group()
        self.popen.wait(timeout=10)
        self._group_gone = True

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM, then SIGKILL of its whole process group if it has not gone after ``timeout`` s."""
        if self.popen is None:
            return
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)
        if not self._group_gone:
            self._kill_group()  # what is left of the group (a gunicorn worker whose master died)
            self._group_gone = True
        self.popen.wait(timeout=10)
        self._close_files()

    def _kill_group(self) -> None:
        # The group this process leads (start_new_session): only ever processes we started.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def _close_files(self) -> None:
        for handle in self._files:
            handle.close()
        self._files = []

    def tree_pids(self) -> list[int]:
        """This process and its descendants (gunicorn: the master, then its workers)."""
        if not self.alive():
            return []
        return [self.pid, *descendants(self.pid)]

    def tail(self, lines: int = 40) -> str:
        parts = []
        for path in (self.stdout_path, self.stderr_path):
            text = path.read_text(errors="replace") if path.exists() else ""
            kept = text.strip().splitlines()[-lines:]
            parts.append(f"--- {path.name} (last {len(kept)} lines) ---\n" + "\n".join(kept))
        state = "running" if self.alive() else f"exited {self.exit_code() if self.popen else '-'}"
        return f"=== {self.name} [{state}] ===\n" + "\n".join(parts)
