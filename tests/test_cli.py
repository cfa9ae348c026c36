"""The ``dockyard`` command, run as operators run it: a separate process."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import typer
from typer.core import TyperCommand, TyperGroup, TyperOption
from typer.testing import CliRunner

from dockyard.cli import app
from dockyard.metadata import head_revision

STARTUP_DEADLINE = 60.0
LISTENING = re.compile(r"dockyard listening on http://127\.0\.0\.1:(\d+)")


def environment(**extra: str) -> dict[str, str]:
    """The test's environment without DOCKYARD_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    # Wide and plain, so help text is neither wrapped nor coloured.
    env.update(COLUMNS="200", TERM="dumb", NO_COLOR="1", PYTHONUNBUFFERED="1", **extra)
    return env


def dockyard(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dockyard", *args],
        cwd=cwd,
        env=environment(**env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class Server:
    """A ``dockyard serve`` process and the lines it has logged so far."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dockyard", "serve", *args],
            cwd=cwd,
            env=environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.log: list[str] = []
        # Drain stderr for the whole life of the process, so it never blocks on a full pipe.
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        with self.process.stderr:
            for line in self.process.stderr:
                self.lines.put(line)
        self.lines.put(None)

    def wait(self) -> int:
        """Wait for the process to exit and its log to be read to the end."""
        code = self.process.wait(timeout=60)
        self._reader.join(timeout=60)
        return code

    def wait_for_port(self) -> int:
        """The port from the "listening" log line, waiting at most STARTUP_DEADLINE."""
        deadline = time.monotonic() + STARTUP_DEADLINE
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                pytest.fail(f"dockyard serve exited early:\n{''.join(self.log)}")
            self.log.append(line)
            if m := LISTENING.search(line):
                return int(m.group(1))
        pytest.fail(f"no listening line within {STARTUP_DEADLINE}s:\n{''.join(self.log)}")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.wait()


StartServer = Callable[[list[str]], Server]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """Start ``dockyard serve`` with arguments; killed at the end if still running."""
    servers: list[Server] = []

    def start(args: list[str]) -> Server:
        servers.append(Server(args, tmp_path))
        return servers[-1]

    yield start
    for server in servers:
        if server.process.poll() is None:
            server.process.kill()
        server.wait()


def test_serve_on_an_ephemeral_port(start_server: StartServer, tmp_path: Path) -> None:
    data = tmp_path / "registry-data"
    server = start_server(["--port", "0", "--data-dir", str(data)])
    port = server.wait_for_port()
    assert port != 0
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=30) as response:
        assert response.status == 200
        assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
        assert json.loads(response.read()) == {}
    assert server.stop() == 0
    # The flags took effect: the data went where --data-dir said.
    assert (data / "metadata.db").is_file()
    assert (data / "blobs").is_dir()
    assert not (tmp_path / "data").exists()


def test_serve_with_a_config_file(start_server: StartServer, tmp_path: Path) -> None:
    config = tmp_path / "dockyard.toml"
    config.write_text(f'[server]\nport = 0\ndata_dir = "{tmp_path / "from-file"}"\n')
    server = start_server(["--config", str(config)])
    port = server.wait_for_port()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=30) as response:
        assert response.status == 200
    assert server.stop() == 0
    assert (tmp_path / "from-file" / "metadata.db").is_file()


def test_serve_refuses_a_bad_config(tmp_path: Path) -> None:
    config = tmp_path / "dockyard.toml"
    config.write_text("[server]\nport = 'http'\n")
    result = dockyard("serve", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert "server.port" in result.stderr


def test_config_check_accepts_a_good_file(tmp_path: Path) -> None:
    config = tmp_path / "dockyard.toml"
    config.write_text('[server]\nport = 5099\nlog_format = "json"\n')
    result = dockyard("config", "check", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    effective = json.loads(result.stdout)
    assert effective["server"]["port"] == 5099
    assert effective["server"]["log_format"] == "json"
    assert effective["server"]["data_dir"] == str(tmp_path / "data")
    assert "configuration OK" in result.stderr


def test_config_check_reads_dockyard_config(tmp_path: Path) -> None:
    config = tmp_path / "elsewhere.toml"
    config.write_text("[server]\nport = 5098\n")
    result = dockyard("config", "check", cwd=tmp_path, DOCKYARD_CONFIG=str(config))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["server"]["port"] == 5098


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[server]\nport = 99999\n", "server.port"),
        ("[server]\nprot = 5000\n", "server.prot: unknown key"),
        ("[storage]\nkind = 'tape'\n", "storage.kind"),
        ("[server\n", "not valid TOML"),
    ],
)
def test_config_check_rejects_a_bad_file(tmp_path: Path, toml: str, message: str) -> None:
    config = tmp_path / "dockyard.toml"
    config.write_text(toml)
    result = dockyard("config", "check", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_config_check_names_a_bad_environment_variable(tmp_path: Path) -> None:
    result = dockyard("config", "check", cwd=tmp_path, DOCKYARD_SERVER__WORKERS="many")
    assert result.returncode == 2
    assert "server.workers" in result.stderr


def test_config_check_with_a_missing_file(tmp_path: Path) -> None:
    result = dockyard("config", "check", "--config", str(tmp_path / "nope.toml"), cwd=tmp_path)
    assert result.returncode == 2
    assert "does not exist" in result.stderr


def test_migrate(tmp_path: Path) -> None:
    head = head_revision()
    data = tmp_path / "var"
    first = dockyard("migrate", cwd=tmp_path, DOCKYARD_SERVER__DATA_DIR=str(data))
    assert first.returncode == 0, first.stderr
    assert f"metadata schema: (empty) -> {head}" in first.stdout
    assert (data / "metadata.db").is_file()
    again = dockyard("migrate", cwd=tmp_path, DOCKYARD_SERVER__DATA_DIR=str(data))
    assert again.returncode == 0, again.stderr
    assert f"metadata schema: {head} -> {head}" in again.stdout


def test_migrate_refuses_a_bad_config(tmp_path: Path) -> None:
    result = dockyard("migrate", cwd=tmp_path, DOCKYARD_METADATA__POOL_SIZE="0")
    assert result.returncode == 2
    assert "metadata.pool_size" in result.stderr


# -- help ---------------------------------------------------------------------------


def test_serve_help_documents_its_options(tmp_path: Path) -> None:
    result = dockyard("serve", "--help", cwd=tmp_path)
    assert result.returncode == 0
    for option in ("--host", "--port", "--data-dir", "--config", "--workers", "--log-format"):
        assert option in result.stdout


def _commands() -> list[tuple[list[str], TyperCommand | TyperGroup]]:
    found: list[tuple[list[str], TyperCommand | TyperGroup]] = []

    def walk(path: list[str], command: object) -> None:
        assert isinstance(command, TyperCommand | TyperGroup)
        found.append((path, command))
        if isinstance(command, TyperGroup):
            for name, sub in command.commands.items():
                walk([*path, name], sub)

    walk([], typer.main.get_command(app))
    return found


@pytest.mark.parametrize(
    ("path", "command"), _commands(), ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_help_shows_every_option_with_its_help_text(
    path: list[str], command: TyperCommand | TyperGroup
) -> None:
    # In-process: rendering help needs no server, and a process per command is slow.
    result = CliRunner().invoke(app, [*path, "--help"], prog_name="dockyard", terminal_width=100)
    assert result.exit_code == 0, result.output
    shown = " ".join(result.output.split())
    assert f"Usage: {' '.join(['dockyard', *path])} " in shown
    for param in command.params:
        if not isinstance(param, TyperOption) or param.hidden:
            continue
        assert param.opts[0] in shown
        if param.help:
            # As written: rendered as markup, "[text]" in a help string would vanish.
            assert " ".join(param.help.split()) in shown, f"{param.opts[0]}: help not shown"
