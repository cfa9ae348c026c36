"""Pull-through basics against the fake upstream: bytes, digests, media types, names."""

from __future__ import annotations

import asyncio

from dockyard.api import REGISTRY
from tests.helpers import Client, assert_error, push_image, sha256
from tests.proxy.conftest import CacheFactory
from tests.proxy.fake_upstream import DOCKER_MANIFEST, FakeUpstream

ACCEPT = {"Accept": f"{DOCKER_MANIFEST}, application/vnd.oci.image.manifest.v1+json"}


async def test_pull_by_tag_then_digest_is_served_from_the_cache(
    cache: Client, fake: FakeUpstream
) -> None:
    image = fake.put_image("team/app", "v1", [b"layer one" * 1000, b"layer two"])
    r = await cache.get("/v2/cache/team/app/manifests/v1", headers=ACCEPT)
    assert r.status == 200, await r.text()
    assert await r.read() == image.manifest  # byte for byte, indentation and all
    assert r.headers["Docker-Content-Digest"] == image.digest
    assert r.headers["Content-Type"] == DOCKER_MANIFEST
    for blob in (image.config, *image.layers):
        r = await cache.get(f"/v2/cache/team/app/blobs/{sha256(blob)}")
        assert r.status == 200, await r.text()
        assert await r.read() == blob
        assert r.headers["Docker-Content-Digest"] == sha256(blob)

    before = fake.requests.copy()
    r = await cache.get(f"/v2/cache/team/app/manifests/{image.digest}", headers=ACCEPT)
    assert await r.read() == image.manifest
    for blob in (image.config, *image.layers):
        r = await cache.get(f"/v2/cache/team/app/blobs/{sha256(blob)}")
        assert await r.read() == blob
    assert fake.requests == before  # nothing went upstream a second time


async def test_head_of_an_uncached_blob_does_not_download_it(
    cache: Client, fake: FakeUpstream
) -> None:
    image = fake.put_image("team/app", "v1", [b"abc" * 100])
    layer = sha256(image.layers[0])
    r = await cache.head(f"/v2/cache/team/app/blobs/{layer}")
    assert r.status == 200
    assert r.headers["Content-Length"] == "300"
    assert fake.requests[f"GET blob {layer}"] == 0


async def test_docker_hub_short_names_share_the_library_copy(
    make_cache: CacheFactory, fake: FakeUpstream
) -> None:
    image = fake.put_image("library/alpine", "3", [b"alpine layer"])
    client = await make_cache(
        {"name": "hub", "url": fake.url, "prefix": "hub/", "docker_hub": "yes"}
    )
    short = await client.get("/v2/hub/alpine/manifests/3", headers=ACCEPT)
    assert short.status == 200, await short.text()
    assert await short.read() == image.manifest
    full = await client.get("/v2/hub/library/alpine/manifests/3", headers=ACCEPT)
    assert await full.read() == image.manifest
    assert fake.requests["GET manifest library/alpine:3"] == 1
    layer = sha256(image.layers[0])
    r = await client.get(f"/v2/hub/alpine/blobs/{layer}")
    assert await r.read() == image.layers[0]
    tags = await client.get("/v2/hub/library/alpine/tags/list")
    assert (await tags.json())["tags"] == ["3"]


async def test_upstream_404_is_the_specs_error_and_is_remembered(
    cache: Client, fake: FakeUpstream
) -> None:
    for _ in range(3):
        r = await cache.get("/v2/cache/team/nothing/manifests/v1", headers=ACCEPT)
        error = await assert_error(r, 404, "MANIFEST_UNKNOWN")
        assert "fake" in error["message"]
    assert fake.requests["GET manifest team/nothing:v1"] == 1  # the negative cache
    missing = sha256(b"no such blob")
    r = await cache.get(f"/v2/cache/team/nothing/blobs/{missing}")
    await assert_error(r, 404, "BLOB_UNKNOWN")


async def test_cache_namespace_is_read_only_for_clients(cache: Client, fake: FakeUpstream) -> None:
    image = fake.put_image("team/app", "v1", [b"layer"])
    r = await cache.get("/v2/cache/team/app/manifests/v1", headers=ACCEPT)
    assert r.status == 200
    r = await cache.post("/v2/cache/team/app/blobs/uploads/", headers={"Content-Length": "0"})
    error = await assert_error(r, 403, "DENIED")
    assert "cache" in error["message"]
    assert "fake" in error["message"]
    r = await cache.put(
        "/v2/cache/team/app/manifests/v2",
        data=image.manifest,
        headers={"Content-Type": DOCKER_MANIFEST},
    )
    await assert_error(r, 403, "DENIED")
    r = await cache.delete(f"/v2/cache/team/app/manifests/{image.digest}")
    await assert_error(r, 403, "DENIED")
    r = await cache.delete(f"/v2/cache/team/app/blobs/{sha256(image.layers[0])}")
    await assert_error(r, 403, "DENIED")
    r = await cache.post(
        f"/v2/cache/team/other/blobs/uploads/?mount={sha256(image.layers[0])}&from=cache/team/app",
        headers={"Content-Length": "0"},
    )
    await assert_error(r, 403, "DENIED")
    # Outside the cache namespace, pushing works as ever, and may mount cached blobs.
    digest, _ = await push_image(cache, "local/app", "v1")
    r = await cache.get(f"/v2/local/app/manifests/{digest}")
    assert r.status == 200
    r = await cache.get("/v2/cache/team/app/manifests/v1", headers=ACCEPT)
    assert await r.read() == image.manifest


async def test_concurrent_manifest_requests_cause_one_upstream_fetch(
    make_cache: CacheFactory, fake: FakeUpstream
) -> None:
    image = fake.put_image("team/app", "v1", [b"layer"])
    client = await make_cache({"name": "fake", "url": fake.url, "prefix": "cache/"})
    responses = await asyncio.gather(
        *(client.get("/v2/cache/team/app/manifests/v1", headers=ACCEPT) for _ in range(10))
    )
    for r in responses:
        assert r.status == 200
        assert await r.read() == image.manifest
    assert fake.requests["GET manifest team/app:v1"] == 1


async def test_cached_content_is_ordinary_content(cache: Client, fake: FakeUpstream) -> None:
    image = fake.put_image("team/app", "v1", [b"layer"])
    r = await cache.get("/v2/cache/team/app/manifests/v1", headers=ACCEPT)
    assert r.status == 200
    catalog = await (await cache.get("/v2/_catalog")).json()
    assert "cache/team/app" in catalog["repositories"]
    core = cache.app[REGISTRY]
    history = await core.discovery.history("cache/team/app", "v1")
    assert [(h.old_digest, h.new_digest, h.reason) for h in history] == [
        (None, image.digest, "cache")
    ]
