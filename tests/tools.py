"""Programs the tests start. `make test-deps` installs them; a missing one fails its tests, never skips."""

from __future__ import annotations

import os
import shutil

import pytest

_SBIN = ("/usr/sbin", "/usr/local/sbin")


def require_program(command: str, package: str) -> str:
    """The path of ``command`` (also looked for in the sbin folders), or a failure naming the Debian
    package that provides it and how to install it."""
    path = shutil.which(command) or next(
        (f"{folder}/{command}" for folder in _SBIN if os.access(f"{folder}/{command}", os.X_OK)), None
    )
    if path is None:
        pytest.fail(
            f"{command} is not installed: the Debian package {package} provides it. "
            f"Run `make test-deps` (as root it installs it) or `sudo apt-get install -y {package}`.",
            pytrace=False,
        )
    return path
