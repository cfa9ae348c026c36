"""``/v2/<name>/blobs/<digest>``: GET, HEAD and DELETE (spec end-2, end-10).

A blob is content-addressed and stored once, but served only through repositories that
uploaded or mounted it. Every response is checked for the bytes and the digest, not only
for a status.
"""

from __future__ import annotations

import io
import os

import pytest

from tests.helpers import (
    Client,
    assert_error,
    blob_status,
    push_blob,
    sha256,
    sha512,
)

REPO = "blobs/demo"
DATA = bytes(range(256)) * 8  # 2048 bytes, every byte value
MISSING = sha256(b"never pushed")
EMPTY_SHA256 = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


async def test_get_returns_exact_bytes_and_headers(registry: Client) -> None:
    digest = await push_blob(registry, REPO, DATA)
    r = await registry.get(f"/v2/{REPO}/blobs/{digest}")
    assert r.status == 200
    body = await r.read()
    assert body == DATA
    assert sha256(body) == digest
    assert r.headers["Docker-Content-Digest"] == digest
    assert r.headers["Content-Length"] == str(len(DATA))
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert r.headers["ETag"] == f'"{digest}"'
    assert r.headers["Accept-Ranges"] == "bytes"


async def test_head_has_length_and_digest_but_no_body(registry: Client) -> None:
    digest = await push_blob(registry, REPO, DATA)
    r = await registry.head(f"/v2/{REPO}/blobs/{digest}")
    assert r.status == 200
    assert r.headers["Content-Length"] == str(len(DATA))
    assert r.headers["Docker-Content-Digest"] == digest
    assert await r.read() == b""


async def test_head_missing_blob_is_404_without_body(registry: Client) -> None:
    await push_blob(registry, REPO, DATA)
    r = await registry.head(f"/v2/{REPO}/blobs/{MISSING}")
    assert r.status == 404
    assert await r.read() == b""


async def test_get_missing_blob_is_blob_unknown(registry: Client) -> None:
    await push_blob(registry, REPO, DATA)
    r = await registry.get(f"/v2/{REPO}/blobs/{MISSING}")
    error = await assert_error(r, 404, "BLOB_UNKNOWN")
    assert error["detail"] == {"digest": MISSING}


async def test_get_blob_of_unknown_repository_is_blob_unknown(registry: Client) -> None:
    r = await registry.get(f"/v2/nowhere/at-all/blobs/{MISSING}")
    await assert_error(r, 404, "BLOB_UNKNOWN")


async def test_blob_is_not_served_through_a_repository_that_never_had_it(
    registry: Client,
) -> None:
    digest = await push_blob(registry, "tenant-a/app", DATA)
    # tenant-b exists (it holds another blob) but never uploaded or mounted DATA.
    await push_blob(registry, "tenant-b/app", b"something else")
    for repo in ("tenant-b/app", "tenant-c/never-created"):
        r = await registry.get(f"/v2/{repo}/blobs/{digest}")
        await assert_error(r, 404, "BLOB_UNKNOWN")
        assert await blob_status(registry, repo, digest) == 404
    # The owner still serves it.
    r = await registry.get(f"/v2/tenant-a/app/blobs/{digest}")
    assert await r.read() == DATA


async def test_blob_becomes_visible_after_mount(registry: Client) -> None:
    digest = await push_blob(registry, "src/app", DATA)
    assert await blob_status(registry, "dst/app", digest) == 404
    r = await registry.post(f"/v2/dst/app/blobs/uploads/?mount={digest}&from=src/app")
    assert r.status == 201
    r = await registry.get(f"/v2/dst/app/blobs/{digest}")
    assert r.status == 200
    assert await r.read() == DATA


@pytest.mark.parametrize(
    ("header", "start", "stop"),
    [
        ("bytes=500-1499", 500, 1500),
        ("bytes=0-0", 0, 1),
        ("bytes=500-", 500, 2048),
        ("bytes=-500", 1548, 2048),
        ("bytes=2000-5000", 2000, 2048),  # end past the blob: clipped
        ("bytes=2047-2047", 2047, 2048),
    ],
)
async def test_range_request_returns_206_with_the_slice(
    registry: Client, header: str, start: int, stop: int
) -> None:
    digest = await push_blob(registry, REPO, DATA)
    r = await registry.get(f"/v2/{REPO}/blobs/{digest}", headers={"Range": header})
    assert r.status == 206
    body = await r.read()
    assert body == DATA[start:stop]
    assert r.headers["Content-Length"] == str(stop - start)
    assert r.headers["Content-Range"] == f"bytes {start}-{stop - 1}/{len(DATA)}"
    assert r.headers["Docker-Content-Digest"] == digest


@pytest.mark.parametrize("header", ["bytes=5000-10000", "bytes=2048-", "bytes=500-0"])
async def test_unsatisfiable_range_is_416(registry: Client, header: str) -> None:
    digest = await push_blob(registry, REPO, DATA)
    r = await registry.get(f"/v2/{REPO}/blobs/{digest}", headers={"Range": header})
    await assert_error(r, 416, "RANGE_INVALID")
    assert r.headers["Content-Range"] == f"bytes */{len(DATA)}"


@pytest.mark.parametrize("header", ["bytes=0-9,20-29", "bytes=0-9, 100-", "bytes=-5,0-1"])
async def test_several_ranges_are_ignored_and_the_whole_blob_sent(
    registry: Client, header: str
) -> None:
    # RFC 9110 lets a server ignore Range; one whole body beats a multipart answer
    # that registry clients do not parse.
    digest = await push_blob(registry, REPO, DATA)
    r = await registry.get(f"/v2/{REPO}/blobs/{digest}", headers={"Range": header})
    assert r.status == 200
    assert await r.read() == DATA
    assert "Content-Range" not in r.headers


async def test_range_on_a_multi_block_blob(registry: Client) -> None:
    data = os.urandom(5 << 20)  # larger than the store's 4 MiB write block
    digest = sha256(data)
    r = await registry.post(f"/v2/{REPO}/blobs/uploads/?digest={digest}", data=io.BytesIO(data))
    assert r.status == 201, await r.text()
    start, stop = (4 << 20) - 10, (4 << 20) + 10  # straddles the block boundary
    r = await registry.get(
        f"/v2/{REPO}/blobs/{digest}", headers={"Range": f"bytes={start}-{stop - 1}"}
    )
    assert r.status == 206
    assert await r.read() == data[start:stop]
    r = await registry.get(f"/v2/{REPO}/blobs/{digest}")
    body = await r.read()
    assert len(body) == len(data)
    assert sha256(body) == digest


async def test_matching_if_none_match_is_304(registry: Client) -> None:
    digest = await push_blob(registry, REPO, DATA)
    r = await registry.get(f"/v2/{REPO}/blobs/{digest}", headers={"If-None-Match": f'"{digest}"'})
    assert r.status == 304
    assert await r.read() == b""
    assert r.headers["ETag"] == f'"{digest}"'
    other = sha256(b"other")
    r = await registry.get(f"/v2/{REPO}/blobs/{digest}", headers={"If-None-Match": f'"{other}"'})
    assert r.status == 200
    assert await r.read() == DATA


async def test_empty_blob(registry: Client) -> None:
    digest = await push_blob(registry, REPO, b"")
    assert digest == EMPTY_SHA256
    r = await registry.get(f"/v2/{REPO}/blobs/{digest}")
    assert r.status == 200
    assert r.headers["Content-Length"] == "0"
    assert r.headers["Docker-Content-Digest"] == digest
    assert await r.read() == b""
    r = await registry.head(f"/v2/{REPO}/blobs/{digest}")
    assert r.status == 200
    assert r.headers["Content-Length"] == "0"


async def test_sha512_blob_is_served_under_its_sha512_digest(registry: Client) -> None:
    digest = sha512(DATA)
    r = await registry.post(f"/v2/{REPO}/blobs/uploads/?digest={digest}", data=DATA)
    assert r.status == 201, await r.text()
    assert r.headers["Docker-Content-Digest"] == digest
    r = await registry.get(f"/v2/{REPO}/blobs/{digest}")
    assert r.status == 200
    assert r.headers["Docker-Content-Digest"] == digest
    assert await r.read() == DATA
    # Stored under the algorithm it was pushed with, not also under sha256.
    assert await blob_status(registry, REPO, sha256(DATA)) == 404


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:totallywrong",
        "sha256:" + "A" * 64,  # uppercase hex is not canonical
        "sha256:" + "a" * 63,
        "md5:" + "a" * 32,  # not an algorithm we can verify
        "nodigest",
    ],
)
async def test_malformed_digest_is_digest_invalid(registry: Client, digest: str) -> None:
    await push_blob(registry, REPO, DATA)
    r = await registry.get(f"/v2/{REPO}/blobs/{digest}")
    await assert_error(r, 400, "DIGEST_INVALID")
    r = await registry.delete(f"/v2/{REPO}/blobs/{digest}")
    await assert_error(r, 400, "DIGEST_INVALID")


async def test_delete_blob_then_it_is_gone(registry: Client) -> None:
    digest = await push_blob(registry, REPO, DATA)
    r = await registry.delete(f"/v2/{REPO}/blobs/{digest}")
    assert r.status == 202
    assert await r.read() == b""
    r = await registry.get(f"/v2/{REPO}/blobs/{digest}")
    await assert_error(r, 404, "BLOB_UNKNOWN")
    assert await blob_status(registry, REPO, digest) == 404
    r = await registry.delete(f"/v2/{REPO}/blobs/{digest}")
    await assert_error(r, 404, "BLOB_UNKNOWN")


async def test_delete_in_one_repository_leaves_the_others(registry: Client) -> None:
    digest = await push_blob(registry, "shared/one", DATA)
    assert await push_blob(registry, "shared/two", DATA) == digest
    r = await registry.delete(f"/v2/shared/one/blobs/{digest}")
    assert r.status == 202
    assert await blob_status(registry, "shared/one", digest) == 404
    r = await registry.get(f"/v2/shared/two/blobs/{digest}")
    assert r.status == 200
    assert await r.read() == DATA


async def test_delete_of_unknown_blob_is_blob_unknown(registry: Client) -> None:
    await push_blob(registry, REPO, DATA)
    r = await registry.delete(f"/v2/{REPO}/blobs/{MISSING}")
    await assert_error(r, 404, "BLOB_UNKNOWN")
    r = await registry.delete(f"/v2/nowhere/blobs/{MISSING}")
    await assert_error(r, 404, "BLOB_UNKNOWN")


async def test_blob_can_be_pushed_again_after_delete(registry: Client) -> None:
    digest = await push_blob(registry, REPO, DATA)
    r = await registry.delete(f"/v2/{REPO}/blobs/{digest}")
    assert r.status == 202
    assert await push_blob(registry, REPO, DATA) == digest
    r = await registry.get(f"/v2/{REPO}/blobs/{digest}")
    assert await r.read() == DATA
