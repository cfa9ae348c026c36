"""``dockyard user``, ``dockyard token`` and the auth side of ``dockyard config check``."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from dockyard import auth
from tests.auth.conftest import AuthFiles, dockyard, write_config
from tests.auth.sessions import bearer, claims
from tests.helpers import Client, assert_error


@pytest.fixture
def config(tmp_path: Path, data_dir: Path, auth_files: AuthFiles) -> Path:
    return write_config(tmp_path / "dockyard.toml", data_dir, auth_files, "token")


def test_user_add_passwd_list_remove(config: Path, auth_files: AuthFiles) -> None:
    c = ("--config", str(config))
    dockyard("user", "add", "erin", *c, "--password-stdin", stdin="first password\n")
    assert dockyard("user", "list", *c).stdout.split() == [
        "alice",
        "bob",
        "worker",
        "admin",
        "erin",
    ]
    users = auth.read_htpasswd(auth_files.htpasswd)
    assert users.users["erin"].startswith("$2y$11$")
    assert users.check("erin", "first password")
    assert b"first password" not in auth_files.htpasswd.read_bytes()
    if shutil.which("htpasswd"):  # Apache's own tool agrees with the hash
        check = ["htpasswd", "-vb", str(auth_files.htpasswd), "erin", "first password"]
        assert subprocess.run(check, capture_output=True, check=False).returncode == 0

    again = dockyard("user", "add", "erin", *c, "--password-stdin", stdin="x\n", check=False)
    assert again.returncode == 1
    assert "exists" in again.stderr

    dockyard("user", "passwd", "erin", *c, "--password-stdin", stdin="second password\n")
    users = auth.read_htpasswd(auth_files.htpasswd)
    assert users.check("erin", "second password")
    assert not users.check("erin", "first password")
    assert users.check("alice", "alice-password")  # the others are untouched

    dockyard("user", "remove", "erin", *c)
    assert "erin" not in dockyard("user", "list", *c).stdout.split()
    missing = dockyard("user", "remove", "erin", *c, check=False)
    assert missing.returncode == 1


def test_user_add_refuses_bad_names_and_passwords(config: Path) -> None:
    c = ("--config", str(config))
    for name in ("robot$x", "a:b", "-x", ""):
        done = dockyard("user", "add", name, *c, "--password-stdin", stdin="pw\n", check=False)
        assert done.returncode != 0, name
    done = dockyard("user", "add", "frank", *c, "--password-stdin", stdin="\n", check=False)
    assert done.returncode == 1
    assert "empty" in done.stderr


async def test_token_command_mints_a_trimmed_token_the_server_accepts(
    token_registry: Client, config: Path
) -> None:
    done = await asyncio.to_thread(
        dockyard,
        "token", "alice", "--config", str(config),
        "--scope", "repository:team-a/app:pull,push,delete",
        "--scope", "repository:team-b/app:pull",
        "--ttl", "1h",
    )  # fmt: skip
    token = done.stdout.strip()
    doc = claims(token)
    assert doc["sub"] == "alice"
    assert doc["exp"] - doc["iat"] == 3600
    assert doc["access"] == [
        {"type": "repository", "name": "team-a/app", "actions": ["pull", "push"]}
    ]
    assert "granted: repository:team-a/app:pull,push" in done.stderr
    r = await token_registry.get("/v2/team-a/app/tags/list", headers=bearer(token))
    await assert_error(r, 404, "NAME_UNKNOWN")  # allowed in, and nothing is there yet
    r = await token_registry.get("/v2/team-b/app/tags/list", headers=bearer(token))
    await assert_error(r, 403, "DENIED")


def test_token_command_refuses_unknown_subjects(config: Path) -> None:
    for subject in ("mallory", "robot$nobody"):
        done = dockyard("token", subject, "--config", str(config), check=False)
        assert done.returncode == 1, subject
        assert "neither a user" in done.stderr


def test_config_check_reports_a_broken_policy(config: Path, auth_files: AuthFiles) -> None:
    assert dockyard("config", "check", "--config", str(config)).returncode == 0
    auth_files.policy.write_text(
        '[[rules]]\nrepositories = "Team-A/**"\nactions = ["pull"]\nusers = ["a"]\n'
    )
    done = dockyard("config", "check", "--config", str(config), check=False)
    assert done.returncode == 2
    assert "rules.0" in done.stderr
    assert "capitals" in done.stderr
