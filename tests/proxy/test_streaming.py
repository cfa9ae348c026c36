"""Blob downloads: streamed while stored, fetched once, never half-cached (devpi's
``test_streaming.py``, with the fake upstream holding a blob back half-way)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import time
from pathlib import Path

import aiohttp
import pytest

from dockyard.api import REGISTRY
from dockyard.app import SETTINGS
from dockyard.oci import Digest
from dockyard.proxy import CACHE
from dockyard.storage import BlobNotFound
from tests.helpers import Client, assert_error, eventually, sha256
from tests.proxy.conftest import CacheFactory
from tests.proxy.fake_upstream import FakeUpstream

LAYER = random.Random(5).randbytes(3 << 20)
DEADLINE = 30.0


async def test_client_gets_the_first_bytes_before_the_upstream_finishes(
    cache: Client, fake: FakeUpstream
) -> None:
    fake.put_image("team/app", "v1", [LAYER])
    fake.gate = asyncio.Event()
    r = await cache.get(f"/v2/cache/team/app/blobs/{sha256(LAYER)}")
    assert r.status == 200
    assert r.headers["Content-Length"] == str(len(LAYER))
    first = await asyncio.wait_for(r.content.readexactly(1024), DEADLINE)
    # The upstream is still holding back its second half.
    assert fake.half_sent.is_set()
    assert not fake.gate.is_set()
    fake.gate.set()
    rest = await r.read()
    body = first + rest
    assert body == LAYER
    assert "sha256:" + hashlib.sha256(body).hexdigest() == sha256(LAYER)
    # Stored as well: the next pull is local and the upstream is not asked again.
    again = await cache.get(f"/v2/cache/team/app/blobs/{sha256(LAYER)}")
    assert await again.read() == LAYER
    assert fake.requests[f"GET blob {sha256(LAYER)}"] == 1


async def test_concurrent_pulls_of_one_blob_cause_one_upstream_get(
    cache: Client, fake: FakeUpstream
) -> None:
    fake.put_image("team/app", "v1", [LAYER])
    fake.gate = asyncio.Event()
    url = f"/v2/cache/team/app/blobs/{sha256(LAYER)}"

    async def pull() -> bytes:
        async with cache.session.get(cache.make_url(url)) as r:
            assert r.status == 200
            return await r.read()

    pulls = [asyncio.ensure_future(pull()) for _ in range(10)]
    await asyncio.wait_for(fake.half_sent.wait(), DEADLINE)
    fake.gate.set()
    bodies = await asyncio.gather(*pulls)
    assert all(body == LAYER for body in bodies)
    assert fake.requests[f"GET blob {sha256(LAYER)}"] == 1


async def test_range_of_an_uncached_blob(cache: Client, fake: FakeUpstream) -> None:
    fake.put_image("team/app", "v1", [LAYER])
    r = await cache.get(
        f"/v2/cache/team/app/blobs/{sha256(LAYER)}", headers={"Range": "bytes=1000-1999"}
    )
    assert r.status == 206
    assert await r.read() == LAYER[1000:2000]


async def test_broken_download_leaves_no_partial_blob(cache: Client, fake: FakeUpstream) -> None:
    fake.put_image("team/app", "v1", [LAYER])
    fake.break_after = len(LAYER) // 2
    fake.gate = asyncio.Event()  # half is sent, then the upstream waits, then breaks off
    url = f"/v2/cache/team/app/blobs/{sha256(LAYER)}"
    r = await cache.get(url)
    assert r.status == 200  # the status line went out with the first bytes
    await asyncio.wait_for(r.content.readexactly(1024), DEADLINE)
    fake.gate.set()
    with pytest.raises(aiohttp.ClientPayloadError):
        await r.read()  # ... and the client sees the blob is incomplete
    core = cache.app[REGISTRY]
    digest = Digest.parse(sha256(LAYER))
    fetcher = cache.app[CACHE].fetcher
    deadline = asyncio.get_running_loop().time() + DEADLINE
    while fetcher.size_in_flight(digest) is not None:  # the download task winds up
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    # Nothing is recorded, and the store holds no such blob.
    assert await core.meta.blob_size("cache/team/app", str(digest)) is None
    with pytest.raises(BlobNotFound):
        await core.store.stat(digest)
    # The upstream recovers: the next pull fetches again and gets the whole blob.
    fake.break_after = None
    r = await cache.get(url)
    assert await r.read() == LAYER
    assert fake.requests[f"GET blob {digest}"] == 2

    async def stored() -> bool:  # moved into the store once the client had it all
        try:
            return await core.store.stat(digest) == len(LAYER)
        except BlobNotFound:
            return False

    await eventually(stored, "the fetched blob to be stored")


async def test_download_failing_before_any_byte_is_an_error_not_a_blob(
    cache: Client, fake: FakeUpstream
) -> None:
    fake.put_image("team/app", "v1", [LAYER])
    fake.break_after = 0
    r = await cache.get(f"/v2/cache/team/app/blobs/{sha256(LAYER)}")
    error = await assert_error(r, 503, "UNAVAILABLE")
    assert "fake" in error["message"]


async def test_spool_files_left_by_a_dead_process_are_removed_at_start(
    make_cache: CacheFactory, tmp_path: Path
) -> None:
    uploads = tmp_path / "dockyard-1" / "blobs" / "uploads"
    await asyncio.to_thread(uploads.mkdir, parents=True)
    old, fresh = uploads / "dockyard-spool-old", uploads / "dockyard-spool-fresh"
    for path in (old, fresh):
        await asyncio.to_thread(path.write_bytes, b"partial")
    two_hours_ago = time.time() - 7200
    await asyncio.to_thread(os.utime, old, (two_hours_ago, two_hours_ago))
    client = await make_cache({"name": "fake", "url": "http://127.0.0.1:9", "prefix": "cache/"})
    assert client.app[SETTINGS].blob_path / "uploads" == uploads
    assert not await asyncio.to_thread(old.exists)
    assert await asyncio.to_thread(fresh.exists)  # maybe another worker's download
