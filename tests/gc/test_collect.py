"""GC against the real server: what it deletes, what it keeps, dry runs, upload expiry."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from dockyard.gc import collect_garbage
from tests.gc.conftest import core, stored
from tests.helpers import (
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    Client,
    assert_error,
    blob_status,
    descriptor,
    image_manifest,
    index_manifest,
    push_blob,
    push_image,
    put_manifest,
    sha256,
    start_upload,
)


async def gc(client: Client, *, grace: float = 0.0, dry_run: bool = False) -> dict[str, object]:
    report = await collect_garbage(core(client), grace=grace, upload_expiry=86400, dry_run=dry_run)
    return report.to_json()


async def test_unreferenced_blob_is_swept_from_metadata_and_storage(
    registry: Client, data_dir: Path
) -> None:
    orphan = await push_blob(registry, "gc/a", b"nobody references me")
    assert await stored(registry, orphan)
    report = await gc(registry)
    assert report["deleted_blobs"] == [{"digest": orphan, "size": 20}]
    assert report["dropped_links"] == [{"repository": "gc/a", "digest": orphan}]
    assert report["bytes_freed"] == 20
    assert await blob_status(registry, "gc/a", orphan) == 404
    assert not await stored(registry, orphan)


async def test_grace_period_protects_a_blob_whose_manifest_is_not_pushed_yet(
    registry: Client, data_dir: Path
) -> None:
    config = b'{"architecture": "amd64", "os": "linux"}'
    layer = b"layer pushed before its manifest"
    for blob in (config, layer):
        await push_blob(registry, "gc/b", blob)
    report = await gc(registry, grace=3600)
    assert report["deleted_blobs"] == []
    assert report["dropped_links"] == []
    r = await put_manifest(registry, "gc/b", "v1", image_manifest(config, [layer]))
    assert r.status == 201, await r.text()
    assert (await registry.get(f"/v2/gc/b/blobs/{sha256(layer)}")).status == 200


async def test_tagged_and_untagged_manifests_keep_their_blobs(registry: Client) -> None:
    tagged, _ = await push_image(registry, "gc/c", "v1", layers=[b"tagged layer"])
    untagged, _ = await push_image(registry, "gc/c", "v2", layers=[b"untagged layer"])
    r = await registry.delete("/v2/gc/c/manifests/v2")  # the tag only: the manifest stays
    assert r.status == 202
    report = await gc(registry)
    assert report["deleted_blobs"] == []
    assert report["reachable_manifests"] == 1
    assert report["untagged_manifests"] == 1
    for layer in (b"tagged layer", b"untagged layer"):
        r = await registry.get(f"/v2/gc/c/blobs/{sha256(layer)}")
        assert r.status == 200
        assert await r.read() == layer
    assert (await registry.get(f"/v2/gc/c/manifests/{untagged}")).status == 200
    assert (await registry.get(f"/v2/gc/c/manifests/{tagged}")).status == 200


async def test_deleting_a_manifest_frees_its_blobs(registry: Client, data_dir: Path) -> None:
    digest, _ = await push_image(registry, "gc/d", "v1", layers=[b"short-lived layer"])
    kept, _ = await push_image(registry, "gc/d", "v2", layers=[b"long-lived layer"])
    assert (await registry.delete(f"/v2/gc/d/manifests/{digest}")).status == 202
    report = await gc(registry)
    deleted = {b["digest"] for b in report["deleted_blobs"]}  # type: ignore[attr-defined]
    assert sha256(b"short-lived layer") in deleted
    assert sha256(b"long-lived layer") not in deleted
    assert not await stored(registry, sha256(b"short-lived layer"))
    assert (await registry.get(f"/v2/gc/d/manifests/{kept}")).status == 200
    assert (await registry.get(f"/v2/gc/d/blobs/{sha256(b'long-lived layer')}")).status == 200


async def test_index_children_and_referrers_are_reachable(registry: Client) -> None:
    children = []
    for arch in ("amd64", "arm64"):
        config = json.dumps({"architecture": arch, "os": "linux"}).encode()
        layer = f"{arch} layer".encode()
        for blob in (config, layer):
            await push_blob(registry, "gc/multi", blob)
        body = image_manifest(config, [layer])
        assert (await put_manifest(registry, "gc/multi", sha256(body), body)).status == 201
        children.append((OCI_MANIFEST, body))
    index = index_manifest(children)
    assert (await put_manifest(registry, "gc/multi", "v1", index, OCI_INDEX)).status == 201
    signature = b"a signature"
    await push_blob(registry, "gc/multi", b"{}")
    await push_blob(registry, "gc/multi", signature)
    referrer = image_manifest(
        b"{}", [signature], subject=descriptor(OCI_INDEX, index),
        artifact_type="application/vnd.example.signature", config_media_type=OCI_EMPTY,
    )  # fmt: skip
    r = await put_manifest(registry, "gc/multi", sha256(referrer), referrer)
    assert r.status == 201, await r.text()
    report = await gc(registry)
    assert report["reachable_manifests"] == 4  # the index, its two children, the signature
    assert report["untagged_manifests"] == 0
    assert report["deleted_blobs"] == []
    for blob in (b"amd64 layer", b"arm64 layer", signature):
        r = await registry.get(f"/v2/gc/multi/blobs/{sha256(blob)}")
        assert r.status == 200
        assert await r.read() == blob


async def test_shared_blob_loses_only_the_unused_link(registry: Client) -> None:
    layer = b"a layer two repositories uploaded"
    await push_image(registry, "gc/user", "v1", layers=[layer])
    await push_blob(registry, "gc/bystander", layer)
    report = await gc(registry)
    assert report["dropped_links"] == [{"repository": "gc/bystander", "digest": sha256(layer)}]
    assert report["deleted_blobs"] == []
    assert await blob_status(registry, "gc/bystander", sha256(layer)) == 404
    r = await registry.get(f"/v2/gc/user/blobs/{sha256(layer)}")
    assert r.status == 200
    assert await r.read() == layer


async def test_dry_run_lists_without_deleting(registry: Client, data_dir: Path) -> None:
    orphan = await push_blob(registry, "gc/e", b"would be deleted")
    report = await gc(registry, dry_run=True)
    assert report["dry_run"] is True
    assert report["deleted_blobs"] == [{"digest": orphan, "size": 16}]
    assert report["bytes_freed"] == 16
    assert await stored(registry, orphan)
    assert await blob_status(registry, "gc/e", orphan) == 200


async def test_abandoned_upload_expires_with_its_staged_bytes(
    registry: Client, data_dir: Path, stack: str
) -> None:
    location = await start_upload(registry, "gc/f")
    r = await registry.patch(location, data=b"half a blob", headers={"Content-Range": "0-10"})
    assert r.status == 202, await r.text()
    upload_id = r.headers["Docker-Upload-UUID"]
    staged = data_dir / "blobs" / "uploads" / upload_id
    local = stack == "embedded"  # where staged bytes are files to look at
    assert staged.exists() or not local
    fresh = await start_upload(registry, "gc/f")
    kept = await collect_garbage(core(registry), grace=0, upload_expiry=3600)
    assert kept.expired_uploads == []
    report = await collect_garbage(core(registry), grace=0, upload_expiry=1e-9)
    assert {u.id for u in report.expired_uploads} >= {upload_id, fresh.rsplit("/", 1)[-1]}
    assert not staged.exists()
    await assert_error(await registry.get(location), 404, "BLOB_UPLOAD_UNKNOWN")


@pytest.mark.filesystem_blobs  # staged files to plant (S3 leaves them to a lifecycle rule)
async def test_staged_bytes_no_session_owns_go_once_as_old(
    registry: Client, data_dir: Path
) -> None:
    """A crash can leave staged files behind with no session: a half-written upload
    file and lock, or the file of a whole blob on its way to blobs/. Once older than
    the upload expiry they go; a live session's files and young orphans stay."""
    uploads = data_dir / "blobs" / "uploads"
    location = await start_upload(registry, "gc/g")
    r = await registry.patch(location, data=b"live", headers={"Content-Range": "0-3"})
    assert r.status == 202, await r.text()
    live = r.headers["Docker-Upload-UUID"]
    old, young = "0" * 32, "1" * 32
    planted = [uploads / old, uploads / f"{old}.lock", uploads / f"{old}.0123abcd", uploads / young]
    for path in planted:
        path.write_bytes(b"left by a crash")
    an_hour_ago = time.time() - 3600
    for path in [*planted[:3], uploads / live, uploads / f"{live}.lock"]:
        os.utime(path, (an_hour_ago, an_hour_ago))
    dry = await collect_garbage(core(registry), grace=0, upload_expiry=600, dry_run=True)
    assert dry.orphaned_staging == [old]
    assert all(path.exists() for path in planted)
    report = await collect_garbage(core(registry), grace=0, upload_expiry=600)
    assert report.orphaned_staging == [old]
    assert sorted(p.name for p in uploads.iterdir()) == sorted([live, f"{live}.lock", young])
    # The live session, idle for an hour but open, is GC's to expire, not to orphan.
    r = await registry.put(f"{location}?digest={sha256(b'live')}")
    assert r.status == 201, await r.text()
