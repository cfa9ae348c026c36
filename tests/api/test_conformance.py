"""The OCI distribution-spec conformance suite's flows, end to end, against Dockyard.

Two generations of the official suite are mirrored:

- ``conformance/`` (ginkgo, v1.1): the Pull, Push, Content Discovery and Content
  Management workflows, each run alone and then all four in one namespace, in the
  suite's order, with its setup and teardown;
- ``conformance2/``: every blob push API (with sha256 and sha512), range requests, the
  empty blob, bad digests, and every data set pushed, listed, pulled, queried for
  referrers and deleted.

Where the suite accepts several answers (``2xx or 405``), Dockyard has exactly one; these
tests assert that one, so they are stricter than the suite.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.api.conformance_data import (
    ANNOTATION_KEY,
    OCI_INDEX,
    OCI_MANIFEST,
    TYPE_A,
    Blob,
    DataSet,
    Legacy,
    conformance2_data_sets,
    digest_of,
    legacy_data,
    media_type_of,
)
from tests.helpers import Client, with_query

NS = "conformance/repo1"
CROSS = "conformance/crossmount"
OCTET = {"Content-Type": "application/octet-stream"}
ERROR_CODES = {
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "MANIFEST_UNVERIFIED",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "TAG_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
}


async def _stream(data: bytes) -> AsyncIterator[bytes]:
    """A body without a declared length, as Go's client sends one: chunked encoding."""
    if data:
        yield data


async def _post_put(c: Client, ns: str, blob: Blob) -> None:
    r = await c.post(f"/v2/{ns}/blobs/uploads/")
    assert r.status == 202
    r = await c.put(
        with_query(r.headers["Location"], digest=blob.digest),
        data=blob.content,
        headers={**OCTET, "Content-Length": blob.length},
    )
    assert r.status == 201, await r.text()


async def _put_manifest(
    c: Client, ns: str, reference: str, body: bytes, media_type: str = OCI_MANIFEST
) -> Any:
    r = await c.put(
        f"/v2/{ns}/manifests/{reference}", data=body, headers={"Content-Type": media_type}
    )
    assert r.status == 201, await r.text()
    assert r.headers["Location"]
    return r


# -- conformance/01_pull_test.go --------------------------------------------------------------


async def pull_workflow(c: Client, ns: str, d: Legacy) -> None:
    for blob in (d.configs[0], d.configs[1], d.layer):
        await _post_put(c, ns, blob)
    await _put_manifest(c, ns, "tagtest0", d.manifests[0].content)
    await _put_manifest(c, ns, d.manifests[1].digest, d.manifests[1].content)
    # Pull blobs.
    assert (await c.head(f"/v2/{ns}/blobs/{d.dummy_digest}")).status == 404
    r = await c.head(f"/v2/{ns}/blobs/{d.configs[0].digest}")
    assert r.status == 200
    assert r.headers["Docker-Content-Digest"] == d.configs[0].digest
    assert (await c.get(f"/v2/{ns}/blobs/{d.dummy_digest}")).status == 404
    r = await c.get(f"/v2/{ns}/blobs/{d.configs[0].digest}")
    assert r.status == 200
    assert await r.read() == d.configs[0].content
    # Pull manifests.
    accept = {"Accept": OCI_MANIFEST}
    assert (await c.head(f"/v2/{ns}/manifests/.INVALID_MANIFEST_NAME")).status == 404
    for reference, manifest in (
        (d.manifests[0].digest, d.manifests[0]),
        (d.manifests[1].digest, d.manifests[1]),
        ("tagtest0", d.manifests[0]),
    ):
        r = await c.head(f"/v2/{ns}/manifests/{reference}", headers=accept)
        assert r.status == 200
        assert r.headers["Docker-Content-Digest"] == manifest.digest
        r = await c.get(f"/v2/{ns}/manifests/{reference}", headers=accept)
        assert r.status == 200
        assert await r.read() == manifest.content
    assert (await c.get(f"/v2/{ns}/manifests/.INVALID_MANIFEST_NAME")).status == 404
    # Error codes: a 400 carries an OCI error body with a known code.
    r = await c.get(
        f"/v2/{ns}/manifests/sha256:totallywrong",
        data=b"blablabla",
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert r.status == 400
    assert (await r.json())["errors"][0]["code"] in ERROR_CODES
    # Teardown: manifests before blobs.
    for manifest in d.manifests[:2]:
        assert (await c.delete(f"/v2/{ns}/manifests/{manifest.digest}")).status == 202
    for blob in (d.configs[0], d.configs[1], d.layer):
        assert (await c.delete(f"/v2/{ns}/blobs/{blob.digest}")).status == 202


# -- conformance/02_push_test.go --------------------------------------------------------------


async def push_workflow(c: Client, ns: str, d: Legacy, cross: str) -> None:
    # Blob upload streamed: PATCH with the blob, then a PUT without a body.
    r = await c.post(f"/v2/{ns}/blobs/uploads/")
    assert r.headers["Location"]
    r = await c.patch(r.headers["Location"], data=d.blob_a.content, headers=OCTET)
    assert r.status == 202
    r = await c.put(
        with_query(r.headers["Location"], digest=d.blob_a.digest),
        headers={**OCTET, "Content-Length": "0"},
    )
    assert r.status == 201, await r.text()
    assert r.headers["Location"]
    # Blob upload monolithic.
    assert (await c.get(f"/v2/{ns}/blobs/{d.dummy_digest}")).status == 404
    config = d.configs[1]
    r = await c.post(
        f"/v2/{ns}/blobs/uploads/?digest={config.digest}",
        data=config.content,
        headers={**OCTET, "Content-Length": config.length},
    )
    assert r.status == 201
    assert r.headers["Location"]
    assert (await c.get(f"/v2/{ns}/blobs/{config.digest}")).status == 200
    r = await c.post(f"/v2/{ns}/blobs/uploads/")
    assert r.status == 202
    await _post_put(c, ns, config)
    assert (await c.get(f"/v2/{ns}/blobs/{config.digest}")).status == 200
    await _post_put(c, ns, d.layer)
    assert (await c.get(f"/v2/{ns}/blobs/{d.layer.digest}")).status == 200
    # Blob upload chunked.
    r = await c.post(f"/v2/{ns}/blobs/uploads/", headers={"Content-Length": "0"})
    assert r.headers["Location"]
    assert "OCI-Chunk-Min-Length" not in r.headers
    r = await c.patch(
        r.headers["Location"],
        data=d.chunk2,
        headers={**OCTET, "Content-Length": str(len(d.chunk2)), "Content-Range": d.chunk2_range},
    )
    assert r.status == 416
    r = await c.post(f"/v2/{ns}/blobs/uploads/", headers={"Content-Length": "0"})
    session = r.headers["Location"]
    chunk1 = {**OCTET, "Content-Length": str(len(d.chunk1)), "Content-Range": d.chunk1_range}
    r = await c.patch(session, data=d.chunk1, headers=chunk1)
    assert r.status == 202
    assert r.headers["Range"] == d.chunk1_range
    r = await c.patch(session, data=d.chunk1, headers=chunk1)  # retry the previous chunk
    assert r.status == 416
    r = await c.get(session)
    assert r.status == 204
    assert r.headers["Location"]
    assert r.headers["Range"] == d.chunk1_range
    r = await c.patch(
        r.headers["Location"],
        data=d.chunk2,
        headers={**OCTET, "Content-Length": str(len(d.chunk2)), "Content-Range": d.chunk2_range},
    )
    assert r.status == 202
    assert r.headers["Location"]
    r = await c.put(
        with_query(r.headers["Location"], digest=d.blob_b.digest),
        headers={**OCTET, "Content-Length": "0"},
    )
    assert r.status == 201, await r.text()
    assert r.headers["Location"]
    # Cross-repository blob mount.
    r = await c.post(f"/v2/{cross}/blobs/uploads/?mount={d.dummy_digest}")
    assert r.status == 202
    assert r.headers["Location"]
    r = await c.post(f"/v2/{cross}/blobs/uploads/?mount={d.blob_a.digest}&from={ns}")
    assert r.status == 201
    assert r.headers["Location"] == f"/v2/{cross}/blobs/{d.blob_a.digest}"
    r = await c.get(r.headers["Location"])
    assert r.status == 200
    assert await r.read() == d.blob_a.content
    # Automatic content discovery: a mount without ``from`` finds the blob.
    r = await c.post(f"/v2/{cross}/blobs/uploads/?mount={d.blob_a.digest}")
    assert r.status == 201
    # Manifest upload.
    assert (await c.get(f"/v2/{ns}/manifests/.INVALID_MANIFEST_NAME")).status == 404
    for i in range(4):
        await _put_manifest(c, ns, f"test{i}", d.manifests[1].content)
    r = await _put_manifest(c, ns, "emptylayer", d.empty_layer_manifest.content)
    empty_layer_ref = r.headers["Location"]
    r = await c.get(f"/v2/{ns}/manifests/{d.manifests[1].digest}", headers={"Accept": OCI_MANIFEST})
    assert r.status == 200
    # Teardown.
    assert (await c.delete(f"/v2/{ns}/manifests/{d.manifests[1].digest}")).status == 202
    assert empty_layer_ref
    r = await c.delete(f"/v2/{ns}/manifests/{d.empty_layer_manifest.digest}")
    assert r.status == 202
    assert (await c.delete(f"/v2/{ns}/blobs/{config.digest}")).status == 202
    assert (await c.delete(f"/v2/{ns}/blobs/{d.layer.digest}")).status == 202


# -- conformance/03_discovery_test.go ---------------------------------------------------------


async def _tag_list(c: Client, ns: str, query: str = "") -> list[str]:
    r = await c.get(f"/v2/{ns}/tags/list{query}")
    assert r.status == 200
    tags: list[str] = (await r.json())["tags"]
    return tags


async def _referrers(
    c: Client, ns: str, digest: str, query: str = ""
) -> tuple[list[dict[str, Any]], Any]:
    r = await c.get(f"/v2/{ns}/referrers/{digest}{query}")
    assert r.status == 200
    assert r.headers["Content-Type"] == OCI_INDEX
    manifests: list[dict[str, Any]] = json.loads(await r.read())["manifests"]
    return manifests, r.headers


async def discovery_workflow(c: Client, ns: str, d: Legacy) -> None:
    await _post_put(c, ns, d.configs[2])
    await _post_put(c, ns, d.layer)
    for i in range(4):
        await _put_manifest(c, ns, f"test{i}", d.manifests[2].content)
    # References setup.
    assert d.empty_json.digest == (
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    )
    await _post_put(c, ns, d.empty_json)
    await _post_put(c, ns, d.ref_blob_a)
    subject4, subject3 = d.manifests[4].digest, d.manifests[3].digest
    for manifest in (d.refs_a_config, d.refs_a_layer):
        r = await _put_manifest(c, ns, manifest.digest, manifest.content)
        assert r.headers["OCI-Subject"] == subject4
    r = await _put_manifest(c, ns, d.refs_index.digest, d.refs_index.content, OCI_INDEX)
    assert r.headers["OCI-Subject"] == subject4
    await _post_put(c, ns, d.configs[4])
    await _post_put(c, ns, d.layer)
    await _put_manifest(c, ns, "tagtest0", d.manifests[4].content)
    await _post_put(c, ns, d.ref_blob_b)
    for manifest in (d.refs_b_config, d.refs_b_layer):
        r = await _put_manifest(c, ns, manifest.digest, manifest.content)
        assert r.headers["OCI-Subject"] == subject4
    r = await _put_manifest(c, ns, d.refs_c_layer.digest, d.refs_c_layer.content)
    assert r.headers["OCI-Subject"] == subject3
    # Listing tags.
    tags = await _tag_list(c, ns)
    assert {"test0", "test1", "test2", "test3", "tagtest0"} <= set(tags)
    assert tags == sorted(tags)
    half = len(tags) // 2
    first = await _tag_list(c, ns, f"?n={half}")
    assert first == tags[:half]
    rest = await _tag_list(c, ns, f"?n={half}&last={first[-1]}")
    assert rest == tags[half : 2 * half]
    # Listing referrers.
    manifests, _ = await _referrers(c, ns, d.dummy_digest)
    assert manifests == []
    manifests, _ = await _referrers(c, ns, subject4)
    assert len(manifests) == 5
    assert len({m["digest"] for m in manifests}) == 5
    for m in manifests:
        assert m["annotations"] == {ANNOTATION_KEY: d.annotations[m["digest"]]}
    manifests, headers = await _referrers(c, ns, subject4, f"?artifactType={TYPE_A}")
    assert headers["OCI-Filters-Applied"] == "artifactType"
    assert {m["digest"] for m in manifests} == {d.refs_a_config.digest, d.refs_a_layer.digest}
    for m in manifests:
        assert m["annotations"] == {ANNOTATION_KEY: d.annotations[m["digest"]]}
    manifests, _ = await _referrers(c, ns, subject3)
    assert [m["digest"] for m in manifests] == [d.refs_c_layer.digest]
    # Teardown, as the suite does it: a tag deleted "by digest" is just a tag.
    for reference in (
        d.refs_index.digest,
        d.manifests[2].digest,
        d.manifests[4].digest,
        d.refs_a_config.digest,
        d.refs_a_layer.digest,
        "tagtest0",
        d.refs_b_config.digest,
        d.refs_b_layer.digest,
        d.refs_c_layer.digest,
    ):
        r = await c.delete(f"/v2/{ns}/manifests/{reference}")
        assert r.status == (404 if reference == "tagtest0" else 202)
    assert (await c.delete(f"/v2/{ns}/blobs/{d.configs[2].digest}")).status == 202
    assert (await c.delete(f"/v2/{ns}/blobs/{d.layer.digest}")).status == 202
    for blob in (d.configs[4], d.ref_blob_a, d.ref_blob_b, d.empty_json):
        assert (await c.delete(f"/v2/{ns}/blobs/{blob.digest}")).status == 202


# -- conformance/04_management_test.go ---------------------------------------------------------


async def management_workflow(c: Client, ns: str, d: Legacy) -> None:
    await _post_put(c, ns, d.configs[3])
    await _post_put(c, ns, d.layer)
    await _put_manifest(c, ns, "tagtest0", d.manifests[3].content)
    before = len(await _tag_list(c, ns))
    assert (await c.delete(f"/v2/{ns}/manifests/tagtest0")).status == 202
    # The tag is gone but the manifest is not: deleting it by digest still works.
    assert (await c.get(f"/v2/{ns}/manifests/{d.manifests[3].digest}")).status == 200
    assert (await c.delete(f"/v2/{ns}/manifests/{d.manifests[3].digest}")).status == 202
    assert (await c.get(f"/v2/{ns}/manifests/{d.manifests[3].digest}")).status == 404
    assert len(await _tag_list(c, ns)) < before
    assert (await c.delete(f"/v2/{ns}/blobs/{d.configs[3].digest}")).status == 202
    assert (await c.delete(f"/v2/{ns}/blobs/{d.layer.digest}")).status == 202
    assert (await c.get(f"/v2/{ns}/blobs/{d.configs[3].digest}")).status == 404


async def test_pull_workflow(registry: Client) -> None:
    await pull_workflow(registry, NS, legacy_data())


async def test_push_workflow(registry: Client) -> None:
    await push_workflow(registry, NS, legacy_data(), CROSS)


async def test_content_discovery_workflow(registry: Client) -> None:
    await discovery_workflow(registry, NS, legacy_data())


async def test_content_management_workflow(registry: Client) -> None:
    await management_workflow(registry, NS, legacy_data())


async def test_all_workflows_share_one_namespace(registry: Client) -> None:
    d = legacy_data()
    await pull_workflow(registry, NS, d)
    await push_workflow(registry, NS, d, CROSS)
    await discovery_workflow(registry, NS, d)
    await management_workflow(registry, NS, d)
    assert await _tag_list(registry, NS) == []


# -- conformance2: blob push APIs ----------------------------------------------------------------

CHUNK_MIN = 1024


async def push_post_put(c: Client, ns: str, digest: str, body: bytes) -> int:
    r = await c.post(f"/v2/{ns}/blobs/uploads/")
    assert r.status == 202
    r = await c.put(
        with_query(r.headers["Location"], digest=digest), data=_stream(body), headers=OCTET
    )
    return r.status


async def push_post_only(c: Client, ns: str, digest: str, body: bytes) -> int:
    r = await c.post(f"/v2/{ns}/blobs/uploads/?digest={digest}", data=_stream(body), headers=OCTET)
    if r.status == 201:
        assert r.headers["Location"]
    return r.status


async def push_stream(c: Client, ns: str, digest: str, body: bytes) -> int:
    r = await c.post(f"/v2/{ns}/blobs/uploads/")
    r = await c.patch(r.headers["Location"], data=_stream(body), headers=OCTET)
    assert r.status == 202, await r.text()
    r = await c.put(with_query(r.headers["Location"], digest=digest), headers=OCTET)
    return r.status


async def push_chunked(
    c: Client,
    ns: str,
    digest: str,
    body: bytes,
    *,
    put_last: bool = False,
    out_of_order: bool = False,
) -> int:
    r = await c.post(f"/v2/{ns}/blobs/uploads/")
    assert r.status == 202
    location = r.headers["Location"]
    size = max(CHUNK_MIN, len(body) // 3 + 1)
    starts = list(range(0, len(body), size)) or [0]
    if out_of_order and len(starts) > 1:
        end = min(starts[1] + size, len(body)) - 1
        r = await c.patch(
            location,
            data=_stream(body[starts[1] : end + 1]),
            headers={**OCTET, "Content-Range": f"{starts[1]}-{end}"},
        )
        assert r.status == 416
        assert r.headers["Range"] == "0-0"
    last = starts.pop() if put_last and len(starts) > 1 else None
    for start in starts:
        end = min(start + size, len(body)) - 1
        r = await c.patch(
            location,
            data=_stream(body[start : end + 1]),
            headers={**OCTET, "Content-Range": f"{start}-{end}"},
        )
        assert r.status == 202, await r.text()
        assert r.headers["Range"] == f"0-{end}"
        location = r.headers["Location"]
    if last is None:
        r = await c.put(
            with_query(location, digest=digest), headers={**OCTET, "Content-Length": "0"}
        )
    else:
        r = await c.put(
            with_query(location, digest=digest),
            data=_stream(body[last:]),
            headers={**OCTET, "Content-Range": f"{last}-{len(body) - 1}"},
        )
    return r.status


async def check_blob(c: Client, ns: str, digest: str, body: bytes) -> None:
    r = await c.head(f"/v2/{ns}/blobs/{digest}")
    assert r.status == 200
    assert r.headers["Content-Length"] == str(len(body))
    assert await r.read() == b""
    r = await c.get(f"/v2/{ns}/blobs/{digest}")
    assert r.status == 200
    assert r.headers["Content-Length"] == str(len(body))
    assert await r.read() == body


async def delete_blob(c: Client, ns: str, digest: str) -> None:
    assert (await c.delete(f"/v2/{ns}/blobs/{digest}")).status == 202
    assert (await c.head(f"/v2/{ns}/blobs/{digest}")).status == 404


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
async def test_blob_apis(registry: Client, algorithm: str) -> None:
    c, repo2 = registry, "conformance/repo2"

    def blob(size: int = 512) -> tuple[str, bytes]:
        body = os.urandom(size)
        return digest_of(body, algorithm), body

    pushes = {
        "post only": push_post_only,
        "post+put": push_post_put,
        "chunked single": push_chunked,
        "stream": push_stream,
    }
    for name, push in pushes.items():
        digest, body = blob()
        assert await push(c, NS, digest, body) == 201, name
        await check_blob(c, NS, digest, body)
        await delete_blob(c, NS, digest)
    for put_last in (False, True):
        for out_of_order in (False, True):
            digest, body = blob(CHUNK_MIN * 3 - 5)
            status = await push_chunked(
                c, NS, digest, body, put_last=put_last, out_of_order=out_of_order
            )
            assert status == 201
            await check_blob(c, NS, digest, body)
            await delete_blob(c, NS, digest)
    # Mount from a source, anonymous mount, and a mount of a blob the source lacks.
    for source in (repo2, None):
        digest, body = blob()
        assert await push_post_put(c, repo2, digest, body) == 201
        query = f"?mount={digest}" + (f"&from={source}" if source else "")
        r = await c.post(f"/v2/{NS}/blobs/uploads/{query}")
        assert r.status == 201
        assert r.headers["Location"]
        await check_blob(c, NS, digest, body)
        await delete_blob(c, NS, digest)
        await delete_blob(c, repo2, digest)
    digest, body = blob()
    r = await c.post(f"/v2/{NS}/blobs/uploads/?mount={digest}&from={repo2}")
    assert r.status == 202
    r = await c.put(
        with_query(r.headers["Location"], digest=digest), data=_stream(body), headers=OCTET
    )
    assert r.status == 201
    await delete_blob(c, NS, digest)
    # Post, then cancel: the blob never appears.
    digest, body = blob()
    r = await c.post(f"/v2/{NS}/blobs/uploads/")
    r = await c.patch(r.headers["Location"], data=_stream(body))
    assert r.status == 202
    assert (await c.delete(r.headers["Location"])).status == 204
    assert (await c.get(f"/v2/{NS}/blobs/{digest}")).status == 404
    assert (await c.delete(f"/v2/{NS}/blobs/{digest}")).status == 404
    # Range requests.
    digest, body = blob(2048)
    assert await push_post_put(c, NS, digest, body) == 201
    for header, start, stop in (
        ("bytes=500-1499", 500, 1500),
        ("bytes=500-", 500, 2048),
        ("bytes=-500", 1548, 2048),
        ("bytes=2000-5000", 2000, 2048),
    ):
        r = await c.get(f"/v2/{NS}/blobs/{digest}", headers={"Range": header})
        assert r.status == 206
        assert await r.read() == body[start:stop]
        assert r.headers["Content-Length"] == str(stop - start)
        assert r.headers["Content-Range"] == f"bytes {start}-{stop - 1}/2048"
    for header in ("bytes=500-0", "bytes=5000-10000"):
        r = await c.get(f"/v2/{NS}/blobs/{digest}", headers={"Range": header})
        assert r.status == 416
    await delete_blob(c, NS, digest)
    # Well known contents.
    for body in (b"", b"{}"):
        digest = digest_of(body, algorithm)
        assert await push_post_put(c, NS, digest, body) == 201
        await check_blob(c, NS, digest, body)
        await delete_blob(c, NS, digest)
    # Bad digests: the bytes were corrupted after the digest was taken.
    for push in (push_post_only, push_post_put, push_chunked, push_stream):
        digest, body = blob(CHUNK_MIN * 3 - 5)
        assert await push(c, NS, digest, body + b"oh no") == 400
        assert (await c.head(f"/v2/{NS}/blobs/{digest}")).status == 404
    r = await c.get(f"/v2/{NS}/blobs/uploads/{'0' * 32}")
    assert r.status == 404


# -- conformance2: data sets ----------------------------------------------------------------------


async def push_data_set(c: Client, ns: str, ds: DataSet) -> None:
    pushes = [push_post_put, push_post_only, push_stream, push_chunked]
    for i, (digest, body) in enumerate(ds.blobs.items()):
        assert await pushes[i % len(pushes)](c, ns, digest, body) == 201
    for digest in ds.order:
        body = ds.manifests[digest]
        r = await _put_manifest(c, ns, digest, body, media_type_of(body))
        assert r.headers["Docker-Content-Digest"] == digest
        subject = json.loads(body).get("subject")
        if subject is not None:
            assert r.headers["OCI-Subject"] == subject["digest"]
    for tag, digest in ds.tags.items():
        r = await _put_manifest(
            c, ns, tag, ds.manifests[digest], media_type_of(ds.manifests[digest])
        )
        assert r.headers["Docker-Content-Digest"] == digest


async def check_data_set(c: Client, ns: str, ds: DataSet) -> None:
    tags = await _tag_list(c, ns)
    assert set(ds.tags) <= set(tags)
    references = [*((t, d) for t, d in ds.tags.items()), *((d, d) for d in ds.order)]
    for reference, digest in references:
        body = ds.manifests[digest]
        for method in ("HEAD", "GET"):
            r = await c.request(
                method,
                f"/v2/{ns}/manifests/{reference}",
                headers={"Accept": f"{OCI_INDEX}, {OCI_MANIFEST}"},
            )
            assert r.status == 200
            assert r.headers["Content-Type"] == media_type_of(body)
            assert r.headers["Content-Length"] == str(len(body))
            assert r.headers["Docker-Content-Digest"] == digest
            assert await r.read() == (body if method == "GET" else b"")
    for digest, body in ds.blobs.items():
        await check_blob(c, ns, digest, body)
    for subject, expected in ds.referrers.items():
        manifests, _ = await _referrers(c, ns, subject)
        for goal in expected:
            found = [m for m in manifests if m["digest"] == goal["digest"]]
            assert len(found) == 1, (subject, goal)
            got = found[0]
            assert got["mediaType"] == goal["mediaType"]
            assert got["size"] == goal["size"]
            assert got.get("artifactType") == goal.get("artifactType")
            assert goal.get("annotations", {}).items() <= got.get("annotations", {}).items()


async def delete_data_set(c: Client, ns: str, ds: DataSet) -> None:
    for tag in ds.tags:
        assert (await c.delete(f"/v2/{ns}/manifests/{tag}")).status in (202, 404)
        assert (await c.head(f"/v2/{ns}/manifests/{tag}")).status == 404
    for digest in reversed(ds.order):
        assert (await c.delete(f"/v2/{ns}/manifests/{digest}")).status == 202
        assert (await c.head(f"/v2/{ns}/manifests/{digest}")).status == 404
    for digest in ds.blobs:
        await delete_blob(c, ns, digest)


async def test_data_sets(registry: Client) -> None:
    c = registry
    # The suite starts on an empty repository: a tag list of 200 or 404, an empty referrers list.
    assert (await c.get(f"/v2/{NS}/tags/list")).status == 404
    manifests, _ = await _referrers(c, NS, digest_of(b"random subject"))
    assert manifests == []
    for ds in conformance2_data_sets():
        await push_data_set(c, NS, ds)
        await check_data_set(c, NS, ds)
        await delete_data_set(c, NS, ds)
    assert await _tag_list(c, NS) == []


async def test_manifest_errors(registry: Client) -> None:
    c = registry
    ds = DataSet("bad-digest-image")
    digest = ds.gen_image()
    for i, (blob_digest, body) in enumerate(ds.blobs.items()):
        assert await [push_post_put, push_chunked][i % 2](c, NS, blob_digest, body) == 201
    # Whitespace appended after the digest was taken.
    r = await c.put(
        f"/v2/{NS}/manifests/{digest}",
        data=ds.manifests[digest] + b"  ",
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert r.status == 400
    assert (await r.json())["errors"][0]["code"] == "DIGEST_INVALID"
    r = await c.put(
        f"/v2/{NS}/manifests/sha256:baddigeststring",
        data=ds.manifests[digest],
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert r.status == 400
    assert (await c.get(f"/v2/{NS}/manifests/sha256:baddigeststring")).status in (400, 404)
    assert (await c.get(f"/v2/{NS}/manifests/{digest_of(b'random')}")).status == 404
    assert (await c.get(f"/v2/{NS}/manifests/missing-abcdefghijklmnopqrst")).status == 404
    assert (await c.head(f"/v2/{NS}/manifests/{digest}")).status == 404
