"""The two registries under test, each a subprocess on a loopback port with its own data.

Dockyard listens on port 0 and logs the port it got. Distribution cannot: the port is
chosen by binding port 0 here, closing, and writing the number into its config (racy in
principle; acceptable for this third-party binary only). Both log to a file in their
directory, so a full pipe never stalls a server.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

DISTRIBUTION_BINARY = "/usr/bin/docker-registry"
_LISTENING = re.compile(r"dockyard listening on (http://[\d.]+:\d+)")
_START_TIMEOUT = 30.0

_DISTRIBUTION_CONFIG = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:{port}
"""


@dataclass(slots=True)
class Server:
    """A running registry: what it is, where it listens, its process and files."""

    name: str  # "dockyard" or "distribution"
    label: str  # human description, with version and worker count
    url: str
    process: subprocess.Popen[bytes]
    workdir: Path
    log_path: Path
    workers: int

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        """SIGTERM (a multi-worker Dockyard forwards it), then SIGKILL after 10 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _dockyard_binary() -> str:
    candidate = Path(sys.executable).parent / "dockyard"
    return str(candidate) if candidate.exists() else "dockyard"


def _log_tail(path: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def _launch(cmd: list[str], workdir: Path, log_name: str) -> tuple[subprocess.Popen[bytes], Path]:
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / log_name
    with log_path.open("wb") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)
    return process, log_path


def _listening_url(log_path: Path) -> str | None:
    match = _LISTENING.search(log_path.read_text(errors="replace"))
    return match.group(1) if match else None


async def start_dockyard(workdir: Path, workers: int) -> Server:
    """``dockyard serve --port 0`` with its embedded defaults and ``workers`` processes."""
    cmd = [_dockyard_binary(), "serve", "--host", "127.0.0.1", "--port", "0"]
    cmd += ["--data-dir", str(workdir / "data"), "--workers", str(workers)]
    process, log_path = await asyncio.to_thread(_launch, cmd, workdir, "dockyard.log")
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dockyard exited at start:\n{_log_tail(log_path)}")
        url = await asyncio.to_thread(_listening_url, log_path)
        if url:
            label = f"Dockyard ({workers} worker{'s' * (workers > 1)})"
            server = Server("dockyard", label, url, process, workdir, log_path, workers)
            await _wait_ready(server, deadline)
            return server
        await asyncio.sleep(0.05)
    process.kill()
    process.wait()
    raise RuntimeError(f"dockyard did not log its port in {_START_TIMEOUT:.0f} s")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _distribution_binary() -> str:
    return DISTRIBUTION_BINARY if Path(DISTRIBUTION_BINARY).exists() else "docker-registry"


def distribution_available() -> bool:
    """Whether Debian's ``docker-registry`` (CNCF Distribution) is installed."""
    return shutil.which(_distribution_binary()) is not None


def distribution_version() -> str:
    """``docker-registry --version``, e.g. ``github.com/docker/distribution 2.8.2+ds1``."""
    out = subprocess.run(
        [_distribution_binary(), "--version"], capture_output=True, text=True, check=False
    )
    # "/usr/bin/docker-registry github.com/docker/distribution 2.8.2+ds1"
    return out.stdout.strip().split(maxsplit=1)[-1]


def _write_distribution_config(workdir: Path) -> tuple[Path, int]:
    workdir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    config = workdir / "config.yml"
    config.write_text(_DISTRIBUTION_CONFIG.format(root=workdir / "data", port=port))
    return config, port


async def start_distribution(workdir: Path) -> Server:
    """Debian's ``docker-registry`` on filesystem storage in ``workdir``, access log off."""
    config, port = await asyncio.to_thread(_write_distribution_config, workdir)
    cmd = [_distribution_binary(), "serve", str(config)]
    process, log_path = await asyncio.to_thread(_launch, cmd, workdir, "distribution.log")
    label = f"Distribution {await asyncio.to_thread(distribution_version)}"
    server = Server(
        "distribution", label, f"http://127.0.0.1:{port}", process, workdir, log_path, 1
    )
    await _wait_ready(server, time.monotonic() + _START_TIMEOUT)
    return server


async def _wait_ready(server: Server, deadline: float) -> None:
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(f"{server.name} exited:\n{_log_tail(server.log_path)}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(f"{server.url}/v2/") as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.05)
    server.stop()
    raise RuntimeError(f"{server.name} did not answer /v2/ in time:\n{_log_tail(server.log_path)}")
