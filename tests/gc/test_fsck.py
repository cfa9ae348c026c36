"""fsck with blobs corrupted, lost and left over in storage (on disk, or in S3);
quarantine and its repair."""

from __future__ import annotations

from dockyard.config import Settings
from dockyard.gc import check_integrity
from tests.gc.conftest import core
from tests.gc.raw import RawBlobs
from tests.helpers import (
    Client,
    assert_error,
    image_manifest,
    push_blob,
    push_image,
    put_manifest,
    sha256,
)

LAYER = b"precious layer bytes " * 100


async def test_sound_registry_has_no_problems(registry: Client) -> None:
    await push_image(registry, "fsck/ok", "v1", layers=[LAYER])
    report = await check_integrity(core(registry))
    assert report.ok
    assert report.checked == 2  # config and layer
    assert report.checked_bytes == len(LAYER) + len(
        b'{"architecture": "amd64", "os": "linux", "tag": "v1"}'
    )


async def test_corrupt_blob_is_quarantined_and_reported_with_what_it_breaks(
    registry: Client, settings: Settings
) -> None:
    digest, _ = await push_image(registry, "fsck/app", "v1", layers=[LAYER])
    r = await registry.put(
        "/v2/fsck/app/manifests/latest",
        data=await (await registry.get("/v2/fsck/app/manifests/v1")).read(),
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert r.status == 201
    await RawBlobs(settings).put(sha256(LAYER), b"X" + LAYER[1:])  # one flipped byte
    report = await check_integrity(core(registry))
    assert not report.ok
    [problem] = report.problems
    assert problem.kind == "corrupt"
    assert problem.digest == sha256(LAYER)
    assert [(b.repository, b.manifest, b.tags) for b in problem.breaks] == [
        ("fsck/app", digest, ("latest", "v1"))
    ]
    # Quarantined: never served again, not even through a mount or a manifest push.
    await assert_error(
        await registry.get(f"/v2/fsck/app/blobs/{sha256(LAYER)}"), 404, "BLOB_UNKNOWN"
    )
    r = await registry.post(f"/v2/fsck/other/blobs/uploads/?mount={sha256(LAYER)}&from=fsck/app")
    assert r.status == 202  # no mount: the client uploads instead
    config = b'{"architecture": "amd64", "os": "linux"}'
    await push_blob(registry, "fsck/app", config)
    r = await put_manifest(registry, "fsck/app", "v2", image_manifest(config, [LAYER]))
    await assert_error(r, 404, "MANIFEST_BLOB_UNKNOWN")
    # Uploading the good bytes again repairs it.
    await push_blob(registry, "fsck/app", LAYER)
    r = await registry.get(f"/v2/fsck/app/blobs/{sha256(LAYER)}")
    assert r.status == 200
    assert await r.read() == LAYER
    assert (await check_integrity(core(registry))).ok


async def test_missing_and_unknown_blobs(registry: Client, settings: Settings) -> None:
    await push_image(registry, "fsck/lost", "v1", layers=[b"lost layer"])
    raw = RawBlobs(settings)
    await raw.delete(sha256(b"lost layer"))
    await raw.put(sha256(b"stray"), b"stray")
    report = await check_integrity(core(registry))
    kinds = sorted((p.kind, p.digest) for p in report.problems)
    assert kinds == sorted([("missing", sha256(b"lost layer")), ("unknown", sha256(b"stray"))])


async def test_sample_and_older_than_choose_what_to_rehash(registry: Client) -> None:
    for i in range(3):
        await push_image(registry, "fsck/s", f"v{i}", layers=[f"layer {i}".encode()])
    assert (await check_integrity(core(registry), sample=2)).checked == 2
    assert (await check_integrity(core(registry), not_checked_for=3600)).checked == 4
    assert (await check_integrity(core(registry), not_checked_for=3600)).checked == 0
    assert (await check_integrity(core(registry))).checked == 6
