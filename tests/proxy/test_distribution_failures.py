"""The real Distribution upstream under load and failure: ten concurrent pulls of one
uncached layer cost one upstream GET (counted in Distribution's own access log), and an
upstream killed mid-blob leaves nothing partial behind."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from dockyard.api import REGISTRY
from dockyard.app import SETTINGS
from dockyard.oci import Digest
from dockyard.storage import BlobNotFound
from tests.helpers import Client, eventually, sha256
from tests.proxy.conftest import CacheFactory
from tests.proxy.distribution import OCI_MANIFEST, Distribution
from tests.proxy.passthrough import Passthrough

MiB = 1 << 20
DEADLINE = 30.0


@pytest.fixture
async def upstream(tmp_path: Path) -> AsyncIterator[Distribution]:
    root = tmp_path / "distribution"
    await asyncio.to_thread(root.mkdir)
    registry = await Distribution.create(root)
    yield registry
    await registry.stop()


async def access_log(upstream: Distribution) -> str:
    """Distribution's access log (Apache combined format, on its stdout)."""
    return await asyncio.to_thread((upstream.root / "registry.log").read_text)


async def upstream_gets(upstream: Distribution, path: str) -> int:
    """Completed upstream ``GET``s of ``path``, once the log has caught up.

    Distribution writes a line after each response; a marker request sent now is
    logged after every response finished before it.
    """
    marker = f"/v2/?marker={random.getrandbits(64)}"
    async with aiohttp.ClientSession() as session, session.get(upstream.url + marker) as r:
        assert r.status == 200

    async def logged() -> bool:
        return marker in await access_log(upstream)

    await eventually(logged, "Distribution's access log")
    return len(re.findall(rf'"GET {re.escape(path)} HTTP/1\.1" 200 ', await access_log(upstream)))


async def test_ten_concurrent_pulls_of_an_uncached_layer_are_one_upstream_get(
    make_cache: CacheFactory, upstream: Distribution
) -> None:
    layer = await asyncio.to_thread(random.Random(50).randbytes, 50 * MiB)
    digest = sha256(layer)
    await upstream.push_image("team/big", "v1", [layer])
    client = await make_cache({"name": "dist", "url": upstream.url, "prefix": "dist/"})
    r = await client.get("/v2/dist/team/big/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert r.status == 200, await r.text()
    assert await upstream_gets(upstream, f"/v2/team/big/blobs/{digest}") == 0

    async def pull() -> str:
        # One session each: ten connections, as ten nodes would open.
        async with aiohttp.ClientSession() as session:
            url = client.make_url(f"/v2/dist/team/big/blobs/{digest}")
            async with session.get(url) as response:
                assert response.status == 200, await response.text()
                return sha256(await response.read())

    assert await asyncio.gather(*(pull() for _ in range(10))) == [digest] * 10
    assert await upstream_gets(upstream, f"/v2/team/big/blobs/{digest}") == 1


async def _pull(client: Client, path: str) -> tuple[int, bytes] | BaseException:
    """A GET read to the end: its status and body, or the error that broke it off."""
    try:
        async with aiohttp.ClientSession() as session, session.get(client.make_url(path)) as r:
            return r.status, await r.read()
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as e:
        return e


async def test_upstream_killed_mid_blob_caches_nothing_partial(
    make_cache: CacheFactory, upstream: Distribution
) -> None:
    layer = await asyncio.to_thread(random.Random(64).randbytes, 64 * MiB)
    digest = sha256(layer)
    await upstream.push_image("team/big", "v1", [layer])
    # Forward 8 MiB of any answer, then hold: Distribution is stuck writing the blob.
    relay = Passthrough(upstream.host, hold_after=8 * MiB)
    await relay.start()
    try:
        client = await make_cache(
            {"name": "dist", "url": relay.url, "prefix": "dist/", "read_timeout": "10s"}
        )
        path = f"/v2/dist/team/big/blobs/{digest}"
        pulling = asyncio.create_task(_pull(client, path))
        await asyncio.wait_for(relay.holding.wait(), DEADLINE)
        await upstream.stop()  # SIGKILL, mid-blob
        relay.release.set()
        outcome = await asyncio.wait_for(pulling, DEADLINE)
        # The client sees an error: a broken connection (the status line was out) or
        # UNAVAILABLE, never a 200 with the bytes cut short.
        if not isinstance(outcome, BaseException):
            status, body = outcome
            assert status == 503, (status, len(body))

        core = client.app[REGISTRY]
        store = core.store
        root = client.app[SETTINGS].blob_path  # the filesystem store's tree

        async def staged_bytes_dropped() -> bool:
            uploads = root / "uploads"
            return not await asyncio.to_thread(lambda: uploads.exists() and any(uploads.iterdir()))

        await eventually(staged_bytes_dropped, "the staged download to be dropped")
        assert await core.meta.blob_size("dist/team/big", digest) is None
        with pytest.raises(BlobNotFound):
            await store.stat(Digest.parse(digest))

        # The upstream comes back: the next pull fetches the whole blob afresh.
        relay.hold_after = None
        await upstream.start()
        outcome = await _pull(client, path)
        assert not isinstance(outcome, BaseException), outcome
        status, body = outcome
        assert status == 200
        assert sha256(body) == digest

        # The client had the last byte once the digest checked out; the blob is stored
        # and linked right after.
        async def cached() -> bool:
            return await core.meta.blob_size("dist/team/big", digest) == len(layer)

        await eventually(cached, "the fetched blob to be stored")
        assert await store.stat(Digest.parse(digest)) == len(layer)
        blob_file = root / "blobs" / "sha256" / digest[7:9] / digest[7:]
        assert await asyncio.to_thread(blob_file.read_bytes) == layer
    finally:
        await relay.close()
