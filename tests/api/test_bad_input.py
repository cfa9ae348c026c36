"""Bad input of every kind: the expected OCI error, and proof that nothing changed.

Each test starts from a repository with a tagged image, sends one bad request, checks
the error envelope, then compares a snapshot of what a client can observe (catalog,
tags and where they point, the blobs and manifests involved) with the one before.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import pytest

from tests.helpers import (
    OCI_INDEX,
    OCI_MANIFEST,
    Client,
    assert_error,
    assert_raw_error,
    blob_status,
    image_manifest,
    index_manifest,
    open_uploads,
    push_blob,
    push_image,
    put_manifest,
    raw_request,
    sha256,
    start_upload,
    tags_of,
    with_query,
)

REPO = "bad/input"
TAG = "stable"
PAYLOAD = b"the bytes of a blob nobody should ever see stored"


@dataclass(frozen=True)
class Snapshot:
    """Everything a client could see change."""

    catalog: list[str]
    tags: dict[str, str]
    uploads: int


async def _snapshot(client: Client) -> Snapshot:
    r = await client.get("/v2/_catalog")
    catalog: list[str] = (await r.json())["repositories"]
    tags: dict[str, str] = {}
    for repo in catalog:
        for tag in await tags_of(client, repo):
            r = await client.head(f"/v2/{repo}/manifests/{tag}")
            tags[f"{repo}:{tag}"] = r.headers["Docker-Content-Digest"]
    uploads = await open_uploads(client)
    return Snapshot(catalog, tags, uploads)


@dataclass(frozen=True)
class World:
    """The image every test starts from, and a snapshot taken right after pushing it."""

    digest: str
    manifest: bytes
    before: Snapshot


@pytest.fixture
async def world(registry: Client) -> World:
    digest, manifest = await push_image(registry, REPO, TAG)
    return World(digest, manifest, await _snapshot(registry))


async def _assert_unchanged(client: Client, world: World) -> None:
    assert await _snapshot(client) == world.before
    r = await client.get(f"/v2/{REPO}/manifests/{TAG}")
    assert await r.read() == world.manifest
    assert r.headers["Docker-Content-Digest"] == world.digest


# -- malformed names --------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["Bad/Input", "bad//input", "bad/input/", "bad%2Finput", "b" * 256]
)
async def test_malformed_name(registry: Client, world: World, name: str) -> None:
    r = await raw_request(
        registry,
        "PUT",
        f"/v2/{name}/manifests/{TAG}",
        headers={"Content-Type": OCI_MANIFEST},
        body=world.manifest,
    )
    assert_raw_error(r, 400, "NAME_INVALID")
    r = await raw_request(
        registry, "POST", f"/v2/{name}/blobs/uploads/?digest={sha256(PAYLOAD)}", body=PAYLOAD
    )
    assert_raw_error(r, 400, "NAME_INVALID")
    await _assert_unchanged(registry, world)


# -- malformed digests -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "digest", ["sha256:zzz", "sha256", ":abc", "SHA256:" + "a" * 64, "sha1:" + "a" * 40]
)
async def test_malformed_digest(registry: Client, world: World, digest: str) -> None:
    r = await registry.post(f"/v2/{REPO}/blobs/uploads/?digest={digest}", data=PAYLOAD)
    await assert_error(r, 400, "DIGEST_INVALID")
    location = await start_upload(registry, REPO)
    r = await registry.put(with_query(location, digest=digest), data=PAYLOAD)
    await assert_error(r, 400, "DIGEST_INVALID")
    r = await registry.delete(location)
    assert r.status == 204
    r = await registry.post(f"/v2/{REPO}/blobs/uploads/?mount={digest}&from={REPO}")
    await assert_error(r, 400, "DIGEST_INVALID")
    r = await registry.get(f"/v2/{REPO}/manifests/{digest}")
    assert r.status in (400, 404)
    r = await registry.delete(f"/v2/{REPO}/manifests/{digest}")
    assert r.status in (400, 404)
    assert await blob_status(registry, REPO, sha256(PAYLOAD)) == 404
    await _assert_unchanged(registry, world)


# -- malformed JSON ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"blablabla", b"{}", b'{"schemaVersion": 2}', b"\x00\x01", b"[" * 100_000 + b"]" * 100_000],
    ids=["text", "empty-object", "no-media-type", "binary", "deep-nesting"],
)
async def test_malformed_manifest_json(registry: Client, world: World, body: bytes) -> None:
    r = await registry.put(
        f"/v2/{REPO}/manifests/{TAG}", data=io.BytesIO(body), headers={"Content-Type": OCI_MANIFEST}
    )
    await assert_error(r, 400, "MANIFEST_INVALID")
    await _assert_unchanged(registry, world)


async def test_media_type_disagrees_with_content_type(registry: Client, world: World) -> None:
    r = await put_manifest(registry, REPO, TAG, world.manifest, OCI_INDEX)
    await assert_error(r, 400, "MANIFEST_INVALID")
    await _assert_unchanged(registry, world)


async def test_invalid_extra_tag_stores_nothing(registry: Client, world: World) -> None:
    config = b'{"architecture":"arm64","os":"linux"}'
    await push_blob(registry, REPO, config)
    before = await _snapshot(registry)
    body = image_manifest(config, [])
    r = await registry.put(
        f"/v2/{REPO}/manifests/{TAG}?tag=ok&tag=.bad",
        data=body,
        headers={"Content-Type": OCI_MANIFEST},
    )
    await assert_error(r, 400, "MANIFEST_INVALID")
    assert await _snapshot(registry) == before
    r = await registry.get(f"/v2/{REPO}/manifests/{sha256(body)}")
    await assert_error(r, 404, "MANIFEST_UNKNOWN")


# -- malformed Content-Range -------------------------------------------------------------


@pytest.mark.parametrize(
    "content_range", ["x-y", "5", "-5", "5-", "9-0", "bytes 0-9/*x", "0-9,10-19"]
)
async def test_malformed_content_range(registry: Client, world: World, content_range: str) -> None:
    location = await start_upload(registry, REPO)
    r = await registry.patch(location, data=PAYLOAD[:10], headers={"Content-Range": "0-9"})
    assert r.status == 202
    r = await registry.patch(
        location, data=PAYLOAD[10:20], headers={"Content-Range": content_range}
    )
    await assert_error(r, 416, "BLOB_UPLOAD_INVALID")
    assert r.headers["Range"] == "0-9"
    assert r.headers["Location"] == location
    # The session is intact: the client resumes and finishes.
    r = await registry.patch(
        location, data=PAYLOAD[10:], headers={"Content-Range": f"10-{len(PAYLOAD) - 1}"}
    )
    assert r.status == 202
    r = await registry.put(with_query(location, digest=sha256(PAYLOAD)))
    assert r.status == 201
    r = await registry.get(f"/v2/{REPO}/blobs/{sha256(PAYLOAD)}")
    assert await r.read() == PAYLOAD
    await _assert_unchanged(registry, world)


async def test_chunk_longer_than_its_range(registry: Client, world: World) -> None:
    location = await start_upload(registry, REPO)
    r = await registry.patch(location, data=PAYLOAD[:20], headers={"Content-Range": "0-9"})
    await assert_error(r, 400, "SIZE_INVALID")
    r = await registry.get(location)
    assert r.headers["Range"] == "0-0"
    r = await registry.put(with_query(location, digest=sha256(PAYLOAD[:20])))
    assert r.status in (400, 404)
    assert await blob_status(registry, REPO, sha256(PAYLOAD[:20])) == 404
    assert await blob_status(registry, REPO, sha256(PAYLOAD[:10])) == 404


# -- oversize manifest ------------------------------------------------------------------------


async def test_oversize_manifest(registry: Client, world: World) -> None:
    doc = json.loads(world.manifest)
    doc["annotations"] = {"pad": "x" * (4 << 20)}
    big = json.dumps(doc).encode()
    r = await registry.put(
        f"/v2/{REPO}/manifests/{TAG}", data=io.BytesIO(big), headers={"Content-Type": OCI_MANIFEST}
    )
    await assert_error(r, 413, "MANIFEST_INVALID")
    await _assert_unchanged(registry, world)
    r = await registry.get(f"/v2/{REPO}/manifests/{sha256(big)}")
    await assert_error(r, 404, "MANIFEST_UNKNOWN")


# -- unknown upload ---------------------------------------------------------------------------


async def test_unknown_upload_id(registry: Client, world: World) -> None:
    location = f"/v2/{REPO}/blobs/uploads/{'f' * 32}"
    r = await registry.patch(location, data=PAYLOAD)
    await assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN")
    r = await registry.put(with_query(location, digest=sha256(PAYLOAD)), data=PAYLOAD)
    await assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN")
    assert await blob_status(registry, REPO, sha256(PAYLOAD)) == 404
    await _assert_unchanged(registry, world)


async def test_finished_upload_cannot_be_reused(registry: Client, world: World) -> None:
    location = await start_upload(registry, REPO)
    r = await registry.put(with_query(location, digest=sha256(PAYLOAD)), data=PAYLOAD)
    assert r.status == 201
    other = b"other bytes"
    r = await registry.put(with_query(location, digest=sha256(other)), data=other)
    await assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN")
    assert await blob_status(registry, REPO, sha256(other)) == 404


# -- digest mismatch ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["post", "put", "chunked", "put-chunk"])
async def test_digest_mismatch(registry: Client, world: World, mode: str) -> None:
    claimed = sha256(PAYLOAD + b"oh no")
    if mode == "post":
        r = await registry.post(f"/v2/{REPO}/blobs/uploads/?digest={claimed}", data=PAYLOAD)
    else:
        location = await start_upload(registry, REPO)
        if mode == "put":
            r = await registry.put(with_query(location, digest=claimed), data=PAYLOAD)
        elif mode == "chunked":
            r = await registry.patch(
                location, data=PAYLOAD, headers={"Content-Range": f"0-{len(PAYLOAD) - 1}"}
            )
            assert r.status == 202
            r = await registry.put(with_query(location, digest=claimed))
        else:
            r = await registry.patch(location, data=PAYLOAD[:10], headers={"Content-Range": "0-9"})
            assert r.status == 202
            r = await registry.put(
                with_query(location, digest=claimed),
                data=PAYLOAD[10:],
                headers={"Content-Range": f"10-{len(PAYLOAD) - 1}"},
            )
    await assert_error(r, 400, "DIGEST_INVALID")
    assert await blob_status(registry, REPO, claimed) == 404
    assert await blob_status(registry, REPO, sha256(PAYLOAD)) == 404
    await _assert_unchanged(registry, world)


async def test_manifest_digest_mismatch(registry: Client, world: World) -> None:
    body = world.manifest + b"  "
    r = await put_manifest(registry, REPO, world.digest, body)
    await assert_error(r, 400, "DIGEST_INVALID")
    await _assert_unchanged(registry, world)
    r = await registry.get(f"/v2/{REPO}/manifests/{sha256(body)}")
    await assert_error(r, 404, "MANIFEST_UNKNOWN")


# -- missing referenced blob --------------------------------------------------------------


async def test_missing_referenced_blob(registry: Client, world: World) -> None:
    config = b'{"architecture":"riscv64","os":"linux"}'
    await push_blob(registry, REPO, config)
    before = await _snapshot(registry)
    body = image_manifest(config, [b"a layer that was never pushed"])
    r = await put_manifest(registry, REPO, TAG, body)
    await assert_error(r, 404, "MANIFEST_BLOB_UNKNOWN")
    assert await _snapshot(registry) == before
    r = await registry.get(f"/v2/{REPO}/manifests/{TAG}")
    assert await r.read() == world.manifest
    r = await registry.get(f"/v2/{REPO}/manifests/{sha256(body)}")
    await assert_error(r, 404, "MANIFEST_UNKNOWN")


async def test_missing_child_manifest(registry: Client, world: World) -> None:
    absent = image_manifest(b"{}", [])
    index = index_manifest([(OCI_MANIFEST, world.manifest), (OCI_MANIFEST, absent)])
    r = await put_manifest(registry, REPO, TAG, index, OCI_INDEX)
    await assert_error(r, 404, "MANIFEST_BLOB_UNKNOWN")
    await _assert_unchanged(registry, world)


async def test_missing_blob_into_a_new_repository_creates_nothing(
    registry: Client, world: World
) -> None:
    r = await put_manifest(registry, "bad/fresh", TAG, world.manifest)
    await assert_error(r, 404, "MANIFEST_BLOB_UNKNOWN")
    await _assert_unchanged(registry, world)
    r = await registry.get("/v2/bad/fresh/tags/list")
    await assert_error(r, 404, "NAME_UNKNOWN")


# -- wrong endpoints and methods -------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("POST", "/v2/_catalog", 405, "UNSUPPORTED"),
        ("PATCH", f"/v2/{REPO}/manifests/{TAG}", 405, "UNSUPPORTED"),
        ("POST", f"/v2/{REPO}/tags/list", 405, "UNSUPPORTED"),
        ("PUT", f"/v2/{REPO}/blobs/{sha256(PAYLOAD)}", 405, "UNSUPPORTED"),
        ("GET", f"/v2/{REPO}/nothing", 404, "NOT_FOUND"),
        ("GET", "/v3/", 404, "NOT_FOUND"),
    ],
)
async def test_wrong_endpoint(
    registry: Client, world: World, method: str, path: str, status: int, code: str
) -> None:
    r = await registry.request(method, path, data=PAYLOAD if method != "GET" else None)
    await assert_error(r, status, code)
    await _assert_unchanged(registry, world)
