"""Private dockerd and containerd daemons: own roots, own sockets, stopped by their PID.

Nothing is shared with a daemon the machine may already run. Sockets go under a short
directory in /tmp because a unix socket path is limited to 108 bytes.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.clients.commands import run

START_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class Daemon:
    """A daemon process we started, and the log it writes."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        """SIGTERM by PID, then SIGKILL if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process.wait()


def _spawn(command: Sequence[str | Path], log_path: Path) -> Daemon:
    with log_path.open("wb") as log:
        process = subprocess.Popen([str(c) for c in command], stdout=log, stderr=subprocess.STDOUT)
    return Daemon(process, log_path)


def _wait_ready(daemon: Daemon, probe: Sequence[str | Path], name: str) -> None:
    """Poll ``probe`` until it succeeds; skip with the daemon's log if it never does."""
    deadline = time.monotonic() + START_TIMEOUT
    while run(probe, timeout=10, check=False).returncode != 0:
        if daemon.process.poll() is not None or time.monotonic() > deadline:
            daemon.stop()
            pytest.skip(f"{name} cannot run on this machine:\n{daemon.log_tail()}")
        time.sleep(0.1)


@dataclass(frozen=True, slots=True)
class Docker:
    """The docker CLI bound to one private dockerd."""

    socket: Path
    config_dir: Path
    daemon: Daemon

    def __call__(self, *args: str | Path) -> str:
        """Run ``docker <args>`` against this daemon; return stdout, stripped."""
        return self._run(args, check=True).stdout.strip()

    def fails(self, *args: str | Path) -> bool:
        """Whether ``docker <args>`` exits non-zero."""
        return self._run(args, check=False).returncode != 0

    def _run(self, args: Sequence[str | Path], *, check: bool) -> subprocess.CompletedProcess[str]:
        command = ["docker", "-H", f"unix://{self.socket}", *args]
        return run(command, env={"DOCKER_CONFIG": str(self.config_dir)}, check=check)


def start_dockerd(short_dir: Path, data_root: Path) -> Docker:
    """``dockerd`` with vfs, no bridge, no iptables; 127.0.0.0/8 registries are plain HTTP."""
    socket = short_dir / "docker.sock"
    daemon = _spawn(
        [
            "dockerd",
            "--bridge=none",
            "--iptables=false",
            "--storage-driver=vfs",
            f"--data-root={data_root}",
            f"--exec-root={short_dir / 'exec'}",
            f"--pidfile={short_dir / 'docker.pid'}",
            "-H",
            f"unix://{socket}",
        ],
        short_dir / "dockerd.log",
    )
    config_dir = short_dir / "docker-config"
    config_dir.mkdir()
    _wait_ready(daemon, ["docker", "-H", f"unix://{socket}", "info"], "dockerd")
    return Docker(socket, config_dir, daemon)


_CONTAINERD_CONFIG = """\
version = 2
root = "{root}"
state = "{state}"
# Only what image pull, unpack and push need.
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]
[grpc]
  address = "{socket}"
[ttrpc]
  address = "{socket}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
"""


@dataclass(frozen=True, slots=True)
class Ctr:
    """The ``ctr`` CLI bound to one private containerd, in its own namespace."""

    socket: Path
    daemon: Daemon
    namespace: str = "dockyard-tests"

    def __call__(self, *args: str | Path) -> str:
        """Run ``ctr <args>``; return stdout, stripped."""
        command = ["ctr", "--address", self.socket, "--namespace", self.namespace, *args]
        return run(command).stdout.strip()

    def raw(self, *args: str | Path) -> bytes:
        """Run ``ctr <args>``; return stdout as bytes (``content get``)."""
        command = [
            "ctr", "--address", str(self.socket), "--namespace", self.namespace,
            *(str(a) for a in args),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, timeout=60, check=False)
        if done.returncode:
            pytest.fail(f"{' '.join(command)}: {done.stderr.decode(errors='replace')}")
        return done.stdout


def start_containerd(short_dir: Path, root: Path) -> Ctr:
    """``containerd`` with its own root, state and socket; the native snapshotter unpacks."""
    socket = short_dir / "containerd.sock"
    config = short_dir / "containerd.toml"
    config.write_text(
        _CONTAINERD_CONFIG.format(root=root, state=short_dir / "state", socket=socket)
    )
    daemon = _spawn(["containerd", "--config", config], short_dir / "containerd.log")
    _wait_ready(daemon, ["ctr", "--address", socket, "version"], "containerd")
    return Ctr(socket, daemon)
