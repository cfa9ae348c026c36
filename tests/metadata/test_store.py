"""MetadataStore: blob links, manifests, tags and their history, listings, uploads."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, datetime, timedelta

import pytest

from dockyard.metadata import MetadataStore, MissingReferences, NewManifest, TagChange
from dockyard.oci import Digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SIGNATURE = "application/vnd.example.signature.v1"
SBOM = "application/vnd.example.sbom.v1"


def digest_of(text: str) -> str:
    return str(Digest.of(text.encode()))


def new_manifest(
    label: str,
    *,
    blobs: tuple[str, ...] = (),
    manifests: tuple[str, ...] = (),
    subject: str | None = None,
    artifact_type: str | None = None,
    annotations: dict[str, str] | None = None,
) -> NewManifest:
    """A manifest record with content unique to ``label``."""
    media_type = OCI_INDEX if manifests else OCI_MANIFEST
    content = json.dumps({"mediaType": media_type, "label": label, "blobs": blobs}).encode()
    return NewManifest(
        digest=str(Digest.of(content)),
        media_type=media_type,
        content=content,
        blob_refs=blobs,
        manifest_refs=manifests,
        subject_digest=subject,
        artifact_type=artifact_type,
        annotations=annotations,
    )


async def put_image(
    meta: MetadataStore, repository: str, label: str, tags: tuple[str, ...] = ()
) -> NewManifest:
    """Link a config and a layer, then put a manifest over them."""
    blobs = (digest_of(f"{label}-config"), digest_of(f"{label}-layer"))
    for blob in blobs:
        await meta.link_blob(repository, blob, 10)
    manifest = new_manifest(label, blobs=blobs)
    await meta.put_manifest(repository, manifest, tags)
    return manifest


def moves(history: list[TagChange]) -> list[tuple[str, str | None, str | None, str]]:
    return [(c.tag, c.old_digest, c.new_digest, c.reason) for c in history]


# -- blobs --------------------------------------------------------------------------


async def test_a_linked_blob_is_served_only_by_its_repository(meta: MetadataStore) -> None:
    blob = digest_of("layer")
    assert not await meta.repository_exists("team/app")
    await meta.link_blob("team/app", blob, 1234)
    assert await meta.repository_exists("team/app")
    assert await meta.blob_size("team/app", blob) == 1234
    assert await meta.blob_size("team/other", blob) is None
    assert await meta.blob_size("team/app", digest_of("something else")) is None


async def test_linking_is_idempotent(meta: MetadataStore) -> None:
    blob = digest_of("layer")
    for _ in range(3):
        await meta.link_blob("app", blob, 5)
    await meta.link_blob("b-app", blob, 5)
    await meta.link_blob("a-app", blob, 5)
    assert await meta.repositories_with_blob(blob) == ["a-app", "app", "b-app"]
    assert await meta.list_repositories(None, None) == ["a-app", "app", "b-app"]


async def test_unlink_blob(meta: MetadataStore) -> None:
    blob = digest_of("layer")
    await meta.link_blob("one", blob, 5)
    await meta.link_blob("two", blob, 5)
    assert await meta.unlink_blob("one", blob) is True
    assert await meta.blob_size("one", blob) is None
    assert await meta.blob_size("two", blob) == 5
    assert await meta.repositories_with_blob(blob) == ["two"]
    assert await meta.unlink_blob("one", blob) is False
    assert await meta.unlink_blob("never-existed", blob) is False
    # Unlinking forgets the link, not the repository.
    assert await meta.repository_exists("one")


async def test_concurrent_links_of_one_blob(meta: MetadataStore) -> None:
    blob = digest_of("popular layer")
    names = [f"repo{i}" for i in range(10)]
    await asyncio.gather(*(meta.link_blob(name, blob, 99) for name in names * 2))
    assert await meta.repositories_with_blob(blob) == sorted(names)


# -- manifests ----------------------------------------------------------------------


async def test_put_and_get_manifest(meta: MetadataStore) -> None:
    manifest = await put_image(meta, "app", "v1", ("latest", "v1"))
    for reference, by_digest in ((manifest.digest, True), ("latest", False), ("v1", False)):
        record = await meta.get_manifest("app", reference, by_digest=by_digest)
        assert record is not None
        assert record.digest == manifest.digest
        assert record.media_type == OCI_MANIFEST
        assert record.content == manifest.content
    assert await meta.get_manifest("app", "v2", by_digest=False) is None
    assert await meta.get_manifest("app", digest_of("nope"), by_digest=True) is None
    assert await meta.get_manifest("other", "latest", by_digest=False) is None
    # A digest is not a tag, nor the other way round.
    assert await meta.get_manifest("app", manifest.digest, by_digest=False) is None
    assert await meta.get_manifest("app", "latest", by_digest=True) is None


async def test_put_manifest_with_missing_blobs_stores_nothing(meta: MetadataStore) -> None:
    present, missing_a, missing_b = digest_of("present"), digest_of("a"), digest_of("b")
    manifest = new_manifest("x", blobs=(present, missing_b, missing_a, missing_b))
    with pytest.raises(MissingReferences) as e:
        await meta.put_manifest("fresh", manifest, ["latest"])
    assert e.value.blobs == sorted({missing_a, missing_b, present})
    assert e.value.manifests == []
    # Not even the repository was created.
    assert not await meta.repository_exists("fresh")
    assert await meta.list_repositories(None, None) == []

    await meta.link_blob("app", present, 1)
    with pytest.raises(MissingReferences) as e:
        await meta.put_manifest("app", manifest, ["latest"])
    assert e.value.blobs == sorted([missing_a, missing_b])
    assert await meta.get_manifest("app", manifest.digest, by_digest=True) is None
    assert await meta.list_tags("app", None, None) == []
    assert await meta.tag_history("app") == []


async def test_blobs_of_another_repository_do_not_count(meta: MetadataStore) -> None:
    blob = digest_of("layer")
    await meta.link_blob("elsewhere", blob, 1)
    with pytest.raises(MissingReferences):
        await meta.put_manifest("app", new_manifest("x", blobs=(blob,)), [])
    await meta.link_blob("app", blob, 1)
    await meta.put_manifest("app", new_manifest("x", blobs=(blob,)), [])


async def test_an_index_needs_its_children_in_the_repository(meta: MetadataStore) -> None:
    child = await put_image(meta, "app", "amd64")
    absent = digest_of("arm64 manifest")
    index = new_manifest("index", manifests=(child.digest, absent))
    with pytest.raises(MissingReferences) as e:
        await meta.put_manifest("app", index, ["latest"])
    assert e.value.manifests == [absent]
    assert e.value.blobs == []
    with pytest.raises(MissingReferences):
        await meta.put_manifest("other", new_manifest("index", manifests=(child.digest,)), [])
    await meta.put_manifest("app", new_manifest("index", manifests=(child.digest,)), ["latest"])


async def test_put_the_same_manifest_again(meta: MetadataStore) -> None:
    manifest = await put_image(meta, "app", "v1", ("latest",))
    assert await meta.put_manifest("app", manifest, ["latest"]) == []
    changes = await meta.put_manifest("app", manifest, ["stable"])
    assert moves(changes) == [("stable", None, manifest.digest, "push")]
    assert await meta.list_tags("app", None, None) == ["latest", "stable"]


async def test_the_subject_need_not_exist(meta: MetadataStore) -> None:
    # Referrers may be pushed before their subject (spec.md, "Pushing Manifests with Subject").
    signature = new_manifest("sig", subject=digest_of("image not pushed yet"))
    await meta.put_manifest("app", signature, [])
    assert await meta.get_manifest("app", signature.digest, by_digest=True) is not None


async def test_delete_manifest_removes_its_tags(meta: MetadataStore) -> None:
    old = await put_image(meta, "app", "v1", ("v1", "latest"))
    new = await put_image(meta, "app", "v2", ("v2",))
    assert await meta.delete_manifest("app", old.digest) is True
    assert await meta.get_manifest("app", old.digest, by_digest=True) is None
    assert await meta.get_manifest("app", "latest", by_digest=False) is None
    assert await meta.list_tags("app", None, None) == ["v2"]
    assert await meta.get_manifest("app", new.digest, by_digest=True) is not None
    deleted = [c for c in await meta.tag_history("app") if c.new_digest is None]
    assert sorted(moves(deleted)) == [
        ("latest", old.digest, None, "manifest-delete"),
        ("v1", old.digest, None, "manifest-delete"),
    ]
    assert await meta.delete_manifest("app", old.digest) is False
    assert await meta.delete_manifest("no-such-repo", old.digest) is False


# -- tags and their history ----------------------------------------------------------


async def test_tag_history_records_create_move_and_delete(meta: MetadataStore) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    v1 = await put_image(meta, "app", "v1")
    v2 = await put_image(meta, "app", "v2")
    created = await meta.put_manifest("app", v1, ["latest"])
    moved = await meta.put_manifest("app", v2, ["latest"])
    unchanged = await meta.put_manifest("app", v2, ["latest"])
    deleted = await meta.delete_tag("app", "latest")
    assert await meta.delete_tag("app", "latest") is None
    assert await meta.delete_tag("no-such-repo", "latest") is None

    assert moves(created) == [("latest", None, v1.digest, "push")]
    assert moves(moved) == [("latest", v1.digest, v2.digest, "push")]
    assert unchanged == []
    assert deleted is not None
    assert moves([deleted]) == [("latest", v2.digest, None, "delete")]

    history = await meta.tag_history("app", "latest")
    assert history == [*created, *moved, deleted]
    assert all(c.repository == "app" for c in history)
    times = [c.changed_at for c in history]
    assert all(t.tzinfo is not None for t in times)
    assert times == sorted(times)
    assert before <= times[0] <= datetime.now(UTC)


async def test_tag_history_of_all_tags_and_other_repositories(meta: MetadataStore) -> None:
    v1 = await put_image(meta, "app", "v1", ("v1", "latest"))
    other = await put_image(meta, "other", "v1", ("latest",))
    # The tags of one PUT move in name order (their rows are locked in that order).
    assert moves(await meta.tag_history("app")) == [
        ("latest", None, v1.digest, "push"),
        ("v1", None, v1.digest, "push"),
    ]
    assert moves(await meta.tag_history("app", "v1")) == [("v1", None, v1.digest, "push")]
    assert moves(await meta.tag_history("other")) == [("latest", None, other.digest, "push")]
    assert await meta.tag_history("app", "never") == []
    assert await meta.tag_history("no-such-repo") == []


async def test_concurrent_tag_moves_leave_an_unbroken_history(meta: MetadataStore) -> None:
    images = [await put_image(meta, "app", f"build-{i}") for i in range(12)]
    await asyncio.gather(*(meta.put_manifest("app", m, ["latest"]) for m in images))
    history = await meta.tag_history("app", "latest")
    assert len(history) == len(images)
    # Each move starts where the one before it ended: none lost, none interleaved.
    assert history[0].old_digest is None
    for before, after in itertools.pairwise(history):
        assert after.old_digest == before.new_digest
    record = await meta.get_manifest("app", "latest", by_digest=False)
    assert record is not None
    assert record.digest == history[-1].new_digest


async def test_concurrent_pushes_of_one_manifest(meta: MetadataStore) -> None:
    # The same image pushed through several replicas at once: stored once, no errors.
    image = await put_image(meta, "app", "shared")
    tags = [f"t{i}" for i in range(8)]
    results = await asyncio.gather(*(meta.put_manifest("app", image, [t]) for t in tags))
    assert sorted(moves([c for r in results for c in r])) == [
        (t, None, image.digest, "push") for t in sorted(tags)
    ]
    assert await meta.list_tags("app", None, None) == sorted(tags)
    record = await meta.get_manifest("app", image.digest, by_digest=True)
    assert record is not None
    assert record.content == image.content


# -- listings -----------------------------------------------------------------------

# Names whose order differs between byte order and the usual locale collations.
TAGS = ["v1.10", "v1.9", "latest", "Latest", "_x", "a-b", "a.b", "a_b", "ab", "A", "a", "B2", "0"]
REPOSITORIES = ["a", "a-b", "a.b", "a/b", "a_b", "ab", "a/b/c", "b", "0", "z9", "a--b", "a__b"]


@pytest.mark.parametrize("page_size", [1, 2, 5, 13, 100])
async def test_list_tags_in_lexical_order_page_by_page(meta: MetadataStore, page_size: int) -> None:
    image = await put_image(meta, "app", "x")
    await meta.put_manifest("app", image, TAGS)
    assert await meta.list_tags("app", None, None) == sorted(TAGS)
    pages: list[str] = []
    last: str | None = None
    while page := await meta.list_tags("app", page_size, last):
        assert page is not None
        assert len(page) <= page_size
        pages += page
        last = page[-1]
    assert pages == sorted(TAGS)


async def test_list_tags_after_a_name_that_is_not_a_tag(meta: MetadataStore) -> None:
    image = await put_image(meta, "app", "x")
    await meta.put_manifest("app", image, TAGS)
    assert await meta.list_tags("app", None, "a0") == [t for t in sorted(TAGS) if t > "a0"]
    assert await meta.list_tags("app", 2, "a0") == [t for t in sorted(TAGS) if t > "a0"][:2]
    assert await meta.list_tags("app", None, "zzz") == []
    assert await meta.list_tags("app", 0, None) == []


async def test_list_tags_of_unknown_and_untagged_repositories(meta: MetadataStore) -> None:
    assert await meta.list_tags("no-such-repo", None, None) is None
    await meta.link_blob("untagged", digest_of("blob"), 1)
    assert await meta.list_tags("untagged", None, None) == []


@pytest.mark.parametrize("page_size", [1, 3, 12, 50])
async def test_list_repositories_in_lexical_order_page_by_page(
    meta: MetadataStore, page_size: int
) -> None:
    assert await meta.list_repositories(None, None) == []
    for name in REPOSITORIES:
        await meta.link_blob(name, digest_of(name), 1)
    assert await meta.list_repositories(None, None) == sorted(REPOSITORIES)
    pages: list[str] = []
    last: str | None = None
    while page := await meta.list_repositories(page_size, last):
        assert len(page) <= page_size
        pages += page
        last = page[-1]
    assert pages == sorted(REPOSITORIES)
    assert await meta.list_repositories(None, "a/") == [r for r in sorted(REPOSITORIES) if r > "a/"]


# -- referrers ----------------------------------------------------------------------


async def test_referrers_by_subject_and_artifact_type(meta: MetadataStore) -> None:
    subject = await put_image(meta, "app", "image", ("latest",))
    signature = new_manifest(
        "sig", subject=subject.digest, artifact_type=SIGNATURE, annotations={"signed": "yes"}
    )
    sbom = new_manifest("sbom", subject=subject.digest, artifact_type=SBOM)
    unrelated = new_manifest("other", subject=digest_of("another image"), artifact_type=SBOM)
    for manifest in (signature, sbom, unrelated):
        await meta.put_manifest("app", manifest, [])
    await meta.put_manifest("mirror", new_manifest("m", subject=subject.digest), [])

    found = await meta.referrers("app", subject.digest, None)
    assert [r.digest for r in found] == [signature.digest, sbom.digest]  # oldest first
    first = found[0]
    assert first.media_type == OCI_MANIFEST
    assert first.size == len(signature.content)
    assert first.artifact_type == SIGNATURE
    assert first.annotations == {"signed": "yes"}
    assert found[1].annotations is None

    assert [r.digest for r in await meta.referrers("app", subject.digest, SBOM)] == [sbom.digest]
    assert await meta.referrers("app", subject.digest, "application/none") == []
    assert await meta.referrers("app", digest_of("nothing refers to this"), None) == []
    assert await meta.referrers("no-such-repo", subject.digest, None) == []


async def test_deleted_referrers_are_not_listed(meta: MetadataStore) -> None:
    subject = digest_of("image")
    signature = new_manifest("sig", subject=subject, artifact_type=SIGNATURE)
    await meta.put_manifest("app", signature, [])
    assert await meta.delete_manifest("app", signature.digest)
    assert await meta.referrers("app", subject, None) == []


# -- upload sessions ------------------------------------------------------------------


async def test_upload_session_lifecycle(meta: MetadataStore) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    assert await meta.get_upload("u1") is None
    assert await meta.count_uploads() == 0
    await meta.create_upload("u1", "team/app")
    await meta.create_upload("u2", "team/app")
    record = await meta.get_upload("u1")
    assert record is not None
    assert (record.id, record.repository, record.size) == ("u1", "team/app", 0)
    assert record.created_at.tzinfo is not None
    assert before <= record.created_at <= datetime.now(UTC)
    assert await meta.count_uploads() == 2

    assert await meta.advance_upload("u1", 0, 10) is True
    assert await meta.advance_upload("u1", 0, 20) is False  # someone else moved it
    assert await meta.advance_upload("u1", 10, 25) is True
    advanced = await meta.get_upload("u1")
    assert advanced is not None
    assert advanced.size == 25
    assert advanced.created_at == record.created_at

    assert await meta.delete_upload("u1") is True
    assert await meta.delete_upload("u1") is False
    assert await meta.get_upload("u1") is None
    assert await meta.advance_upload("u1", 25, 30) is False
    assert await meta.count_uploads() == 1


async def test_advance_upload_is_a_compare_and_set(meta: MetadataStore) -> None:
    await meta.create_upload("u1", "app")
    results = await asyncio.gather(*(meta.advance_upload("u1", 0, 100 + i) for i in range(10)))
    assert results.count(True) == 1
    record = await meta.get_upload("u1")
    assert record is not None
    assert record.size == 100 + results.index(True)
