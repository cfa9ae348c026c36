"""``mode = "basic"``: HTTP Basic against the htpasswd file, rules from the policy file."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiohttp import encode_basic_auth

from dockyard import auth
from tests.auth.conftest import AuthFiles, auth_settings, start
from tests.auth.sessions import basic, push_blob_as, push_image_as
from tests.helpers import OCI_MANIFEST, Client, assert_error, sha256

BASIC_CHALLENGE = 'Basic realm="dockyard", charset="UTF-8"'


async def test_no_credentials_get_401_with_a_basic_challenge(basic_registry: Client) -> None:
    for method, path in [
        ("GET", "/v2/"),
        ("GET", "/v2/team-a/app/manifests/v1"),
        ("GET", "/v2/team-a/app/tags/list"),
        ("POST", "/v2/team-a/app/blobs/uploads/"),
        ("DELETE", "/v2/team-a/app/manifests/v1"),
    ]:
        r = await basic_registry.request(method, path)
        await assert_error(r, 401, "UNAUTHORIZED")
        assert r.headers["WWW-Authenticate"] == BASIC_CHALLENGE, (method, path)


async def test_wrong_password_or_unknown_user_get_401(basic_registry: Client) -> None:
    for headers in (basic("alice", "wrong"), basic("nobody", "x"), basic("alice", "")):
        r = await basic_registry.get("/v2/", headers=headers)
        await assert_error(r, 401, "UNAUTHORIZED")
        assert r.headers["WWW-Authenticate"] == BASIC_CHALLENGE
    r = await basic_registry.get("/v2/", headers={"Authorization": "Basic !!!not-base64"})
    await assert_error(r, 401, "UNAUTHORIZED")


async def test_a_user_pushes_and_pulls_where_the_policy_allows(basic_registry: Client) -> None:
    alice = basic("alice")
    assert (await basic_registry.get("/v2/", headers=alice)).status == 200
    digest, manifest, layer = await push_image_as(basic_registry, alice, "team-a/app")
    r = await basic_registry.get("/v2/team-a/app/manifests/v1", headers=alice)
    assert r.status == 200
    assert await r.read() == manifest
    assert r.headers["Docker-Content-Digest"] == digest
    r = await basic_registry.get(f"/v2/team-a/app/blobs/{sha256(layer)}", headers=alice)
    assert await r.read() == layer


async def test_authenticated_but_not_allowed_is_denied_403(basic_registry: Client) -> None:
    await push_image_as(basic_registry, basic("bob"), "team-b/app")
    alice = basic("alice")
    for method, path in [
        ("GET", "/v2/team-b/app/manifests/v1"),
        ("HEAD", "/v2/team-b/app/manifests/v1"),
        ("GET", "/v2/team-b/app/tags/list"),
        ("POST", "/v2/team-b/app/blobs/uploads/"),
        ("PUT", "/v2/team-b/app/manifests/v2"),
        ("DELETE", "/v2/team-b/app/manifests/v1"),
    ]:
        r = await basic_registry.request(method, path, headers=alice)
        assert r.status == 403, (method, path)
        assert "WWW-Authenticate" not in r.headers
        if method != "HEAD":
            error = await assert_error(r, 403, "DENIED")
            assert error["detail"][0]["Name"] == "team-b/app"
    # Nothing happened to bob's image.
    r = await basic_registry.get("/v2/team-b/app/tags/list", headers=basic("bob"))
    assert (await r.json())["tags"] == ["v1"]


async def test_a_pull_only_user_cannot_push_or_delete(basic_registry: Client) -> None:
    digest, manifest, _ = await push_image_as(basic_registry, basic("admin"), "prod/api")
    worker = basic("worker")
    r = await basic_registry.get("/v2/prod/api/manifests/v1", headers=worker)
    assert await r.read() == manifest
    r = await basic_registry.post("/v2/prod/api/blobs/uploads/", headers=worker)
    await assert_error(r, 403, "DENIED")
    r = await basic_registry.put(
        "/v2/prod/api/manifests/evil",
        data=manifest,
        headers={**worker, "Content-Type": OCI_MANIFEST},
    )
    await assert_error(r, 403, "DENIED")
    r = await basic_registry.delete(f"/v2/prod/api/manifests/{digest}", headers=worker)
    await assert_error(r, 403, "DENIED")
    r = await basic_registry.get(f"/v2/prod/api/manifests/{digest}", headers=worker)
    assert r.status == 200


async def test_delete_needs_the_delete_action(basic_registry: Client) -> None:
    # alice may pull and push team-a, but not delete there.
    digest, _, _ = await push_image_as(basic_registry, basic("alice"), "team-a/app")
    r = await basic_registry.delete(f"/v2/team-a/app/manifests/{digest}", headers=basic("alice"))
    await assert_error(r, 403, "DENIED")
    r = await basic_registry.delete(f"/v2/team-a/app/manifests/{digest}", headers=basic("admin"))
    assert r.status == 202


async def test_anonymous_pull_only_where_configured(basic_registry: Client) -> None:
    _, manifest, _ = await push_image_as(basic_registry, basic("admin"), "public/base")
    await push_image_as(basic_registry, basic("admin"), "private/base")
    r = await basic_registry.get("/v2/public/base/manifests/v1")
    assert await r.read() == manifest
    r = await basic_registry.get("/v2/private/base/manifests/v1")
    await assert_error(r, 401, "UNAUTHORIZED")
    r = await basic_registry.post("/v2/public/base/blobs/uploads/")
    await assert_error(r, 401, "UNAUTHORIZED")
    # /v2/ still asks for credentials, so that `docker login` really checks them.
    await assert_error(await basic_registry.get("/v2/"), 401, "UNAUTHORIZED")
    # A logged-in user who has no rule for it pulls it too.
    r = await basic_registry.get("/v2/public/base/manifests/v1", headers=basic("alice"))
    assert r.status == 200


async def test_catalog_lists_only_what_the_caller_may_pull(basic_registry: Client) -> None:
    admin = basic("admin")
    for repo in ("team-a/app", "team-a/db", "team-b/app", "public/base", "prod/api"):
        await push_image_as(basic_registry, admin, repo)

    async def catalog(headers: dict[str, str], query: str = "") -> Any:
        r = await basic_registry.get(f"/v2/_catalog{query}", headers=headers)
        assert r.status == 200, await r.text()
        return await r.json(), r.headers.get("Link")

    assert (await catalog(basic("alice")))[0]["repositories"] == [
        "public/base",
        "team-a/app",
        "team-a/db",
    ]
    assert (await catalog(basic("bob")))[0]["repositories"] == ["public/base", "team-b/app"]
    everything = ["prod/api", "public/base", "team-a/app", "team-a/db", "team-b/app"]
    assert (await catalog(basic("worker")))[0]["repositories"] == everything
    assert (await catalog({}))[0]["repositories"] == ["public/base"]
    # Pages are full pages of visible names, and the Link never skips one.
    doc, link = await catalog(basic("alice"), "?n=2")
    assert doc["repositories"] == ["public/base", "team-a/app"]
    assert link == '</v2/_catalog?n=2&last=team-a%2Fapp>; rel="next"'
    doc, link = await catalog(basic("alice"), "?n=2&last=team-a%2Fapp")
    assert doc["repositories"] == ["team-a/db"]
    assert link is None


async def test_mount_from_a_repository_the_caller_cannot_pull_is_a_plain_upload(
    basic_registry: Client,
) -> None:
    secret_layer = b"bob's secret layer"
    digest = await push_blob_as(basic_registry, basic("bob"), "team-b/app", secret_layer)
    alice = basic("alice")
    r = await basic_registry.post(
        f"/v2/team-a/app/blobs/uploads/?mount={digest}&from=team-b/app", headers=alice
    )
    assert r.status == 202, await r.text()  # the spec's fallback: an upload session
    assert "/blobs/uploads/" in r.headers["Location"]
    r = await basic_registry.head(f"/v2/team-a/app/blobs/{digest}", headers=alice)
    assert r.status == 404
    # The automatic mount (no from) does not find it either.
    r = await basic_registry.post(f"/v2/team-a/app/blobs/uploads/?mount={digest}", headers=alice)
    assert r.status == 202
    r = await basic_registry.get(f"/v2/team-a/app/blobs/{digest}", headers=alice)
    await assert_error(r, 404, "BLOB_UNKNOWN")
    # Whoever may pull the source mounts it for real.
    admin = basic("admin")
    r = await basic_registry.post(
        f"/v2/team-a/other/blobs/uploads/?mount={digest}&from=team-b/app", headers=admin
    )
    assert r.status == 201
    r = await basic_registry.get(f"/v2/team-a/other/blobs/{digest}", headers=admin)
    assert await r.read() == secret_layer


async def test_mount_between_repositories_the_caller_may_pull(basic_registry: Client) -> None:
    alice = basic("alice")
    layer = b"shared team-a layer"
    digest = await push_blob_as(basic_registry, alice, "team-a/base", layer)
    r = await basic_registry.post(
        f"/v2/team-a/app/blobs/uploads/?mount={digest}&from=team-a/base", headers=alice
    )
    assert r.status == 201
    r = await basic_registry.post(f"/v2/team-a/auto/blobs/uploads/?mount={digest}", headers=alice)
    assert r.status == 201
    r = await basic_registry.get(f"/v2/team-a/auto/blobs/{digest}", headers=alice)
    assert await r.read() == layer


async def test_htpasswd_file_written_by_the_htpasswd_tool(
    aiohttp_client: Any, data_dir: Path, auth_files: AuthFiles
) -> None:
    if shutil.which("htpasswd") is None:
        pytest.skip("htpasswd not installed (Debian package apache2-utils)")
    command = ["htpasswd", "-B", "-b", "-c", str(auth_files.htpasswd), "admin", "from-apache"]
    await asyncio.to_thread(subprocess.run, command, check=True, capture_output=True)
    assert auth_files.htpasswd.read_text().startswith("admin:$2y$05$")
    registry = await start(aiohttp_client, auth_settings(data_dir, auth_files, "basic"))
    assert (await registry.get("/v2/", headers=basic("admin", "from-apache"))).status == 200
    r = await registry.get("/v2/", headers=basic("admin", "wrong"))
    await assert_error(r, 401, "UNAUTHORIZED")


async def test_users_and_rules_are_reloaded_when_their_files_change(
    aiohttp_client: Any, data_dir: Path, auth_files: AuthFiles
) -> None:
    registry = await start(aiohttp_client, auth_settings(data_dir, auth_files, "basic"))
    dave = {"Authorization": encode_basic_auth("dave", "dave-password")}
    await assert_error(await registry.get("/v2/", headers=dave), 401, "UNAUTHORIZED")
    # What `dockyard user add` does, off the event loop as the server's own code must be.
    users = await asyncio.to_thread(auth.read_htpasswd, auth_files.htpasswd)
    hashed = await asyncio.to_thread(auth.hash_password, "dave-password")
    await asyncio.to_thread(
        auth.write_htpasswd, auth_files.htpasswd, users.with_password("dave", hashed)
    )
    rule = b'\n[[rules]]\nrepositories = "dave/**"\nactions = ["pull", "push"]\nusers = ["dave"]\n'
    auth_files.policy.write_bytes(auth_files.policy.read_bytes() + rule)
    # No restart: files are looked at every 2 s, so dave gets in within a few seconds.
    # Each try before that is a failed login: stay under the lockout (5 failures).
    status = 401
    for _ in range(3):
        await asyncio.sleep(1.0)
        status = (await registry.post("/v2/dave/app/blobs/uploads/", headers=dave)).status
        if status == 202:
            break
    assert status == 202
    r = await registry.post("/v2/team-a/app/blobs/uploads/", headers=dave)
    await assert_error(r, 403, "DENIED")
