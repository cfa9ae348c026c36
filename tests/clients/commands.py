"""Running the client tools: one call with a timeout and a failure message worth reading."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

# One client command on a tiny image takes well under a second here; the bound is for a
# wedged daemon or registry, not for a slow one.
TIMEOUT = 120.0


def require(*tools: str) -> None:
    """Skip the test, saying which, when one of ``tools`` is not installed."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (Debian package needed for this client)")


def run(
    args: Sequence[str | Path],
    *,
    timeout: float = TIMEOUT,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``args``; with ``check``, fail the test with the command's output if it fails."""
    argv = [str(a) for a in args]
    full_env = {**os.environ, **env} if env else None
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"timed out after {timeout}s: {' '.join(argv)}\n{_output(e.stdout, e.stderr)}")
    if check and done.returncode != 0:
        pytest.fail(
            f"exit {done.returncode}: {' '.join(argv)}\n{_output(done.stdout, done.stderr)}"
        )
    return done


def _output(stdout: str | bytes | None, stderr: str | bytes | None) -> str:
    def text(value: str | bytes | None) -> str:
        if isinstance(value, bytes):
            return value.decode(errors="replace")
        return value or ""

    return f"--- stdout\n{text(stdout)[-4000:]}\n--- stderr\n{text(stderr)[-4000:]}"
