"""A corrupt blob found while it is streamed from S3 is never passed off as valid: the
transfer breaks before its last chunk, and the blob is quarantined as fsck would."""

from __future__ import annotations

import io
import logging
import random

import aiohttp
import pytest

from dockyard.config import Settings
from dockyard.gc import check_integrity
from tests.gc.conftest import core
from tests.gc.raw import RawBlobs
from tests.helpers import (
    OCI_MANIFEST,
    Client,
    assert_error,
    image_manifest,
    push_blob,
    sha256,
)

# Several of the S3 store's 1 MiB read chunks: the status line and the first chunks are
# out before the last one shows the digest is wrong.
LAYER = random.Random(7).randbytes(3 * (1 << 20) + 12345)
SMALL = b"one chunk of layer bytes " * 40

pytestmark = pytest.mark.parametrize("stack", ["postgres-s3"], indirect=True)


async def _push_blob(registry: Client, repo: str, data: bytes) -> None:
    # A file-like body: aiohttp warns about raw bytes over a megabyte.
    r = await registry.post(
        f"/v2/{repo}/blobs/uploads/?digest={sha256(data)}", data=io.BytesIO(data)
    )
    assert r.status == 201, await r.text()


async def push_image(registry: Client, repo: str, tag: str, *, layers: list[bytes]) -> str:
    """Push an image of ``layers``; its manifest digest."""
    config = b'{"architecture": "amd64", "os": "linux"}'
    await push_blob(registry, repo, config)
    for layer in layers:
        await _push_blob(registry, repo, layer)
    manifest = image_manifest(config, layers)
    r = await registry.put(
        f"/v2/{repo}/manifests/{tag}", data=manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert r.status == 201, await r.text()
    return sha256(manifest)


async def _read_into(response: aiohttp.ClientResponse, received: bytearray) -> None:
    async for chunk in response.content.iter_any():
        received += chunk


def _flipped(data: bytes) -> bytes:
    """``data`` with its last byte changed: same size, wrong digest."""
    return data[:-1] + bytes([data[-1] ^ 0xFF])


async def test_sound_blob_streams_whole(registry: Client) -> None:
    await push_image(registry, "verify/ok", "v1", layers=[LAYER])
    r = await registry.get(f"/v2/verify/ok/blobs/{sha256(LAYER)}")
    assert r.status == 200
    assert await r.read() == LAYER
    assert await core(registry).lifecycle.quarantined() == []


async def test_corrupt_blob_breaks_the_transfer_and_is_quarantined(
    registry: Client, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    manifest = await push_image(registry, "verify/app", "v1", layers=[LAYER])
    await RawBlobs(settings).put(sha256(LAYER), _flipped(LAYER))
    r = await registry.get(f"/v2/verify/app/blobs/{sha256(LAYER)}")
    assert r.status == 200  # sent before the bytes could be checked...
    assert r.content_length == len(LAYER)
    received = bytearray()
    with (
        caplog.at_level(logging.ERROR, "dockyard.integrity"),
        pytest.raises(aiohttp.ClientPayloadError),  # ...but never completed
    ):
        await _read_into(r, received)
    assert len(received) < len(LAYER)
    assert any(sha256(LAYER) in m and "quarantined" in m for m in caplog.messages)
    [quarantined] = await core(registry).lifecycle.quarantined()
    assert quarantined.digest == sha256(LAYER)
    assert quarantined.problem == f"content hashes to {sha256(_flipped(LAYER))}"
    # Quarantined: never served again, and fsck reports what it breaks.
    await assert_error(
        await registry.get(f"/v2/verify/app/blobs/{sha256(LAYER)}"), 404, "BLOB_UNKNOWN"
    )
    report = await check_integrity(core(registry))
    [problem] = report.problems
    assert (problem.kind, problem.digest) == ("corrupt", sha256(LAYER))
    assert [(b.repository, b.manifest, b.tags) for b in problem.breaks] == [
        ("verify/app", manifest, ("v1",))
    ]
    # Uploading the good bytes again repairs it.
    await _push_blob(registry, "verify/app", LAYER)
    r = await registry.get(f"/v2/verify/app/blobs/{sha256(LAYER)}")
    assert r.status == 200
    assert await r.read() == LAYER


async def test_corrupt_one_chunk_blob_is_refused_before_the_status_line(
    registry: Client, settings: Settings
) -> None:
    await push_image(registry, "verify/small", "v1", layers=[SMALL])
    await RawBlobs(settings).put(sha256(SMALL), _flipped(SMALL))
    r = await registry.get(f"/v2/verify/small/blobs/{sha256(SMALL)}")
    await assert_error(r, 404, "BLOB_UNKNOWN")
    assert [q.digest for q in await core(registry).lifecycle.quarantined()] == [sha256(SMALL)]


async def test_truncated_blob_is_caught_too(registry: Client, settings: Settings) -> None:
    await push_image(registry, "verify/short", "v1", layers=[LAYER])
    await RawBlobs(settings).put(sha256(LAYER), LAYER[: 2 << 20])
    r = await registry.get(f"/v2/verify/short/blobs/{sha256(LAYER)}")
    with pytest.raises(aiohttp.ClientPayloadError):
        await r.read()
    [quarantined] = await core(registry).lifecycle.quarantined()
    assert quarantined.digest == sha256(LAYER)


async def test_ranges_are_served_unverified(registry: Client, settings: Settings) -> None:
    await push_image(registry, "verify/range", "v1", layers=[LAYER])
    await RawBlobs(settings).put(sha256(LAYER), _flipped(LAYER))
    r = await registry.get(
        f"/v2/verify/range/blobs/{sha256(LAYER)}", headers={"Range": "bytes=0-99"}
    )
    assert r.status == 206
    assert await r.read() == LAYER[:100]  # a part cannot be checked against the whole
    assert await core(registry).lifecycle.quarantined() == []
