"""``dockyard serve --config ...`` as a real process, plain or HTTPS, on an ephemeral port.

The process is wrapped in the client tests' :class:`~tests.clients.server.Dockyard`, so
its log helpers and clean SIGTERM stop apply; only the start differs (a configuration
file, and a ``https://`` address to wait for).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.clients.server import Dockyard

_LISTENING = re.compile(rb"dockyard listening on https?://127\.0\.0\.1:(\d+)")


def serve(config: Path, log_path: Path, *options: str, timeout: float = 30.0) -> Dockyard:
    """Start ``dockyard serve --config config --port 0 *options``; wait for its port."""
    command = [sys.executable, "-m", "dockyard", "serve", "--config", str(config), "--port", "0"]
    with log_path.open("wb") as log:
        process = subprocess.Popen([*command, *options], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while True:
        match = _LISTENING.search(log_path.read_bytes())
        if match:
            return Dockyard(process, int(match.group(1)), log_path)
        if process.poll() is not None or time.monotonic() > deadline:
            Dockyard(process, 0, log_path).stop()
            pytest.fail(f"dockyard serve did not start:\n{log_path.read_text()[-4000:]}")
        time.sleep(0.05)
