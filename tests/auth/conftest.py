"""Fixtures for the access-control tests: users, a policy, and servers in each mode.

Every server here is the real application on an ephemeral port (aiohttp's TestServer),
talked to over HTTP. The users, their groups and rules:

- ``alice`` (group team-a): pull and push ``team-a/**``;
- ``bob``: everything on ``team-b`` and ``team-b/**``;
- ``worker`` (group workers): pull everywhere, nothing else;
- ``admin``: everything everywhere;
- anyone, without credentials: pull ``public/**``.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest

from dockyard import auth
from dockyard.app import build_app
from dockyard.config import Settings, load_settings
from tests.auth.sessions import USERS
from tests.helpers import Client

POLICY = b"""
[groups]
team-a = ["alice"]
workers = ["worker"]

[[rules]]
repositories = "team-a/**"
actions = ["pull", "push"]
groups = ["team-a"]

[[rules]]
repositories = ["team-b", "team-b/**"]
actions = ["*"]
users = ["bob"]

[[rules]]
repositories = "**"
actions = ["pull"]
groups = ["workers"]

[[rules]]
repositories = "**"
actions = ["*"]
users = ["admin"]
"""


@dataclass(frozen=True, slots=True)
class AuthFiles:
    """The user store and policy file a test server reads."""

    htpasswd: Path
    policy: Path


@pytest.fixture(scope="session")
def htpasswd_bytes() -> bytes:
    """The users' htpasswd file, hashed once per session (bcrypt is slow on purpose)."""
    users = auth.Htpasswd()
    for name, password in USERS.items():
        users = users.with_password(name, auth.hash_password(password))
    return users.render()


@pytest.fixture
def auth_files(tmp_path: Path, htpasswd_bytes: bytes) -> AuthFiles:
    files = AuthFiles(tmp_path / "htpasswd", tmp_path / "policy.toml")
    files.htpasswd.write_bytes(htpasswd_bytes)
    files.policy.write_bytes(POLICY)
    return files


def auth_settings(data_dir: Path, files: AuthFiles, mode: str, **auth_keys: Any) -> Settings:
    """Settings for a server in ``mode`` over ``files``, with ``public/**`` anonymous."""
    keys: dict[str, Any] = {
        "mode": mode,
        "htpasswd": str(files.htpasswd),
        "policy": str(files.policy),
        "anonymous_pull": ["public/**"],
        **auth_keys,
    }
    return load_settings(overrides={"server": {"data_dir": data_dir}, "auth": keys})


async def start(aiohttp_client: Any, settings: Settings) -> Client:
    """The application for ``settings`` on an ephemeral port, and a client to it."""
    client: Client = await aiohttp_client(build_app(settings))
    return client


@pytest.fixture
async def basic_registry(aiohttp_client: Any, data_dir: Path, auth_files: AuthFiles) -> Client:
    """A server in ``basic`` mode."""
    return await start(aiohttp_client, auth_settings(data_dir, auth_files, "basic"))


@pytest.fixture
async def token_registry(aiohttp_client: Any, data_dir: Path, auth_files: AuthFiles) -> Client:
    """A server in ``token`` mode, its signing key generated under ``data_dir``."""
    return await start(aiohttp_client, auth_settings(data_dir, auth_files, "token"))


def write_config(path: Path, data_dir: Path, files: AuthFiles, mode: str) -> Path:
    """The TOML file an operator would write for these settings (for the CLI)."""
    path.write_text(
        f"""
[server]
data_dir = "{data_dir}"

[auth]
mode = "{mode}"
htpasswd = "{files.htpasswd}"
policy = "{files.policy}"
anonymous_pull = ["public/**"]
"""
    )
    return path


def dockyard(*args: str, stdin: str | None = None, check: bool = True) -> CompletedProcess[str]:
    """Run the ``dockyard`` command line in a child process."""
    done = subprocess.run(
        [sys.executable, "-m", "dockyard", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check:
        assert done.returncode == 0, f"dockyard {' '.join(args)}: {done.stderr}"
    return done
