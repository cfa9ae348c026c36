"""``/v2/<name>/blobs/uploads/``: monolithic, chunked and streamed uploads, status,
cancel, mounts (spec end-4a, end-4b, end-5, end-6, end-11, end-13, end-14).

Every upload ends with the blob fetched back and compared byte for byte; every failure
also checks that no blob appeared.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dockyard.api import REGISTRY
from dockyard.metadata import MetadataStore
from tests.helpers import (
    Client,
    assert_error,
    blob_status,
    open_uploads,
    push_blob,
    sha256,
    sha512,
    start_upload,
    with_query,
)

REPO = "uploads/demo"
DATA = os.urandom(3000)


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    """A request body without a length: aiohttp sends it with chunked transfer encoding."""
    for part in parts:
        yield part


async def _fetch(client: Client, repo: str, digest: str) -> bytes:
    r = await client.get(f"/v2/{repo}/blobs/{digest}")
    assert r.status == 200, await r.text()
    assert r.headers["Docker-Content-Digest"] == digest
    return await r.read()


async def _send_cut_off(registry: Client, request_line: str, headers: str, body: bytes) -> None:
    """Send ``request_line`` announcing ``body`` whole, then hang up after 500 bytes of it.

    The server drops the request and closes the connection; no answer is owed.
    """
    reader, writer = await asyncio.open_connection(registry.host, registry.port)
    writer.write(
        (
            f"{request_line} HTTP/1.1\r\nHost: {registry.host}\r\n"
            f"Content-Type: application/octet-stream\r\n{headers}"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body[:500]
    )
    await writer.drain()
    writer.write_eof()
    assert await reader.read() == b""
    writer.close()
    await writer.wait_closed()


def _upload_id(location: str) -> str:
    return location.rsplit("/", 1)[-1].split("?", 1)[0]


# -- monolithic ---------------------------------------------------------------------------


async def test_monolithic_post_with_digest_creates_the_blob(registry: Client) -> None:
    digest = sha256(DATA)
    r = await registry.post(
        f"/v2/{REPO}/blobs/uploads/?digest={digest}",
        data=DATA,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status == 201, await r.text()
    assert r.headers["Location"] == f"/v2/{REPO}/blobs/{digest}"
    assert r.headers["Docker-Content-Digest"] == digest
    assert r.headers["Content-Length"] == "0"
    assert await _fetch(registry, REPO, digest) == DATA
    assert await open_uploads(registry) == 0


async def test_monolithic_post_with_a_streamed_body(registry: Client) -> None:
    digest = sha256(DATA)
    r = await registry.post(
        f"/v2/{REPO}/blobs/uploads/?digest={digest}", data=_chunks(DATA[:1000], DATA[1000:])
    )
    assert r.status == 201, await r.text()
    assert await _fetch(registry, REPO, digest) == DATA


async def test_post_opens_a_session(registry: Client) -> None:
    r = await registry.post(f"/v2/{REPO}/blobs/uploads/")
    assert r.status == 202
    location = r.headers["Location"]
    assert location.startswith(f"/v2/{REPO}/blobs/uploads/")
    assert r.headers["Docker-Upload-UUID"] == _upload_id(location)
    assert r.headers["Range"] == "0-0"
    assert r.headers["Content-Length"] == "0"
    assert await r.read() == b""
    # Without a trailing slash too, and with an explicit empty body.
    r = await registry.post(f"/v2/{REPO}/blobs/uploads", headers={"Content-Length": "0"})
    assert r.status == 202
    assert r.headers["Location"] != location


async def test_post_then_put_with_the_whole_blob(registry: Client) -> None:
    location = await start_upload(registry, REPO)
    digest = sha256(DATA)
    r = await registry.put(
        with_query(location, digest=digest),
        data=DATA,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status == 201, await r.text()
    assert r.headers["Location"] == f"/v2/{REPO}/blobs/{digest}"
    assert r.headers["Docker-Content-Digest"] == digest
    assert await _fetch(registry, REPO, digest) == DATA
    # The session is closed once the blob exists.
    r = await registry.get(location)
    await assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN")


async def test_post_then_put_with_a_streamed_body(registry: Client) -> None:
    location = await start_upload(registry, REPO)
    digest = sha256(DATA)
    r = await registry.put(with_query(location, digest=digest), data=_chunks(DATA))
    assert r.status == 201, await r.text()
    assert await _fetch(registry, REPO, digest) == DATA


async def test_empty_blob_by_post_put_and_by_post(registry: Client) -> None:
    digest = sha256(b"")
    location = await start_upload(registry, REPO)
    r = await registry.put(with_query(location, digest=digest), headers={"Content-Length": "0"})
    assert r.status == 201, await r.text()
    assert await _fetch(registry, REPO, digest) == b""
    r = await registry.post(f"/v2/other/blobs/uploads/?digest={digest}", data=b"")
    assert r.status == 201, await r.text()
    assert await _fetch(registry, "other", digest) == b""


async def test_put_without_digest_leaves_the_session_open(registry: Client) -> None:
    location = await start_upload(registry, REPO)
    r = await registry.patch(location, data=DATA[:10])
    assert r.status == 202
    r = await registry.put(location, headers={"Content-Length": "0"})
    await assert_error(r, 400, "DIGEST_INVALID")
    r = await registry.get(location)
    assert r.status == 204
    assert r.headers["Range"] == "0-9"
    r = await registry.put(with_query(location, digest=sha256(DATA[:10])))
    assert r.status == 201


# -- chunked ------------------------------------------------------------------------------


async def test_chunked_upload_with_content_range(registry: Client) -> None:
    location = await start_upload(registry, REPO)
    offset = 0
    for size in (1000, 1000, 1000):
        chunk = DATA[offset : offset + size]
        r = await registry.patch(
            location,
            data=chunk,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{offset}-{offset + size - 1}",
            },
        )
        assert r.status == 202, await r.text()
        offset += size
        assert r.headers["Range"] == f"0-{offset - 1}"
        assert r.headers["Docker-Upload-UUID"] == _upload_id(location)
        location = r.headers["Location"]
    r = await registry.get(location)
    assert r.status == 204
    assert r.headers["Range"] == f"0-{len(DATA) - 1}"
    assert r.headers["Location"] == location
    digest = sha256(DATA)
    r = await registry.put(with_query(location, digest=digest), headers={"Content-Length": "0"})
    assert r.status == 201, await r.text()
    assert r.headers["Docker-Content-Digest"] == digest
    assert await _fetch(registry, REPO, digest) == DATA


@pytest.mark.parametrize("with_range", [True, False])
async def test_final_chunk_in_the_closing_put(registry: Client, with_range: bool) -> None:
    location = await start_upload(registry, REPO)
    r = await registry.patch(location, data=DATA[:1000], headers={"Content-Range": "0-999"})
    assert r.status == 202
    headers = {"Content-Range": f"1000-{len(DATA) - 1}"} if with_range else {}
    digest = sha256(DATA)
    r = await registry.put(
        with_query(r.headers["Location"], digest=digest), data=DATA[1000:], headers=headers
    )
    assert r.status == 201, await r.text()
    assert await _fetch(registry, REPO, digest) == DATA


async def test_out_of_order_chunk_is_416_with_the_current_range(registry: Client) -> None:
    location = await start_upload(registry, REPO)
    # A first chunk that does not start at 0.
    r = await registry.patch(location, data=DATA[10:20], headers={"Content-Range": "10-19"})
    await assert_error(r, 416, "BLOB_UPLOAD_INVALID")
    assert r.headers["Range"] == "0-0"
    assert r.headers["Location"] == location
    r = await registry.patch(location, data=DATA[:10], headers={"Content-Range": "0-9"})
    assert r.status == 202
    # Retrying the chunk just accepted, and skipping ahead, are both out of order.
    for chunk_range, body in (("0-9", DATA[:10]), ("11-20", DATA[11:21])):
        r = await registry.patch(location, data=body, headers={"Content-Range": chunk_range})
        await assert_error(r, 416, "BLOB_UPLOAD_INVALID")
        assert r.headers["Range"] == "0-9"
    r = await registry.get(location)
    assert r.headers["Range"] == "0-9"
    # The client resumes from the reported range.
    r = await registry.patch(
        location, data=DATA[10:], headers={"Content-Range": f"10-{len(DATA) - 1}"}
    )
    assert r.status == 202
    r = await registry.put(with_query(location, digest=sha256(DATA)))
    assert r.status == 201
    assert await _fetch(registry, REPO, sha256(DATA)) == DATA


async def test_chunk_length_must_match_its_range(registry: Client) -> None:
    location = await start_upload(registry, REPO)
    r = await registry.patch(location, data=DATA[:10], headers={"Content-Range": "0-19"})
    await assert_error(r, 400, "SIZE_INVALID")
    r = await registry.get(location)
    assert r.status == 204
    assert r.headers["Range"] == "0-0"


async def test_streamed_patch_without_content_length(registry: Client) -> None:
    location = await start_upload(registry, REPO)
    r = await registry.patch(
        location,
        data=_chunks(DATA[:700], DATA[700:1500]),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status == 202, await r.text()
    assert r.headers["Range"] == "0-1499"
    # A second streamed PATCH appends.
    r = await registry.patch(r.headers["Location"], data=_chunks(DATA[1500:]))
    assert r.status == 202, await r.text()
    assert r.headers["Range"] == f"0-{len(DATA) - 1}"
    digest = sha256(DATA)
    r = await registry.put(with_query(r.headers["Location"], digest=digest))
    assert r.status == 201, await r.text()
    assert await _fetch(registry, REPO, digest) == DATA


async def test_resume_after_a_broken_off_patch(registry: Client) -> None:
    location = await start_upload(registry, REPO)
    r = await registry.patch(location, data=DATA[:1000], headers={"Content-Range": "0-999"})
    assert r.status == 202
    # The next chunk announces 2000 bytes and the client gives up after 500 of them.
    await _send_cut_off(
        registry, f"PATCH {location}", f"Content-Range: 1000-{len(DATA) - 1}\r\n", DATA[1000:]
    )
    # Whatever arrived of the broken chunk is not counted: the client resumes at 1000.
    r = await registry.get(location)
    assert r.status == 204
    assert r.headers["Range"] == "0-999"
    r = await registry.patch(
        location, data=DATA[1000:], headers={"Content-Range": f"1000-{len(DATA) - 1}"}
    )
    assert r.status == 202, await r.text()
    assert r.headers["Range"] == f"0-{len(DATA) - 1}"
    digest = sha256(DATA)
    r = await registry.put(with_query(location, digest=digest))
    assert r.status == 201, await r.text()
    assert await _fetch(registry, REPO, digest) == DATA


async def test_a_broken_off_closing_put_publishes_nothing(registry: Client) -> None:
    location = await start_upload(registry, REPO)
    r = await registry.patch(location, data=DATA[:1000], headers={"Content-Range": "0-999"})
    assert r.status == 202
    digest = sha256(DATA)
    # The closing PUT announces the last 2000 bytes and the client gives up after 500.
    await _send_cut_off(registry, f"PUT {with_query(location, digest=digest)}", "", DATA[1000:])
    r = await registry.head(f"/v2/{REPO}/blobs/{digest}")
    assert r.status == 404
    # The session is still open at what it held before; the client finishes it.
    r = await registry.get(location)
    assert r.status == 204
    assert r.headers["Range"] == "0-999"
    r = await registry.put(with_query(location, digest=digest), data=DATA[1000:])
    assert r.status == 201, await r.text()
    assert await _fetch(registry, REPO, digest) == DATA


async def test_status_of_a_fresh_session(registry: Client) -> None:
    location = await start_upload(registry, REPO)
    r = await registry.get(location)
    assert r.status == 204
    assert r.headers["Range"] == "0-0"
    assert r.headers["Location"] == location
    assert r.headers["Docker-Upload-UUID"] == _upload_id(location)
    assert await r.read() == b""


# -- cancel, unknown sessions ----------------------------------------------------------


async def test_delete_cancels_the_session(registry: Client) -> None:
    location = await start_upload(registry, REPO)
    r = await registry.patch(location, data=DATA[:100])
    assert r.status == 202
    r = await registry.delete(location)
    assert r.status == 204
    assert await open_uploads(registry) == 0
    r = await registry.get(location)
    await assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN")
    r = await registry.patch(location, data=DATA[100:200])
    await assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN")
    r = await registry.put(with_query(location, digest=sha256(DATA[:100])))
    await assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN")
    assert await blob_status(registry, REPO, sha256(DATA[:100])) == 404
    r = await registry.delete(location)
    await assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN")


@pytest.mark.parametrize("upload_id", ["0" * 32, "not-a-session", "..%2F..%2Fblobs", "a" * 300])
async def test_unknown_session_is_blob_upload_unknown(registry: Client, upload_id: str) -> None:
    await start_upload(registry, REPO)
    location = f"/v2/{REPO}/blobs/uploads/{upload_id}"
    r = await registry.get(location)
    await assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN")
    r = await registry.patch(location, data=b"abc")
    await assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN")
    r = await registry.put(with_query(location, digest=sha256(b"abc")), data=b"abc")
    await assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN")
    r = await registry.delete(location)
    await assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN")
    assert await blob_status(registry, REPO, sha256(b"abc")) == 404


async def test_a_session_belongs_to_its_repository(registry: Client) -> None:
    location = await start_upload(registry, REPO)
    elsewhere = location.replace(f"/v2/{REPO}/", "/v2/uploads/other/")
    r = await registry.get(elsewhere)
    await assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN")
    r = await registry.put(with_query(elsewhere, digest=sha256(b"")))
    await assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN")
    r = await registry.get(location)
    assert r.status == 204


# -- digests --------------------------------------------------------------------------------


async def test_digest_mismatch_on_put_creates_no_blob(registry: Client) -> None:
    location = await start_upload(registry, REPO)
    r = await registry.patch(location, data=DATA)
    assert r.status == 202
    claimed = sha256(b"something else")
    r = await registry.put(with_query(location, digest=claimed))
    error = await assert_error(r, 400, "DIGEST_INVALID")
    assert error["detail"] == {"digest": claimed}
    assert await blob_status(registry, REPO, claimed) == 404
    assert await blob_status(registry, REPO, sha256(DATA)) == 404
    # The failed session is closed.
    r = await registry.get(location)
    await assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN")


async def test_digest_mismatch_on_monolithic_post_creates_no_blob(registry: Client) -> None:
    claimed = sha256(b"something else")
    r = await registry.post(f"/v2/{REPO}/blobs/uploads/?digest={claimed}", data=DATA)
    await assert_error(r, 400, "DIGEST_INVALID")
    assert await blob_status(registry, REPO, claimed) == 404
    assert await blob_status(registry, REPO, sha256(DATA)) == 404
    assert await open_uploads(registry) == 0


@pytest.mark.parametrize("mode", ["post", "put", "chunked"])
async def test_sha512_uploads(registry: Client, mode: str) -> None:
    digest = sha512(DATA)
    if mode == "post":
        r = await registry.post(f"/v2/{REPO}/blobs/uploads/?digest={digest}", data=DATA)
    else:
        location = await start_upload(registry, REPO)
        if mode == "chunked":
            r = await registry.patch(location, data=DATA[:1000], headers={"Content-Range": "0-999"})
            assert r.status == 202
            r = await registry.patch(location, data=_chunks(DATA[1000:]))
            assert r.status == 202
            r = await registry.put(with_query(location, digest=digest))
        else:
            r = await registry.put(with_query(location, digest=digest), data=DATA)
    assert r.status == 201, await r.text()
    assert r.headers["Docker-Content-Digest"] == digest
    assert r.headers["Location"] == f"/v2/{REPO}/blobs/{digest}"
    assert await _fetch(registry, REPO, digest) == DATA


async def test_sha512_mismatch_is_digest_invalid(registry: Client) -> None:
    claimed = sha512(b"something else")
    r = await registry.post(f"/v2/{REPO}/blobs/uploads/?digest={claimed}", data=DATA)
    await assert_error(r, 400, "DIGEST_INVALID")
    assert await blob_status(registry, REPO, claimed) == 404
    assert await blob_status(registry, REPO, sha512(DATA)) == 404


async def test_the_same_blob_uploaded_twice_is_one_blob(registry: Client) -> None:
    first = await push_blob(registry, REPO, DATA)
    location = await start_upload(registry, REPO)
    r = await registry.put(with_query(location, digest=first), data=DATA)
    assert r.status == 201
    assert await _fetch(registry, REPO, first) == DATA


async def test_a_first_chunk_to_an_upload_closed_meanwhile_leaves_nothing_staged(
    registry: Client, stack: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another request cancels the session while this one writes its first chunk: the
    chunk's bytes (which may have staged the upload afresh) are dropped, and the
    client is told the session is gone."""
    location = await start_upload(registry, REPO)
    meta = registry.app[REGISTRY].meta
    advance = type(meta).advance_upload

    async def cancelled_first(self: MetadataStore, uid: str, expected: int, size: int) -> bool:
        await self.delete_upload(uid)  # the other request's DELETE, just before this CAS
        return await advance(self, uid, expected, size)

    monkeypatch.setattr(type(meta), "advance_upload", cancelled_first)
    r = await registry.patch(location, data=DATA, headers={"Content-Range": f"0-{len(DATA) - 1}"})
    await assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN")
    if stack == "embedded":
        assert sorted(p.name for p in (data_dir / "blobs" / "uploads").iterdir()) == []
    assert await open_uploads(registry) == 0


async def test_concurrent_uploads_of_the_same_blob(registry: Client) -> None:
    digest = sha256(DATA)

    async def upload(repo: str) -> int:
        location = await start_upload(registry, repo)
        r = await registry.patch(location, data=_chunks(DATA[:1000], DATA[1000:]))
        assert r.status == 202
        r = await registry.put(with_query(location, digest=digest))
        return r.status

    statuses = await asyncio.gather(*(upload(f"race/r{i}") for i in range(5)))
    assert statuses == [201] * 5
    for i in range(5):
        assert await _fetch(registry, f"race/r{i}", digest) == DATA


# -- mounts ------------------------------------------------------------------------------


async def test_mount_from_a_repository_that_has_the_blob(registry: Client) -> None:
    digest = await push_blob(registry, "mount/src", DATA)
    r = await registry.post(
        f"/v2/mount/dst/blobs/uploads/?mount={digest}&from=mount/src",
        headers={"Content-Length": "0"},
    )
    assert r.status == 201, await r.text()
    assert r.headers["Location"] == f"/v2/mount/dst/blobs/{digest}"
    assert r.headers["Docker-Content-Digest"] == digest
    assert await _fetch(registry, "mount/dst", digest) == DATA
    assert await open_uploads(registry) == 0


async def test_mount_from_a_repository_without_the_blob_falls_back_to_an_upload(
    registry: Client,
) -> None:
    digest = await push_blob(registry, "mount/src", DATA)
    await push_blob(registry, "mount/empty", b"unrelated")
    location = ""
    for source in ("mount/empty", "mount/does-not-exist"):
        r = await registry.post(f"/v2/mount/dst/blobs/uploads/?mount={digest}&from={source}")
        assert r.status == 202, await r.text()
        location = r.headers["Location"]
        assert location.startswith("/v2/mount/dst/blobs/uploads/")
        assert r.headers["Range"] == "0-0"
        assert await blob_status(registry, "mount/dst", digest) == 404
    # The fallback session is a real one: the client uploads through it.
    r = await registry.put(with_query(location, digest=digest), data=DATA)
    assert r.status == 201
    assert await _fetch(registry, "mount/dst", digest) == DATA


async def test_mount_without_from_finds_the_blob_anywhere(registry: Client) -> None:
    digest = await push_blob(registry, "mount/src", DATA)
    r = await registry.post(f"/v2/mount/auto/blobs/uploads/?mount={digest}")
    assert r.status == 201, await r.text()
    assert r.headers["Location"] == f"/v2/mount/auto/blobs/{digest}"
    assert await _fetch(registry, "mount/auto", digest) == DATA


async def test_mount_of_an_unknown_blob_opens_a_session(registry: Client) -> None:
    missing = sha256(b"hello world")
    r = await registry.post(f"/v2/mount/dst/blobs/uploads/?mount={missing}")
    assert r.status == 202
    assert r.headers["Location"].startswith("/v2/mount/dst/blobs/uploads/")
    assert await blob_status(registry, "mount/dst", missing) == 404


async def test_mounted_blob_outlives_its_source(registry: Client) -> None:
    digest = await push_blob(registry, "mount/src", DATA)
    r = await registry.post(f"/v2/mount/dst/blobs/uploads/?mount={digest}&from=mount/src")
    assert r.status == 201
    r = await registry.delete(f"/v2/mount/src/blobs/{digest}")
    assert r.status == 202
    assert await _fetch(registry, "mount/dst", digest) == DATA


@pytest.mark.parametrize("style", ["{s}-{e}", "bytes={s}-{e}", "bytes {s}-{e}/*", "{s}-{e}/{t}"])
async def test_content_range_spellings_clients_use(registry: Client, style: str) -> None:
    location = await start_upload(registry, REPO)
    for start, end in ((0, 999), (1000, len(DATA) - 1)):
        header = style.format(s=start, e=end, t=len(DATA))
        r = await registry.patch(
            location, data=DATA[start : end + 1], headers={"Content-Range": header}
        )
        assert r.status == 202, await r.text()
        assert r.headers["Range"] == f"0-{end}"
    r = await registry.put(with_query(location, digest=sha256(DATA)))
    assert r.status == 201
    assert await _fetch(registry, REPO, sha256(DATA)) == DATA


@pytest.mark.parametrize("body", [DATA[1000:1500], DATA[1000:2500]], ids=["short", "long"])
async def test_streamed_chunk_that_disagrees_with_its_range(registry: Client, body: bytes) -> None:
    location = await start_upload(registry, REPO)
    r = await registry.patch(
        location, data=_chunks(DATA[:1000]), headers={"Content-Range": "0-999"}
    )
    assert r.status == 202
    # No Content-Length: the mismatch shows only once the body has arrived.
    r = await registry.patch(location, data=_chunks(body), headers={"Content-Range": "1000-1999"})
    await assert_error(r, 400, "SIZE_INVALID")
    r = await registry.get(location)
    assert r.headers["Range"] == "0-999"
    r = await registry.patch(
        location, data=_chunks(DATA[1000:]), headers={"Content-Range": f"1000-{len(DATA) - 1}"}
    )
    assert r.status == 202, await r.text()
    r = await registry.put(with_query(location, digest=sha256(DATA)))
    assert r.status == 201, await r.text()
    assert await _fetch(registry, REPO, sha256(DATA)) == DATA
