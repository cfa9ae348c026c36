"""Retention rules against the real server: what goes, what stays, and the tag history."""

from __future__ import annotations

import json

from dockyard.config import RetentionRule
from dockyard.gc import apply_retention, collect_garbage
from tests.gc.conftest import core
from tests.helpers import (
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    Client,
    descriptor,
    image_manifest,
    index_manifest,
    push_blob,
    push_image,
    put_manifest,
    sha256,
    tags_of,
)


def rule(**values: object) -> RetentionRule:
    return RetentionRule.model_validate({"repositories": "ret/**", **values})


async def test_delete_tags_by_pattern_and_age_keeps_protected_tags(registry: Client) -> None:
    for tag in ("pr-1", "pr-2", "v1.0", "main"):
        await push_image(registry, "ret/app", tag, layers=[f"layer {tag}".encode()])
    await push_image(registry, "other/app", "pr-9")  # no rule covers it
    young = rule(delete_tags={"pattern": "pr-*", "older_than": "14d"})
    assert (await apply_retention(core(registry), [young])).deletions == []
    old = rule(
        name="pr-cleanup", keep_tags=["v*"], delete_tags={"pattern": "*", "older_than": "0s"}
    )
    report = await apply_retention(core(registry), [old])
    assert sorted(d.tag or "" for d in report.deletions) == ["main", "pr-1", "pr-2"]
    assert await tags_of(registry, "ret/app") == ["v1.0"]
    assert await tags_of(registry, "other/app") == ["pr-9"]
    history = await core(registry).discovery.history("ret/app", "pr-1")
    assert [(h.reason, h.new_digest) for h in history][-1] == ("retention:pr-cleanup", None)


async def test_keep_last_keeps_the_newest_tags(registry: Client) -> None:
    for i in range(5):
        await push_image(registry, "ret/keep", f"b{i}", layers=[f"build {i}".encode()])
    await push_image(registry, "ret/keep", "release", layers=[b"release"])
    report = await apply_retention(core(registry), [rule(keep_last=2, keep_tags=["release"])])
    assert sorted(d.tag or "" for d in report.deletions) == ["b0", "b1", "b2", "b3"]
    assert await tags_of(registry, "ret/keep") == ["b4", "release"]
    history = await core(registry).discovery.history("ret/keep", "b0")
    assert history[-1].reason == "retention:rule-1"


async def test_dry_run_deletes_nothing(registry: Client) -> None:
    await push_image(registry, "ret/dry", "pr-1")
    report = await apply_retention(
        core(registry), [rule(delete_tags={"pattern": "pr-*", "older_than": "0s"})], dry_run=True
    )
    assert [d.tag for d in report.deletions] == ["pr-1"]
    assert await tags_of(registry, "ret/dry") == ["pr-1"]


async def test_untagged_manifests_go_but_children_and_referrers_of_live_images_stay(
    registry: Client,
) -> None:
    # A tagged index with one child, a signature of the index, and an orphan manifest.
    child, _ = await push_image(registry, "ret/multi", "tmp", layers=[b"child layer"])
    assert (await registry.delete("/v2/ret/multi/manifests/tmp")).status == 202
    r = await registry.get(f"/v2/ret/multi/manifests/{child}", headers={"Accept": OCI_MANIFEST})
    index = index_manifest([(OCI_MANIFEST, await r.read())])
    assert (await put_manifest(registry, "ret/multi", "v1", index, OCI_INDEX)).status == 201
    await push_blob(registry, "ret/multi", b"{}")
    await push_blob(registry, "ret/multi", b"signature")
    referrer = image_manifest(
        b"{}", [b"signature"], subject=descriptor(OCI_INDEX, index),
        artifact_type="application/vnd.example.sig", config_media_type=OCI_EMPTY,
    )  # fmt: skip
    assert (await put_manifest(registry, "ret/multi", sha256(referrer), referrer)).status == 201
    orphan, _ = await push_image(registry, "ret/multi", "gone", layers=[b"orphan layer"])
    assert (await registry.delete("/v2/ret/multi/manifests/gone")).status == 202
    report = await apply_retention(core(registry), [rule(delete_untagged_older_than="0s")])
    assert [(d.digest, d.tag) for d in report.deletions] == [(orphan, None)]
    for kept in (child, sha256(index), sha256(referrer)):
        assert (await registry.head(f"/v2/ret/multi/manifests/{kept}")).status == 200
    assert (await registry.head(f"/v2/ret/multi/manifests/{orphan}")).status == 404
    # GC then frees the orphan's layer and nothing else.
    gc = await collect_garbage(core(registry), grace=0, upload_expiry=86400)
    config = json.dumps({"architecture": "amd64", "os": "linux", "tag": "gone"}).encode()
    assert sorted(d for d, _ in gc.deleted_blobs) == sorted(
        [sha256(b"orphan layer"), sha256(config)]
    )


async def test_deleting_the_tag_of_an_index_then_untagged_removes_the_whole_tree(
    registry: Client,
) -> None:
    child, body = await push_image(registry, "ret/tree", "child", layers=[b"tree layer"])
    assert (await registry.delete("/v2/ret/tree/manifests/child")).status == 202
    index = index_manifest([(OCI_MANIFEST, body)])
    assert (await put_manifest(registry, "ret/tree", "pr-3", index, OCI_INDEX)).status == 201
    rules = [
        rule(delete_tags={"pattern": "pr-*", "older_than": "0s"}, delete_untagged_older_than="0s")
    ]
    report = await apply_retention(core(registry), rules)
    assert [(d.tag, d.digest) for d in report.deletions] == [
        ("pr-3", sha256(index)),
        (None, sha256(index)),
        (None, child),
    ]
