"""Robot accounts: a CI credential confined to its own rules, expiring, revocable."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from aiohttp import encode_basic_auth

from tests.auth.conftest import AuthFiles, auth_settings, dockyard, start, write_config
from tests.auth.sessions import Headers, claims, fetch_token, push_image_as
from tests.helpers import Client, assert_error


async def create_robot(config: Path, name: str, *options: str) -> tuple[str, str]:
    """``dockyard robot create``: the user name and secret it prints, once."""
    done = await asyncio.to_thread(
        dockyard, "robot", "create", name, "--config", str(config), *options
    )
    username = re.search(r"^username: (\S+)$", done.stdout, re.MULTILINE)
    secret = re.search(r"^secret: +(\S+)$", done.stdout, re.MULTILINE)
    assert username, done.stdout
    assert secret, done.stdout
    return username.group(1), secret.group(1)


def robot(username: str, secret: str) -> Headers:
    return {"Authorization": encode_basic_auth(username, secret)}


@pytest.fixture
def config(tmp_path: Path, data_dir: Path, auth_files: AuthFiles) -> Path:
    return write_config(tmp_path / "dockyard.toml", data_dir, auth_files, "basic")


async def test_a_ci_robot_pushes_to_its_namespace_and_nowhere_else(
    basic_registry: Client, config: Path
) -> None:
    username, secret = await create_robot(
        config, "jenkins", "--allow", "team-a/**=pull,push", "--description", "Jenkins job"
    )
    assert username == "robot$jenkins"
    ci = robot(username, secret)
    digest, manifest, _ = await push_image_as(basic_registry, ci, "team-a/app")
    r = await basic_registry.get(f"/v2/team-a/app/manifests/{digest}", headers=ci)
    assert await r.read() == manifest
    for method, path in [
        ("POST", "/v2/team-b/app/blobs/uploads/"),
        ("POST", "/v2/prod/app/blobs/uploads/"),
        ("GET", "/v2/team-b/app/tags/list"),
        ("DELETE", f"/v2/team-a/app/manifests/{digest}"),
    ]:
        r = await basic_registry.request(method, path, headers=ci)
        await assert_error(r, 403, "DENIED")
    # The catalog shows it only its namespace (and what is anonymous).
    await push_image_as(basic_registry, robot(username, secret), "team-a/db")
    r = await basic_registry.get("/v2/_catalog", headers=ci)
    assert (await r.json())["repositories"] == ["team-a/app", "team-a/db"]


async def test_a_wrong_robot_secret_is_refused(basic_registry: Client, config: Path) -> None:
    username, secret = await create_robot(config, "ci", "--allow", "team-a/**=pull")
    for headers in (
        robot(username, secret[:-1]),
        robot("robot$nobody", secret),
        robot("ci", secret),
    ):
        await assert_error(await basic_registry.get("/v2/", headers=headers), 401, "UNAUTHORIZED")
    assert (await basic_registry.get("/v2/", headers=robot(username, secret))).status == 200


async def test_a_revoked_robot_cannot_log_in(basic_registry: Client, config: Path) -> None:
    username, secret = await create_robot(config, "old", "--allow", "team-a/**=pull,push")
    await asyncio.to_thread(dockyard, "robot", "revoke", "old", "--config", str(config))
    r = await basic_registry.get("/v2/", headers=robot(username, secret))
    await assert_error(r, 401, "UNAUTHORIZED")
    listing = await asyncio.to_thread(dockyard, "robot", "list", "--config", str(config))
    assert re.search(r"robot\$old .*team-a/\*\*=pull,push .* revoked", listing.stdout), (
        listing.stdout
    )
    # The name can be given to a new robot, with a new secret; the old one stays dead.
    username, fresh = await create_robot(config, "old", "--allow", "team-a/**=pull")
    assert fresh != secret
    assert (await basic_registry.get("/v2/", headers=robot(username, fresh))).status == 200
    r = await basic_registry.get("/v2/", headers=robot(username, secret))
    await assert_error(r, 401, "UNAUTHORIZED")


async def test_an_expired_robot_cannot_log_in(basic_registry: Client, config: Path) -> None:
    username, secret = await create_robot(
        config, "brief", "--allow", "team-a/**=pull", "--expires", "1s"
    )
    await asyncio.sleep(1.2)
    r = await basic_registry.get("/v2/", headers=robot(username, secret))
    await assert_error(r, 401, "UNAUTHORIZED")
    listing = await asyncio.to_thread(dockyard, "robot", "list", "--config", str(config))
    assert re.search(r"robot\$brief .* expired", listing.stdout), listing.stdout


async def test_robot_tokens_are_trimmed_to_its_rules_and_end_with_it(
    aiohttp_client: Any, tmp_path: Path, data_dir: Path, auth_files: AuthFiles
) -> None:
    config = write_config(tmp_path / "dockyard.toml", data_dir, auth_files, "token")
    registry = await start(aiohttp_client, auth_settings(data_dir, auth_files, "token"))
    username, secret = await create_robot(
        config, "deploy", "--allow", "team-a/**=pull,push", "--expires", "2m"
    )
    doc = await fetch_token(
        registry,
        robot(username, secret),
        "repository:team-a/app:pull,push,delete",
        "repository:team-b/app:pull",
    )
    token = claims(doc["token"])
    assert token["sub"] == "robot$deploy"
    assert token["access"] == [
        {"type": "repository", "name": "team-a/app", "actions": ["pull", "push"]}
    ]
    assert 100 < doc["expires_in"] <= 120  # the robot's expiry, before the 5 min TTL


async def test_robot_secrets_are_stored_hashed_and_never_logged(
    basic_registry: Client, config: Path, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    username, secret = await create_robot(config, "audit", "--allow", "team-a/**=pull")
    assert (await basic_registry.get("/v2/", headers=robot(username, secret))).status == 200
    await basic_registry.get("/v2/", headers=robot(username, "wrong-" + secret))

    def stored() -> tuple[str, bytes]:
        db = data_dir / "metadata.db"
        with sqlite3.connect(db) as conn:
            (hashed,) = conn.execute("SELECT secret_hash FROM robots WHERE name='audit'").fetchone()
        files = b"".join(p.read_bytes() for p in data_dir.glob("metadata.db*"))
        return hashed, files

    hashed, files = await asyncio.to_thread(stored)
    assert hashed.startswith("$2y$")
    assert secret.encode() not in files
    assert secret not in caplog.text
