"""Tags: revalidated after their TTL, moved when the upstream moved them, served stale
(with a Warning) when the upstream fails, and an uncached pull failing fast and clearly."""

from __future__ import annotations

import asyncio
import socket

import pytest

from dockyard.api import REGISTRY
from tests.helpers import Client, assert_error, sha256
from tests.proxy.conftest import CacheFactory
from tests.proxy.fake_upstream import DOCKER_MANIFEST, FakeUpstream

ACCEPT = {"Accept": DOCKER_MANIFEST}
DEADLINE = 30.0


def _upstream(fake: FakeUpstream, **extra: object) -> dict[str, object]:
    return {"name": "fake", "url": fake.url, "prefix": "cache/", **extra}


async def _digest(client: Client, repository: str, tag: str) -> str:
    r = await client.get(f"/v2/{repository}/manifests/{tag}", headers=ACCEPT)
    assert r.status == 200, await r.text()
    body = await r.read()
    assert sha256(body) == r.headers["Docker-Content-Digest"]
    return r.headers["Docker-Content-Digest"]


async def test_moved_tag_is_served_old_before_its_ttl_and_new_after(
    make_cache: CacheFactory, fake: FakeUpstream
) -> None:
    old = fake.put_image("team/app", "latest", [b"v1"])
    client = await make_cache(_upstream(fake, tag_ttl="300ms"))
    assert await _digest(client, "cache/team/app", "latest") == old.digest
    new = fake.put_image("team/app", "latest", [b"v2"])
    # Within the TTL, no round trip: the cached digest.
    assert await _digest(client, "cache/team/app", "latest") == old.digest
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while await _digest(client, "cache/team/app", "latest") != new.digest:
        assert loop.time() < deadline, "the tag was never revalidated"
        await asyncio.sleep(0.05)
    history = await client.app[REGISTRY].discovery.history("cache/team/app", "latest")
    assert [(h.old_digest, h.new_digest, h.reason) for h in history] == [
        (None, old.digest, "cache"),
        (old.digest, new.digest, "cache"),
    ]
    # Revalidation is a HEAD; the manifest itself was fetched once per digest.
    assert fake.requests["HEAD manifest team/app:latest"] >= 1
    assert fake.requests[f"GET manifest team/app:{new.digest}"] == 1


async def test_ttl_zero_revalidates_every_request(
    make_cache: CacheFactory, fake: FakeUpstream
) -> None:
    old = fake.put_image("team/app", "latest", [b"v1"])
    client = await make_cache(_upstream(fake, tag_ttl="0s"))
    assert await _digest(client, "cache/team/app", "latest") == old.digest
    assert await _digest(client, "cache/team/app", "latest") == old.digest
    assert fake.requests["HEAD manifest team/app:latest"] == 1
    new = fake.put_image("team/app", "latest", [b"v2"])
    assert await _digest(client, "cache/team/app", "latest") == new.digest
    history = await client.app[REGISTRY].discovery.history("cache/team/app", "latest")
    assert history[-1].old_digest == old.digest
    assert history[-1].new_digest == new.digest


@pytest.mark.parametrize("status", [503, 500, 429])
async def test_failing_upstream_serves_cached_tag_with_a_warning(
    make_cache: CacheFactory, fake: FakeUpstream, status: int
) -> None:
    image = fake.put_image("team/app", "v1", [b"layer"])
    client = await make_cache(_upstream(fake, tag_ttl="0s"))
    assert await _digest(client, "cache/team/app", "v1") == image.digest
    fake.status = status
    r = await client.get("/v2/cache/team/app/manifests/v1", headers=ACCEPT)
    assert r.status == 200
    assert await r.read() == image.manifest
    assert r.headers["Warning"].startswith("110 ")
    assert "fake" in r.headers["Warning"]
    # Blobs are immutable: served from the cache, no warning needed.
    layer = sha256(image.layers[0])
    fake.status = None
    assert (await client.get(f"/v2/cache/team/app/blobs/{layer}")).status == 200
    fake.status = status
    r = await client.get(f"/v2/cache/team/app/blobs/{layer}")
    assert await r.read() == image.layers[0]
    metrics = await (await client.get("/metrics")).text()
    assert 'dockyard_cache_stale_served_total{upstream="fake"} 1.0' in metrics
    # The next, healthy answer carries no warning.
    fake.status = None
    r = await client.get("/v2/cache/team/app/manifests/v1", headers=ACCEPT)
    assert "Warning" not in r.headers


async def test_stale_if_error_off_refuses_stale_content(
    make_cache: CacheFactory, fake: FakeUpstream
) -> None:
    fake.put_image("team/app", "v1", [b"layer"])
    client = await make_cache(_upstream(fake, tag_ttl="0s", stale_if_error=False))
    await _digest(client, "cache/team/app", "v1")
    fake.status = 503
    r = await client.get("/v2/cache/team/app/manifests/v1", headers=ACCEPT)
    await assert_error(r, 503, "UNAVAILABLE")


async def test_uncached_pull_with_upstream_down_fails_clearly(make_cache: CacheFactory) -> None:
    with socket.socket() as s:  # a port nobody listens on: connections are refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = await make_cache({"name": "gone", "url": f"http://127.0.0.1:{port}", "prefix": "g/"})
    r = await client.get("/v2/g/team/app/manifests/v1", headers=ACCEPT)
    error = await assert_error(r, 503, "UNAVAILABLE")
    assert "'gone'" in error["message"]
    assert f"127.0.0.1:{port}" in error["message"]
    r = await client.get(f"/v2/g/team/app/blobs/{sha256(b'x')}")
    await assert_error(r, 503, "UNAVAILABLE")


async def test_hanging_upstream_times_out_then_backs_off(
    make_cache: CacheFactory, fake: FakeUpstream
) -> None:
    fake.hang = True
    client = await make_cache(_upstream(fake, read_timeout="200ms", backoff="1h"))
    for i in range(3):
        r = await client.get(f"/v2/cache/team/app/manifests/v{i}", headers=ACCEPT)
        error = await assert_error(r, 503, "UNAVAILABLE")
        assert "fake" in error["message"]
    asked = sum(fake.requests.values())
    # Three failures in a row: the upstream is skipped without waiting for it.
    r = await client.get("/v2/cache/team/app/manifests/v9", headers=ACCEPT)
    error = await assert_error(r, 503, "UNAVAILABLE")
    assert "backing off" in error["message"]
    assert sum(fake.requests.values()) == asked
