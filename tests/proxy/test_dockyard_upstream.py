"""Upstream 2: a second Dockyard in token mode, so the cache does the real token dance
(401 with a Bearer challenge, a token from ``/auth/token`` with the configured
credentials, the request again with the token) against our own token server."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import pytest

from dockyard import auth
from dockyard.app import build_app
from dockyard.proxy import CACHE
from tests.auth.conftest import POLICY, AuthFiles, auth_settings
from tests.auth.sessions import USERS, bearer, push_blob_as, token_for
from tests.helpers import OCI_MANIFEST, Client, assert_error, image_manifest, sha256
from tests.proxy.conftest import CacheFactory
from tests.proxy.test_distribution import skopeo

LAYERS = [random.Random(i).randbytes(size) for i, size in enumerate((1 << 20, 30_000))]
REPO = "team-a/app"  # alice may pull and push there; anonymous users may not pull


@pytest.fixture
def files(tmp_path: Path) -> AuthFiles:
    users = auth.Htpasswd().with_password("alice", auth.hash_password(USERS["alice"]))
    files = AuthFiles(tmp_path / "htpasswd", tmp_path / "policy.toml")
    files.htpasswd.write_bytes(users.render())
    files.policy.write_bytes(POLICY)
    return files


@pytest.fixture
async def upstream(aiohttp_client: Any, tmp_path: Path, files: AuthFiles) -> Client:
    """Dockyard in token mode holding ``team-a/app:v1``, pushed by alice."""
    client: Client = await aiohttp_client(
        build_app(auth_settings(tmp_path / "upstream", files, "token"))
    )
    token = await token_for(client, "alice", f"repository:{REPO}:pull,push")
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    for blob in (config, *LAYERS):
        await push_blob_as(client, bearer(token), REPO, blob)
    r = await client.put(
        f"/v2/{REPO}/manifests/v1",
        data=image_manifest(config, LAYERS),
        headers={**bearer(token), "Content-Type": OCI_MANIFEST},
    )
    assert r.status == 201, await r.text()
    return client


def _address(client: Client) -> str:
    return f"{client.host}:{client.port}"


async def _cache(make_cache: CacheFactory, upstream: Client, **extra: str) -> Client:
    return await make_cache(
        {"name": "dy", "url": f"http://{_address(upstream)}", "prefix": "dy/", **extra}
    )


async def test_skopeo_pulls_through_a_token_auth_dockyard(
    make_cache: CacheFactory, upstream: Client, tmp_path: Path
) -> None:
    # The upstream really asks for a token: no anonymous pull of this repository.
    r = await upstream.get(f"/v2/{REPO}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert r.status == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer realm=")
    cache = await _cache(make_cache, upstream, username="alice", password=USERS["alice"])

    direct, through = tmp_path / "direct", tmp_path / "through"
    await skopeo(
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--src-creds",
        f"alice:{USERS['alice']}",
        f"docker://{_address(upstream)}/{REPO}:v1",
        f"oci:{direct}:v1",
    )
    await skopeo(
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        f"docker://{_address(cache)}/dy/{REPO}:v1",
        f"oci:{through}:v1",
    )
    indexes = [
        json.loads(await asyncio.to_thread((layout / "index.json").read_text))
        for layout in (direct, through)
    ]
    digests = [[m["digest"] for m in index["manifests"]] for index in indexes]
    assert digests[0] == digests[1]
    assert len(digests[0]) == 1
    for layer in LAYERS:
        name = sha256(layer).removeprefix("sha256:")
        for layout in (direct, through):
            path = layout / "blobs" / "sha256" / name
            assert await asyncio.to_thread(path.read_bytes) == layer

    # One token for the repository's pull scope, reused for the manifest and every blob.
    dy = cache.app[CACHE].router.upstreams[0]
    assert dy.token_fetches == 1
    # Cached: served again with the upstream's token server untouched.
    await skopeo(
        "copy",
        "--src-tls-verify=false",
        f"docker://{_address(cache)}/dy/{REPO}@{digests[0][0]}",
        f"oci:{tmp_path / 'again'}:v1",
    )
    assert dy.token_fetches == 1


async def test_missing_or_wrong_credentials_are_a_clear_error(
    make_cache: CacheFactory, upstream: Client
) -> None:
    # Anonymous: the token server leaves the pull out of the token; the upstream says 401.
    anonymous = await _cache(make_cache, upstream)
    r = await anonymous.get(f"/v2/dy/{REPO}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    error = await assert_error(r, 503, "UNAVAILABLE")
    assert "upstream 'dy' refused access to team-a/app (401)" in error["message"]
    # A wrong password: the token server itself refuses.
    wrong = await _cache(make_cache, upstream, username="alice", password="not-her-password")
    r = await wrong.get(f"/v2/dy/{REPO}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    error = await assert_error(r, 503, "UNAVAILABLE")
    assert "token server" in error["message"]
    assert "answered 401" in error["message"]
