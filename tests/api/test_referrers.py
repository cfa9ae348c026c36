"""``/v2/<name>/referrers/<digest>``: the manifests whose subject is a digest, as an image
index (spec "Listing Referrers", end-12a/b), and the referrers tag schema fallback."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.helpers import (
    EMPTY_JSON,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    Client,
    assert_error,
    descriptor,
    image_manifest,
    index_manifest,
    push_blob,
    push_image,
    put_manifest,
    sha256,
    sha512,
)

REPO = "referrers/demo"
SBOM = "application/vnd.example.sbom.v1"
SIGNATURE = "application/vnd.example.signature.v1"
KEY = "org.opencontainers.conformance.test"


async def _list(client: Client, repo: str, subject: str, query: str = "") -> dict[str, Any]:
    r = await client.get(f"/v2/{repo}/referrers/{subject}{query}")
    assert r.status == 200, await r.text()
    assert r.headers["Content-Type"] == OCI_INDEX
    doc: dict[str, Any] = json.loads(await r.read())
    assert doc["schemaVersion"] == 2
    assert doc["mediaType"] == OCI_INDEX
    return doc


async def _artifact(
    client: Client,
    repo: str,
    subject: dict[str, Any],
    *,
    artifact_type: str | None,
    config_media_type: str = OCI_EMPTY,
    note: str,
) -> bytes:
    """Push an artifact manifest that refers to ``subject``; return its bytes."""
    config = EMPTY_JSON if config_media_type == OCI_EMPTY else note.encode()
    layer = f"payload of {note}".encode()
    await push_blob(client, repo, config)
    await push_blob(client, repo, layer)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(config_media_type, config),
        "layers": [descriptor(artifact_type or "application/octet-stream", layer)],
        "subject": subject,
        "annotations": {KEY: note},
    }
    if artifact_type is not None:
        doc["artifactType"] = artifact_type
    body = json.dumps(doc, indent="\t").encode()
    r = await put_manifest(client, repo, sha256(body), body)
    assert r.status == 201, await r.text()
    assert r.headers["OCI-Subject"] == subject["digest"]
    return body


async def _subject(client: Client, repo: str = REPO) -> tuple[str, dict[str, Any]]:
    digest, body = await push_image(client, repo, "subject")
    return digest, descriptor(OCI_MANIFEST, body)


async def test_unknown_subject_or_repository_gives_an_empty_index(registry: Client) -> None:
    await push_image(registry, REPO, "v1")
    for repo in (REPO, "never/pushed"):
        doc = await _list(registry, repo, sha256(b"hello world"))
        assert doc["manifests"] == []


async def test_descriptors_carry_artifact_type_annotations_and_size(registry: Client) -> None:
    subject_digest, subject = await _subject(registry)
    own_type = await _artifact(registry, REPO, subject, artifact_type=SBOM, note="sbom")
    config_type = await _artifact(
        registry, REPO, subject, artifact_type=None, config_media_type=SIGNATURE, note="sig"
    )
    doc = await _list(registry, REPO, subject_digest)
    assert doc["manifests"] == [
        {
            "mediaType": OCI_MANIFEST,
            "digest": sha256(own_type),
            "size": len(own_type),
            "artifactType": SBOM,
            "annotations": {KEY: "sbom"},
        },
        {
            "mediaType": OCI_MANIFEST,
            "digest": sha256(config_type),
            "size": len(config_type),
            # No artifactType of its own: the config's media type stands in.
            "artifactType": SIGNATURE,
            "annotations": {KEY: "sig"},
        },
    ]


async def test_index_referrers(registry: Client) -> None:
    subject_digest, subject = await _subject(registry)
    child = await _artifact(registry, REPO, subject, artifact_type=SBOM, note="child")
    with_type = index_manifest(
        [(OCI_MANIFEST, child)],
        subject=subject,
        artifact_type="application/vnd.food.stand",
        annotations={KEY: "typed index"},
    )
    without_type = index_manifest(
        [(OCI_MANIFEST, child)], subject=subject, annotations={KEY: "plain index"}
    )
    for body in (with_type, without_type):
        r = await put_manifest(registry, REPO, sha256(body), body, OCI_INDEX)
        assert r.status == 201, await r.text()
        assert r.headers["OCI-Subject"] == subject_digest
    by_digest = {d["digest"]: d for d in (await _list(registry, REPO, subject_digest))["manifests"]}
    assert set(by_digest) == {sha256(child), sha256(with_type), sha256(without_type)}
    assert by_digest[sha256(with_type)] == {
        "mediaType": OCI_INDEX,
        "digest": sha256(with_type),
        "size": len(with_type),
        "artifactType": "application/vnd.food.stand",
        "annotations": {KEY: "typed index"},
    }
    # An index without an artifactType has none in its descriptor.
    assert "artifactType" not in by_digest[sha256(without_type)]
    assert by_digest[sha256(without_type)]["annotations"] == {KEY: "plain index"}


async def test_artifact_type_filter(registry: Client) -> None:
    subject_digest, subject = await _subject(registry)
    sbom_a = await _artifact(registry, REPO, subject, artifact_type=SBOM, note="a")
    sbom_b = await _artifact(
        registry, REPO, subject, artifact_type=None, config_media_type=SBOM, note="b"
    )
    await _artifact(registry, REPO, subject, artifact_type=SIGNATURE, note="c")
    r = await registry.get(f"/v2/{REPO}/referrers/{subject_digest}?artifactType={SBOM}")
    assert r.status == 200
    assert r.headers["OCI-Filters-Applied"] == "artifactType"
    doc = json.loads(await r.read())
    assert [d["digest"] for d in doc["manifests"]] == [sha256(sbom_a), sha256(sbom_b)]
    assert all(d["artifactType"] == SBOM for d in doc["manifests"])
    # Unfiltered, no header and every referrer.
    r = await registry.get(f"/v2/{REPO}/referrers/{subject_digest}")
    assert "OCI-Filters-Applied" not in r.headers
    assert len(json.loads(await r.read())["manifests"]) == 3
    # A filter that matches nothing.
    r = await registry.get(f"/v2/{REPO}/referrers/{subject_digest}?artifactType=x/none")
    assert r.headers["OCI-Filters-Applied"] == "artifactType"
    assert json.loads(await r.read())["manifests"] == []


async def test_referrer_pushed_before_its_subject(registry: Client) -> None:
    future: dict[str, Any] = {"mediaType": OCI_MANIFEST, "digest": sha256(b"later"), "size": 5}
    body = await _artifact(registry, REPO, future, artifact_type=SBOM, note="early")
    doc = await _list(registry, REPO, future["digest"])
    assert [d["digest"] for d in doc["manifests"]] == [sha256(body)]


async def test_deleted_referrer_leaves_the_list(registry: Client) -> None:
    subject_digest, subject = await _subject(registry)
    keep = await _artifact(registry, REPO, subject, artifact_type=SBOM, note="keep")
    drop = await _artifact(registry, REPO, subject, artifact_type=SBOM, note="drop")
    r = await registry.delete(f"/v2/{REPO}/manifests/{sha256(drop)}")
    assert r.status == 202
    doc = await _list(registry, REPO, subject_digest)
    assert [d["digest"] for d in doc["manifests"]] == [sha256(keep)]


async def test_referrers_are_per_repository(registry: Client) -> None:
    subject_digest, subject = await _subject(registry, "referrers/one")
    await push_image(registry, "referrers/two", "subject")  # the same subject bytes
    body = await _artifact(registry, "referrers/one", subject, artifact_type=SBOM, note="one")
    assert [
        d["digest"] for d in (await _list(registry, "referrers/one", subject_digest))["manifests"]
    ] == [sha256(body)]
    assert (await _list(registry, "referrers/two", subject_digest))["manifests"] == []


async def test_subject_with_a_sha512_digest(registry: Client) -> None:
    _, subject_body = await push_image(registry, REPO, "subject")
    subject = {
        "mediaType": OCI_MANIFEST,
        "digest": sha512(subject_body),
        "size": len(subject_body),
    }
    body = await _artifact(registry, REPO, subject, artifact_type=SBOM, note="512")
    doc = await _list(registry, REPO, sha512(subject_body))
    assert [d["digest"] for d in doc["manifests"]] == [sha256(body)]


@pytest.mark.parametrize("digest", ["sha256:totallywrong", "nodigest", "sha256:" + "A" * 64])
async def test_invalid_digest_is_400(registry: Client, digest: str) -> None:
    await push_image(registry, REPO, "v1")
    r = await registry.get(f"/v2/{REPO}/referrers/{digest}")
    await assert_error(r, 400, "DIGEST_INVALID")


async def test_invalid_repository_name_is_400(registry: Client) -> None:
    r = await registry.get(f"/v2/Bad/Name/referrers/{sha256(b'x')}")
    await assert_error(r, 400, "NAME_INVALID")


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
async def test_referrers_tag_schema_tags_work_as_plain_tags(
    registry: Client, algorithm: str
) -> None:
    _, subject_body = await push_image(registry, REPO, "subject")
    subject_digest = sha256(subject_body) if algorithm == "sha256" else sha512(subject_body)
    encoded = subject_digest.split(":", 1)[1]
    tag = f"{algorithm}-{encoded[:64]}"
    referrer = await _artifact(
        registry,
        REPO,
        {"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": len(subject_body)},
        artifact_type=SBOM,
        note="fallback",
    )
    # A client without the referrers API keeps the list in an index under the tag.
    fallback = index_manifest([(OCI_MANIFEST, referrer)])
    r = await put_manifest(registry, REPO, tag, fallback, OCI_INDEX)
    assert r.status == 201, await r.text()
    r = await registry.get(f"/v2/{REPO}/manifests/{tag}")
    assert r.status == 200
    assert await r.read() == fallback
    assert r.headers["Content-Type"] == OCI_INDEX
    r = await registry.get(f"/v2/{REPO}/tags/list")
    assert tag in (await r.json())["tags"]
    # Updating the list is moving the tag.
    second = await _artifact(
        registry,
        REPO,
        {"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": len(subject_body)},
        artifact_type=SIGNATURE,
        note="second",
    )
    updated = index_manifest([(OCI_MANIFEST, referrer), (OCI_MANIFEST, second)])
    r = await put_manifest(registry, REPO, tag, updated, OCI_INDEX)
    assert r.status == 201
    r = await registry.get(f"/v2/{REPO}/manifests/{tag}")
    assert await r.read() == updated


async def test_image_referrer_with_a_plain_config(registry: Client) -> None:
    subject_digest, subject = await _subject(registry)
    config = b'{"architecture":"amd64","os":"linux","note":"signed image"}'
    await push_blob(registry, REPO, config)
    body = image_manifest(config, [], subject=subject, annotations={KEY: "image"})
    r = await put_manifest(registry, REPO, sha256(body), body)
    assert r.status == 201
    doc = await _list(registry, REPO, subject_digest)
    assert doc["manifests"] == [
        {
            "mediaType": OCI_MANIFEST,
            "digest": sha256(body),
            "size": len(body),
            "artifactType": OCI_CONFIG,
            "annotations": {KEY: "image"},
        }
    ]
