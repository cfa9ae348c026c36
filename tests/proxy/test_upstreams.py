"""Upstream auth (the token dance), mirror mode with containerd's ``ns``, LRU eviction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from dockyard.api import REGISTRY
from dockyard.oci import Digest
from dockyard.proxy import CACHE
from dockyard.storage import BlobNotFound
from tests.helpers import Client, assert_error, eventually, sha256
from tests.proxy.conftest import CacheFactory
from tests.proxy.fake_upstream import DOCKER_MANIFEST, FakeUpstream, serve

ACCEPT = {"Accept": DOCKER_MANIFEST}


async def _pull(client: Client, repository: str, tag: str) -> None:
    """Pull a whole image (manifest and blobs), checking every digest."""
    r = await client.get(f"/v2/{repository}/manifests/{tag}", headers=ACCEPT)
    assert r.status == 200, await r.text()
    doc = await r.json(content_type=None)
    for descriptor in (doc["config"], *doc["layers"]):
        blob = await client.get(f"/v2/{repository}/blobs/{descriptor['digest']}")
        assert blob.status == 200, await blob.text()
        assert sha256(await blob.read()) == descriptor["digest"]


async def test_anonymous_token_dance_reuses_its_token(
    make_cache: CacheFactory, fake: FakeUpstream
) -> None:
    fake.token_auth = True
    fake.put_image("team/app", "v1", [b"one", b"two", b"three"])
    client = await make_cache({"name": "fake", "url": fake.url, "prefix": "cache/"})
    await _pull(client, "cache/team/app", "v1")
    assert fake.requests["token"] == 1  # one token, sent up front for the other requests


async def test_token_dance_with_credentials(make_cache: CacheFactory, fake: FakeUpstream) -> None:
    fake.token_auth = True
    fake.credentials = ("puller", "s3cret")
    fake.put_image("team/app", "v1", [b"layer"])
    good = await make_cache(
        {
            "name": "fake",
            "url": fake.url,
            "prefix": "cache/",
            "username": "puller",
            "password": "s3cret",
        }
    )
    await _pull(good, "cache/team/app", "v1")
    bad = await make_cache(
        {"name": "fake", "url": fake.url, "prefix": "cache/", "username": "x", "password": "y"}
    )
    r = await bad.get("/v2/cache/team/app/manifests/v1", headers=ACCEPT)
    error = await assert_error(r, 503, "UNAVAILABLE")
    assert "fake" in error["message"]


async def test_expired_token_is_renewed(make_cache: CacheFactory, fake: FakeUpstream) -> None:
    fake.token_auth = True
    # Valid upstream for 5s, but too close to expiry for the cache to send it again.
    fake.token_lifetime = 5
    fake.put_image("team/app", "v1", [b"layer"])
    client = await make_cache({"name": "fake", "url": fake.url, "prefix": "cache/"})
    await _pull(client, "cache/team/app", "v1")
    assert fake.requests["token"] >= 2


@pytest.fixture
async def second() -> AsyncIterator[FakeUpstream]:
    upstream = FakeUpstream()
    server = await serve(upstream)
    yield upstream
    await server.close()


async def test_mirror_mode_serves_names_as_they_are_and_picks_upstreams_by_ns(
    make_cache: CacheFactory, fake: FakeUpstream, second: FakeUpstream
) -> None:
    hub = fake.put_image("library/alpine", "3", [b"from the mirror"])
    other = second.put_image("library/alpine", "3", [b"from the second registry"])
    client = await make_cache(
        {"name": "hub", "url": fake.url, "prefix": "", "docker_hub": "yes"},
        {"name": "second", "url": second.url, "prefix": "second/"},
    )
    # As Docker's registry-mirrors: the upstream's own names.
    r = await client.get("/v2/library/alpine/manifests/3", headers=ACCEPT)
    assert await r.read() == hub.manifest
    # As containerd's mirror for the second registry: ?ns= names it.
    ns = second.url.removeprefix("http://")
    r = await client.get(f"/v2/library/alpine/manifests/3?ns={ns}", headers=ACCEPT)
    assert r.status == 200, await r.text()
    assert await r.read() == other.manifest
    assert r.headers["OCI-Namespace"] == ns
    layer = sha256(other.layers[0])
    r = await client.get(f"/v2/library/alpine/blobs/{layer}?ns={ns}")
    assert await r.read() == other.layers[0]
    # docker.io means the Docker Hub upstream.
    r = await client.get("/v2/library/alpine/manifests/3?ns=docker.io", headers=ACCEPT)
    assert await r.read() == hub.manifest
    # A mirror is a cache: nothing may be pushed to it.
    r = await client.post("/v2/mine/app/blobs/uploads/", headers={"Content-Length": "0"})
    await assert_error(r, 403, "DENIED")


async def _pull_stored(client: Client, repository: str, layer: bytes) -> None:
    """Pull ``layer`` through the cache, and wait until it is moved into the store (right
    after the client had its last byte)."""
    digest = sha256(layer)
    r = await client.get(f"/v2/{repository}/blobs/{digest}")
    assert await r.read() == layer
    fetcher = client.app[CACHE].fetcher

    async def stored() -> bool:
        return fetcher.size_in_flight(Digest.parse(digest)) is None

    await eventually(stored, f"{digest} to be stored")


async def test_least_recently_pulled_blobs_are_evicted_above_max_size(
    make_cache: CacheFactory, fake: FakeUpstream
) -> None:
    layers = [bytes([i]) * 1000 for i in range(3)]
    fake.put_image("team/app", "v1", layers)
    client = await make_cache(
        {"name": "fake", "url": fake.url, "prefix": "cache/", "max_size": "2500B"}
    )
    pulls = client.app[CACHE].pulls
    core = client.app[REGISTRY]
    digests = [sha256(layer) for layer in layers]

    async def pull(i: int) -> None:
        await _pull_stored(client, "cache/team/app", layers[i])
        await pulls.flush()

    await pull(0)
    await pull(1)
    await pull(0)  # blob 0 was pulled first, but blob 1 is now the least recently pulled
    await pull(2)  # 3000 bytes > 2500: one blob must go
    kept = [await core.meta.blob_size("cache/team/app", d) is not None for d in digests]
    assert kept == [True, False, True]
    with pytest.raises(BlobNotFound):
        await core.store.stat(Digest.parse(digests[1]))
    assert fake.requests[f"GET blob {digests[0]}"] == 1
    # An evicted blob is simply fetched again (and something else makes room).
    await pull(1)
    assert fake.requests[f"GET blob {digests[1]}"] == 2


async def test_blobs_not_pulled_for_max_idle_are_evicted(
    make_cache: CacheFactory, fake: FakeUpstream
) -> None:
    layers = [bytes([i]) * 1000 for i in range(2)]
    fake.put_image("team/idle", "v1", layers)
    client = await make_cache(
        {"name": "fake", "url": fake.url, "prefix": "cache/", "max_idle": "1s"}
    )
    pulls = client.app[CACHE].pulls
    core = client.app[REGISTRY]
    digests = [sha256(layer) for layer in layers]

    async def pull(i: int) -> None:
        await _pull_stored(client, "cache/team/idle", layers[i])

    await pull(0)
    await pulls.flush()
    await asyncio.sleep(1.2)  # blob 0 is now idle for longer than max_idle
    await pull(1)
    await pulls.flush()
    kept = [await core.meta.blob_size("cache/team/idle", d) is not None for d in digests]
    assert kept == [False, True]
    with pytest.raises(BlobNotFound):
        await core.store.stat(Digest.parse(digests[0]))
    # Pulled again, it is simply fetched again.
    await pull(0)
    assert fake.requests[f"GET blob {digests[0]}"] == 2
