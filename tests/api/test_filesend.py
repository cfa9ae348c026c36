"""Blob bodies sent by the sender threads (``dockyard.api.filesend``): whole, in ranges,
more transfers at once than there are threads, and clients that hang up half-way."""

from __future__ import annotations

import asyncio
import io
import os

import aiohttp

from dockyard.api import filesend
from tests.helpers import Client, sha256

REPO = "send/demo"
SIZE = 3 << 20  # several read blocks and many write pieces


async def push_blob(registry: Client, repo: str, data: bytes) -> str:
    digest = sha256(data)
    r = await registry.post(f"/v2/{repo}/blobs/uploads/?digest={digest}", data=io.BytesIO(data))
    assert r.status == 201, await r.text()
    return digest


async def _get(registry: Client, digest: str, headers: dict[str, str] | None = None) -> bytes:
    async with registry.session.get(
        registry.make_url(f"/v2/{REPO}/blobs/{digest}"), headers=headers
    ) as r:
        assert r.status in (200, 206), await r.text()
        return await r.read()


async def test_more_transfers_than_threads_all_get_every_byte(registry: Client) -> None:
    data = os.urandom(SIZE)
    digest = await push_blob(registry, REPO, data)
    bodies = await asyncio.gather(*[_get(registry, digest) for _ in range(filesend.SENDERS * 3)])
    assert all(sha256(body) == digest for body in bodies)
    assert filesend._busy == 0


async def test_ranges_are_sent_exactly(registry: Client) -> None:
    data = os.urandom(SIZE)
    digest = await push_blob(registry, REPO, data)
    for start, stop in [(0, 1), (1, SIZE), ((256 << 10) - 5, (256 << 10) + 5), (SIZE - 7, SIZE)]:
        body = await _get(registry, digest, {"Range": f"bytes={start}-{stop - 1}"})
        assert body == data[start:stop]


async def test_a_client_hanging_up_frees_its_thread(registry: Client) -> None:
    data = os.urandom(SIZE * 4)
    digest = await push_blob(registry, REPO, data)
    for _ in range(filesend.SENDERS + 1):
        session = aiohttp.ClientSession()
        async with session.get(registry.make_url(f"/v2/{REPO}/blobs/{digest}")) as r:
            assert r.status == 200
            await r.content.readexactly(1024)
        await session.close()  # the rest is never read
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while filesend._busy:
        assert loop.time() < deadline, "a sender thread stayed busy"
        await asyncio.sleep(0.05)
    assert sha256(await _get(registry, digest)) == digest  # the server still serves
