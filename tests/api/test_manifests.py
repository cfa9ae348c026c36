"""``/v2/<name>/manifests/<reference>``: PUT, GET, HEAD, DELETE (spec end-3, end-7, end-9).

The registry stores a manifest byte for byte and serves it under the digest of those
bytes with the media type it was pushed as; a push that fails stores nothing.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
from typing import Any

import pytest

from tests.helpers import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    EMPTY_JSON,
    EMPTY_JSON_DIGEST,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    Client,
    assert_error,
    descriptor,
    image_manifest,
    index_manifest,
    push_blob,
    put_manifest,
    sha256,
    sha512,
    tags_of,
)

REPO = "manifests/demo"
CONFIG = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
LAYER = b"layer bytes"


async def _image(client: Client, repo: str = REPO, *, layer: bytes = LAYER, **kw: Any) -> bytes:
    """Push the blobs of an image manifest and return the manifest's bytes (not pushed)."""
    await push_blob(client, repo, CONFIG)
    await push_blob(client, repo, layer)
    return image_manifest(CONFIG, [layer], **kw)


async def _assert_served(
    client: Client, repo: str, reference: str, body: bytes, media_type: str
) -> None:
    """GET and HEAD ``reference`` give back ``body`` exactly, typed and digested."""
    digest = sha256(body)
    r = await client.get(f"/v2/{repo}/manifests/{reference}", headers={"Accept": media_type})
    assert r.status == 200, await r.text()
    assert await r.read() == body
    assert r.headers["Content-Type"] == media_type
    assert r.headers["Docker-Content-Digest"] == digest
    assert r.headers["Content-Length"] == str(len(body))
    r = await client.head(f"/v2/{repo}/manifests/{reference}")
    assert r.status == 200
    assert await r.read() == b""
    assert r.headers["Content-Type"] == media_type
    assert r.headers["Docker-Content-Digest"] == digest
    assert r.headers["Content-Length"] == str(len(body))


async def _assert_absent(client: Client, repo: str, reference: str) -> None:
    r = await client.get(f"/v2/{repo}/manifests/{reference}")
    await assert_error(r, 404, "MANIFEST_UNKNOWN")
    r = await client.head(f"/v2/{repo}/manifests/{reference}")
    assert r.status == 404


# -- push and pull, every kind -----------------------------------------------------------


async def test_put_by_tag_then_get_by_tag_and_by_digest(registry: Client) -> None:
    body = await _image(registry)
    digest = sha256(body)
    r = await put_manifest(registry, REPO, "v1", body)
    assert r.status == 201, await r.text()
    assert r.headers["Location"] == f"/v2/{REPO}/manifests/{digest}"
    assert r.headers["Docker-Content-Digest"] == digest
    assert "OCI-Subject" not in r.headers
    await _assert_served(registry, REPO, "v1", body, OCI_MANIFEST)
    await _assert_served(registry, REPO, digest, body, OCI_MANIFEST)
    assert await tags_of(registry, REPO) == ["v1"]


async def test_put_by_digest_sets_no_tag(registry: Client) -> None:
    body = await _image(registry)
    digest = sha256(body)
    r = await put_manifest(registry, REPO, digest, body)
    assert r.status == 201, await r.text()
    assert r.headers["Docker-Content-Digest"] == digest
    assert r.headers["Location"] == f"/v2/{REPO}/manifests/{digest}"
    assert "OCI-Tag" not in r.headers
    await _assert_served(registry, REPO, digest, body, OCI_MANIFEST)
    assert await tags_of(registry, REPO) == []


async def test_put_by_sha512_digest(registry: Client) -> None:
    body = await _image(registry)
    digest = sha512(body)
    r = await put_manifest(registry, REPO, digest, body)
    assert r.status == 201, await r.text()
    assert r.headers["Docker-Content-Digest"] == digest
    r = await registry.get(f"/v2/{REPO}/manifests/{digest}")
    assert r.status == 200
    assert await r.read() == body
    assert r.headers["Docker-Content-Digest"] == digest


async def test_oci_index(registry: Client) -> None:
    amd = await _image(registry, layer=b"amd64 layer")
    arm = await _image(registry, layer=b"arm64 layer")
    for body in (amd, arm):
        r = await put_manifest(registry, REPO, sha256(body), body)
        assert r.status == 201
    index = index_manifest([(OCI_MANIFEST, amd), (OCI_MANIFEST, arm)])
    r = await put_manifest(registry, REPO, "multi", index, OCI_INDEX)
    assert r.status == 201, await r.text()
    assert r.headers["Docker-Content-Digest"] == sha256(index)
    await _assert_served(registry, REPO, "multi", index, OCI_INDEX)
    # The children stay reachable by digest.
    await _assert_served(registry, REPO, sha256(arm), arm, OCI_MANIFEST)


async def test_nested_and_empty_indexes(registry: Client) -> None:
    body = await _image(registry)
    await put_manifest(registry, REPO, sha256(body), body)
    inner = index_manifest([(OCI_MANIFEST, body)])
    r = await put_manifest(registry, REPO, sha256(inner), inner, OCI_INDEX)
    assert r.status == 201
    outer = index_manifest([(OCI_INDEX, inner)])
    r = await put_manifest(registry, REPO, "index-of-index", outer, OCI_INDEX)
    assert r.status == 201, await r.text()
    await _assert_served(registry, REPO, "index-of-index", outer, OCI_INDEX)
    empty = index_manifest([])
    r = await put_manifest(registry, REPO, "empty-index", empty, OCI_INDEX)
    assert r.status == 201, await r.text()
    await _assert_served(registry, REPO, "empty-index", empty, OCI_INDEX)


async def test_docker_schema2_manifest_and_manifest_list(registry: Client) -> None:
    await push_blob(registry, REPO, CONFIG)
    await push_blob(registry, REPO, LAYER)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": descriptor(DOCKER_CONFIG, CONFIG),
            "layers": [descriptor(DOCKER_LAYER, LAYER)],
        },
        indent=3,
    ).encode()
    r = await put_manifest(registry, REPO, "docker", manifest, DOCKER_MANIFEST)
    assert r.status == 201, await r.text()
    await _assert_served(registry, REPO, "docker", manifest, DOCKER_MANIFEST)
    manifest_list = index_manifest([(DOCKER_MANIFEST, manifest)], media_type=DOCKER_MANIFEST_LIST)
    r = await put_manifest(registry, REPO, "docker-list", manifest_list, DOCKER_MANIFEST_LIST)
    assert r.status == 201, await r.text()
    await _assert_served(registry, REPO, "docker-list", manifest_list, DOCKER_MANIFEST_LIST)


async def test_artifact_with_artifact_type_and_empty_config(registry: Client) -> None:
    assert sha256(EMPTY_JSON) == EMPTY_JSON_DIGEST
    empty = await push_blob(registry, REPO, EMPTY_JSON)
    assert empty == EMPTY_JSON_DIGEST
    payload = await push_blob(registry, REPO, b"an sbom")
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.example.sbom.v1",
            "config": descriptor(OCI_EMPTY, EMPTY_JSON),
            "layers": [descriptor("application/vnd.example.sbom.v1", b"an sbom")],
        }
    ).encode()
    r = await put_manifest(registry, REPO, "sbom", body)
    assert r.status == 201, await r.text()
    await _assert_served(registry, REPO, "sbom", body, OCI_MANIFEST)
    doc = json.loads(await (await registry.get(f"/v2/{REPO}/manifests/sbom")).read())
    assert doc["config"]["digest"] == EMPTY_JSON_DIGEST
    assert doc["layers"][0]["digest"] == payload


async def test_artifact_whose_only_layer_is_the_empty_json(registry: Client) -> None:
    await push_blob(registry, REPO, EMPTY_JSON)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.example.thing",
            "config": descriptor(OCI_EMPTY, EMPTY_JSON),
            "layers": [descriptor(OCI_EMPTY, EMPTY_JSON)],
        }
    ).encode()
    r = await put_manifest(registry, REPO, "no-layers", body)
    assert r.status == 201, await r.text()


async def test_manifest_without_media_type_takes_the_content_type(registry: Client) -> None:
    await push_blob(registry, REPO, CONFIG)
    body = json.dumps(
        {"schemaVersion": 2, "config": descriptor(OCI_CONFIG, CONFIG), "layers": []}, indent="\t"
    ).encode()
    r = await put_manifest(registry, REPO, "bare", body, f"{OCI_MANIFEST}; charset=utf-8")
    assert r.status == 201, await r.text()
    await _assert_served(registry, REPO, "bare", body, OCI_MANIFEST)


async def test_unknown_fields_and_data_fields_are_kept_byte_for_byte(registry: Client) -> None:
    await push_blob(registry, REPO, CONFIG)
    await push_blob(registry, REPO, LAYER)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(
                OCI_CONFIG,
                CONFIG,
                data=base64.b64encode(CONFIG).decode(),
                newUnspecifiedField=base64.b64encode(b"hello world").decode(),
            ),
            "layers": [descriptor(OCI_LAYER, LAYER)],
            "org.example.custom": "kept",
        },
        indent="\t",
    ).encode()
    r = await put_manifest(registry, REPO, "custom", body)
    assert r.status == 201, await r.text()
    await _assert_served(registry, REPO, "custom", body, OCI_MANIFEST)


async def test_non_distributable_layers_need_not_be_pushed(registry: Client) -> None:
    await push_blob(registry, REPO, CONFIG)
    foreign = sha256(b"foreign layer")
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, CONFIG),
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                    "digest": foreign,
                    "size": 123456,
                    "urls": [f"https://store.example.com/blobs/{foreign}"],
                }
            ],
        }
    ).encode()
    r = await put_manifest(registry, REPO, "foreign", body)
    assert r.status == 201, await r.text()


async def test_pushing_the_same_manifest_twice_is_idempotent(registry: Client) -> None:
    body = await _image(registry)
    for _ in range(2):
        r = await put_manifest(registry, REPO, "v1", body)
        assert r.status == 201
        assert r.headers["Docker-Content-Digest"] == sha256(body)
    await _assert_served(registry, REPO, "v1", body, OCI_MANIFEST)


async def test_exactly_four_mib_is_accepted(registry: Client) -> None:
    body = await _image(registry)
    doc = json.loads(body)
    doc["annotations"] = {"pad": ""}
    padding = (4 << 20) - len(json.dumps(doc).encode())
    doc["annotations"]["pad"] = "x" * padding
    big = json.dumps(doc).encode()
    assert len(big) == 4 << 20
    r = await registry.put(
        f"/v2/{REPO}/manifests/big", data=io.BytesIO(big), headers={"Content-Type": OCI_MANIFEST}
    )
    assert r.status == 201, await r.text()
    r = await registry.get(f"/v2/{REPO}/manifests/big")
    assert sha256(await r.read()) == sha256(big)


# -- tags ---------------------------------------------------------------------------------


async def test_tag_query_parameters_set_several_tags(registry: Client) -> None:
    body = await _image(registry)
    digest = sha256(body)
    r = await registry.put(
        f"/v2/{REPO}/manifests/{digest}?tag=a&tag=b",
        data=body,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert r.status == 201, await r.text()
    assert r.headers.getall("OCI-Tag") == ["a", "b"]
    r = await registry.put(
        f"/v2/{REPO}/manifests/c?tag=d&tag=c", data=body, headers={"Content-Type": OCI_MANIFEST}
    )
    assert r.status == 201, await r.text()
    assert r.headers.getall("OCI-Tag") == ["c", "d"]
    for tag in ("a", "b", "c", "d"):
        await _assert_served(registry, REPO, tag, body, OCI_MANIFEST)
    assert await tags_of(registry, REPO) == ["a", "b", "c", "d"]


async def test_pushing_to_an_existing_tag_moves_it(registry: Client) -> None:
    old = await _image(registry)
    new = await _image(registry, layer=b"new layer")
    assert (await put_manifest(registry, REPO, "latest", old)).status == 201
    assert (await put_manifest(registry, REPO, "latest", new)).status == 201
    await _assert_served(registry, REPO, "latest", new, OCI_MANIFEST)
    await _assert_served(registry, REPO, sha256(old), old, OCI_MANIFEST)


async def test_concurrent_pushes_of_one_tag_last_writer_wins(registry: Client) -> None:
    bodies = [await _image(registry, layer=f"layer {i}".encode()) for i in range(8)]
    responses = await asyncio.gather(*(put_manifest(registry, REPO, "race", b) for b in bodies))
    assert [r.status for r in responses] == [201] * 8
    r = await registry.get(f"/v2/{REPO}/manifests/race")
    assert r.status == 200
    winner = await r.read()
    assert winner in bodies
    assert r.headers["Docker-Content-Digest"] == sha256(winner)
    for body in bodies:
        await _assert_served(registry, REPO, sha256(body), body, OCI_MANIFEST)
    assert await tags_of(registry, REPO) == ["race"]


# -- subject ------------------------------------------------------------------------------


async def test_subject_is_echoed_in_oci_subject(registry: Client) -> None:
    subject_body = await _image(registry)
    await put_manifest(registry, REPO, "v1", subject_body)
    subject = descriptor(OCI_MANIFEST, subject_body)
    body = await _image(registry, layer=b"signature", subject=subject, artifact_type="x/sig")
    r = await put_manifest(registry, REPO, sha256(body), body)
    assert r.status == 201, await r.text()
    assert r.headers["OCI-Subject"] == sha256(subject_body)


async def test_subject_that_does_not_exist_yet_is_accepted(registry: Client) -> None:
    missing = {"mediaType": OCI_MANIFEST, "digest": sha256(b"not pushed yet"), "size": 123}
    body = await _image(registry, subject=missing, artifact_type="x/sig")
    r = await put_manifest(registry, REPO, sha256(body), body)
    assert r.status == 201, await r.text()
    assert r.headers["OCI-Subject"] == missing["digest"]
    await _assert_served(registry, REPO, sha256(body), body, OCI_MANIFEST)


# -- delete -------------------------------------------------------------------------------


async def test_delete_by_digest_removes_the_manifest_and_its_tags(registry: Client) -> None:
    body = await _image(registry)
    digest = sha256(body)
    await registry.put(
        f"/v2/{REPO}/manifests/v1?tag=v1.0", data=body, headers={"Content-Type": OCI_MANIFEST}
    )
    other = await _image(registry, layer=b"other")
    await put_manifest(registry, REPO, "keep", other)
    r = await registry.delete(f"/v2/{REPO}/manifests/{digest}")
    assert r.status == 202
    for reference in (digest, "v1", "v1.0"):
        await _assert_absent(registry, REPO, reference)
    assert await tags_of(registry, REPO) == ["keep"]
    r = await registry.delete(f"/v2/{REPO}/manifests/{digest}")
    await assert_error(r, 404, "MANIFEST_UNKNOWN")
    # The blobs are untouched, and the manifest can be pushed again.
    assert (await registry.head(f"/v2/{REPO}/blobs/{sha256(LAYER)}")).status == 200
    assert (await put_manifest(registry, REPO, "v1", body)).status == 201
    await _assert_served(registry, REPO, "v1", body, OCI_MANIFEST)


async def test_delete_by_tag_removes_only_the_tag(registry: Client) -> None:
    body = await _image(registry)
    digest = sha256(body)
    await registry.put(
        f"/v2/{REPO}/manifests/v1?tag=stable", data=body, headers={"Content-Type": OCI_MANIFEST}
    )
    r = await registry.delete(f"/v2/{REPO}/manifests/v1")
    assert r.status == 202
    await _assert_absent(registry, REPO, "v1")
    await _assert_served(registry, REPO, digest, body, OCI_MANIFEST)
    await _assert_served(registry, REPO, "stable", body, OCI_MANIFEST)
    assert await tags_of(registry, REPO) == ["stable"]
    r = await registry.delete(f"/v2/{REPO}/manifests/v1")
    await assert_error(r, 404, "MANIFEST_UNKNOWN")


async def test_delete_in_an_unknown_repository_is_404(registry: Client) -> None:
    r = await registry.delete(f"/v2/nowhere/manifests/{sha256(b'x')}")
    await assert_error(r, 404, "MANIFEST_UNKNOWN")
    r = await registry.delete("/v2/nowhere/manifests/latest")
    await assert_error(r, 404, "MANIFEST_UNKNOWN")


async def test_same_manifest_in_two_repositories_is_independent(registry: Client) -> None:
    body = await _image(registry, "team/one")
    await _image(registry, "team/two")
    await put_manifest(registry, "team/one", "v1", body)
    await put_manifest(registry, "team/two", "v1", body)
    r = await registry.delete(f"/v2/team/one/manifests/{sha256(body)}")
    assert r.status == 202
    await _assert_absent(registry, "team/one", "v1")
    await _assert_served(registry, "team/two", "v1", body, OCI_MANIFEST)


# -- rejected pushes store nothing ----------------------------------------------------------


async def test_missing_blob_is_manifest_blob_unknown(registry: Client) -> None:
    await push_blob(registry, REPO, CONFIG)
    body = image_manifest(CONFIG, [b"never uploaded"])
    r = await put_manifest(registry, REPO, "broken", body)
    error = await assert_error(r, 404, "MANIFEST_BLOB_UNKNOWN")
    assert sha256(b"never uploaded") in json.dumps(error)
    await _assert_absent(registry, REPO, "broken")
    await _assert_absent(registry, REPO, sha256(body))
    assert await tags_of(registry, REPO) == []


async def test_blob_of_another_repository_does_not_count(registry: Client) -> None:
    await push_blob(registry, "elsewhere", LAYER)
    await push_blob(registry, REPO, CONFIG)
    body = image_manifest(CONFIG, [LAYER])
    r = await put_manifest(registry, REPO, "v1", body)
    await assert_error(r, 404, "MANIFEST_BLOB_UNKNOWN")
    await _assert_absent(registry, REPO, sha256(body))


async def test_deleted_blob_no_longer_satisfies_a_manifest(registry: Client) -> None:
    body = await _image(registry)
    r = await registry.delete(f"/v2/{REPO}/blobs/{sha256(LAYER)}")
    assert r.status == 202
    r = await put_manifest(registry, REPO, "v1", body)
    await assert_error(r, 404, "MANIFEST_BLOB_UNKNOWN")


async def test_index_with_a_missing_child(registry: Client) -> None:
    present = await _image(registry)
    await put_manifest(registry, REPO, sha256(present), present)
    absent = image_manifest(CONFIG, [b"another"])
    index = index_manifest([(OCI_MANIFEST, present), (OCI_MANIFEST, absent)])
    r = await put_manifest(registry, REPO, "multi", index, OCI_INDEX)
    error = await assert_error(r, 404, "MANIFEST_BLOB_UNKNOWN")
    assert sha256(absent) in json.dumps(error)
    await _assert_absent(registry, REPO, "multi")
    await _assert_absent(registry, REPO, sha256(index))


@pytest.mark.parametrize(
    ("content_type", "media_type"),
    [
        (OCI_INDEX, OCI_MANIFEST),
        (OCI_MANIFEST, OCI_INDEX),
        (DOCKER_MANIFEST, OCI_MANIFEST),
    ],
)
async def test_media_type_must_match_content_type(
    registry: Client, content_type: str, media_type: str
) -> None:
    body = await _image(registry)
    doc = json.loads(body)
    doc["mediaType"] = media_type
    if media_type == OCI_INDEX:
        doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    r = await put_manifest(registry, REPO, "v1", json.dumps(doc).encode(), content_type)
    await assert_error(r, 400, "MANIFEST_INVALID")
    await _assert_absent(registry, REPO, "v1")


@pytest.mark.parametrize("chunked", [False, True])
async def test_manifest_over_four_mib_is_413(registry: Client, chunked: bool) -> None:
    body = await _image(registry)
    doc = json.loads(body)
    doc["annotations"] = {"pad": "x" * (4 << 20)}
    big = json.dumps(doc).encode()

    async def stream() -> Any:
        for i in range(0, len(big), 1 << 16):
            yield big[i : i + (1 << 16)]

    r = await registry.put(
        f"/v2/{REPO}/manifests/big",
        data=stream() if chunked else io.BytesIO(big),
        headers={"Content-Type": OCI_MANIFEST},
    )
    await assert_error(r, 413, "MANIFEST_INVALID")
    await _assert_absent(registry, REPO, "big")
    await _assert_absent(registry, REPO, sha256(big))


@pytest.mark.parametrize(
    "body",
    [
        b"blablabla",
        b"",
        b"[]",
        b'"a string"',
        b"{",
        b"\xff\xfe not utf-8",
        b'{"schemaVersion": 1, "mediaType": "' + OCI_MANIFEST.encode() + b'"}',
        b'{"schemaVersion": 2, "mediaType": "' + OCI_MANIFEST.encode() + b'"}',
        b'{"schemaVersion": 2, "mediaType": "' + OCI_MANIFEST.encode() + b'", "config": 7}',
        b'{"schemaVersion": 2, "mediaType": "' + OCI_INDEX.encode() + b'"}',
    ],
)
async def test_invalid_manifest_bodies(registry: Client, body: bytes) -> None:
    r = await put_manifest(registry, REPO, "v1", body)
    await assert_error(r, 400, "MANIFEST_INVALID")
    await _assert_absent(registry, REPO, "v1")


async def test_docker_schema1_is_rejected(registry: Client) -> None:
    body = json.dumps({"schemaVersion": 1, "name": REPO, "tag": "v1", "fsLayers": []}).encode()
    media_type = "application/vnd.docker.distribution.manifest.v1+prettyjws"
    r = await put_manifest(registry, REPO, "v1", body, media_type)
    await assert_error(r, 400, "MANIFEST_INVALID")


async def test_put_by_a_digest_that_does_not_match(registry: Client) -> None:
    body = await _image(registry)
    wrong = sha256(body + b"  ")
    r = await put_manifest(registry, REPO, wrong, body)
    await assert_error(r, 400, "DIGEST_INVALID")
    await _assert_absent(registry, REPO, wrong)
    await _assert_absent(registry, REPO, sha256(body))
    # Whitespace changes the digest: the bytes with a trailing space are another manifest.
    r = await put_manifest(registry, REPO, sha256(body), body + b"  ")
    await assert_error(r, 400, "DIGEST_INVALID")


async def test_put_by_a_malformed_digest(registry: Client) -> None:
    body = await _image(registry)
    r = await put_manifest(registry, REPO, "sha256:baddigeststring", body)
    await assert_error(r, 400, "DIGEST_INVALID")
    assert await tags_of(registry, REPO) == []


# -- pulls of what is not there ---------------------------------------------------------------


@pytest.mark.parametrize(
    "reference", [".INVALID_MANIFEST_NAME", "missing-tag", sha256(b"no such manifest")]
)
async def test_get_of_an_unknown_manifest_is_404(registry: Client, reference: str) -> None:
    await put_manifest(registry, REPO, "v1", await _image(registry))
    await _assert_absent(registry, REPO, reference)
    await _assert_absent(registry, "never/pushed", reference)


async def test_get_by_a_malformed_digest_is_400(registry: Client) -> None:
    r = await registry.get(f"/v2/{REPO}/manifests/sha256:totallywrong")
    await assert_error(r, 400, "DIGEST_INVALID")


@pytest.mark.parametrize(
    "subject",
    [
        {"mediaType": OCI_MANIFEST, "digest": "sha256:nothex", "size": 1},
        {"mediaType": OCI_MANIFEST, "size": 1},
        {"digest": sha256(b"x"), "size": 1},
        {"mediaType": OCI_MANIFEST, "digest": sha256(b"x"), "size": -1},
        "sha256:" + "0" * 64,
    ],
    ids=["bad-digest", "no-digest", "no-media-type", "negative-size", "not-an-object"],
)
async def test_malformed_subject_is_manifest_invalid(registry: Client, subject: Any) -> None:
    body = await _image(registry)
    doc = json.loads(body)
    doc["subject"] = subject
    broken = json.dumps(doc).encode()
    r = await put_manifest(registry, REPO, sha256(broken), broken)
    await assert_error(r, 400, "MANIFEST_INVALID")
    await _assert_absent(registry, REPO, sha256(broken))
