"""Repository names: the spec's grammar, at most 255 characters, and never a path.

Requests go out on a raw socket so no client library tidies the path (``..``, ``//``,
``%2F``) before the server sees it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import (
    OCI_MANIFEST,
    Client,
    assert_raw_error,
    image_manifest,
    open_uploads,
    push_blob,
    push_image,
    raw_request,
    sha256,
)

DIGEST = sha256(b"payload")

INVALID = [
    "Upper/case",
    "upper/Case",
    "a/../b",
    "..",
    "a/./b",
    "a//b",
    "a/",
    "/a",
    "a..b",
    "a___b",
    "-a",
    "a-",
    "_a",
    "a.",
    ".a",
    "a b".replace(" ", "%20"),
    "a%2Fb",
    "a%2fb",
    "%61bc",
    "a:b",
    "a@b",
    "x" * 256,
    "a/" + "b" * 254,
]

VALID = ["a", "a.b", "a_b", "a__b", "a-b", "a---b", "a/b/c/d", "0/1", "x" * 255]


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


ENDPOINTS = [
    ("GET", "/tags/list"),
    ("GET", f"/blobs/{DIGEST}"),
    ("HEAD", f"/manifests/{DIGEST}"),
    ("POST", "/blobs/uploads/"),
    ("PUT", "/manifests/latest"),
    ("DELETE", f"/blobs/{DIGEST}"),
    ("GET", f"/referrers/{DIGEST}"),
]


@pytest.mark.parametrize("name", INVALID, ids=lambda name: name[:20])
async def test_invalid_names_are_name_invalid(registry: Client, name: str) -> None:
    for method, suffix in ENDPOINTS:
        body = image_manifest(b"{}", []) if method == "PUT" else b""
        headers = {"Content-Type": OCI_MANIFEST} if method == "PUT" else {}
        r = await raw_request(registry, method, f"/v2/{name}{suffix}", headers=headers, body=body)
        if method == "HEAD":
            assert r.status == 400, suffix
            assert r.body == b""
        else:
            error = assert_raw_error(r, 400, "NAME_INVALID")
            assert isinstance(error["detail"]["name"], str)


@pytest.mark.parametrize("name", VALID, ids=lambda name: name[:20])
async def test_valid_names(registry: Client, name: str) -> None:
    digest = await push_blob(registry, name, b"payload")
    r = await raw_request(registry, "GET", f"/v2/{name}/blobs/{digest}")
    assert r.status == 200
    assert r.body == b"payload"
    r = await raw_request(registry, "GET", f"/v2/{name}/tags/list")
    assert r.status == 200
    assert r.json() == {"name": name, "tags": []}


async def test_escaped_slash_does_not_reach_the_nested_repository(registry: Client) -> None:
    digest, _ = await push_image(registry, "team/app", "v1")
    for target in (
        "/v2/team%2Fapp/tags/list",
        "/v2/team%2Fapp/manifests/v1",
        f"/v2/team%2fapp/manifests/{digest}",
        f"/v2/team%2Fapp/blobs/{sha256(b'x')}",
    ):
        r = await raw_request(registry, "GET", target)
        error = assert_raw_error(r, 400, "NAME_INVALID")
        assert "%" in error["detail"]["name"]
    r = await raw_request(registry, "GET", "/v2/team/app/tags/list")
    assert r.json() == {"name": "team/app", "tags": ["v1"]}


async def test_dot_segments_are_not_resolved(registry: Client) -> None:
    await push_image(registry, "team/app", "v1")
    for target in ("/v2/team/x/../app/tags/list", "/v2/team/./app/tags/list"):
        r = await raw_request(registry, "GET", target)
        assert_raw_error(r, 400, "NAME_INVALID")


async def test_names_never_become_paths_on_disk(registry: Client, data_dir: Path) -> None:
    digest = await push_blob(registry, "deep/nested/repo", b"payload")
    before = _files(data_dir)
    assert not any("deep" in part or "nested" in part for part in before)
    hostile = [
        "/v2/../../etc/blobs/uploads/",
        "/v2/..%2F..%2Fetc/blobs/uploads/",
        "/v2/deep/nested/repo%2F..%2F..%2Fescape/blobs/uploads/",
        f"/v2/deep/nested/repo/blobs/uploads/..%2F..%2F{digest.split(':')[1]}",
    ]
    for target in hostile:
        r = await raw_request(registry, "POST", target)
        assert r.status in (400, 404, 405), (target, r.status, r.body)
        r = await raw_request(registry, "PATCH", target, body=b"evil")
        assert r.status in (400, 404, 405), (target, r.status, r.body)
    assert _files(data_dir) == before
    assert not (data_dir.parent / "escape").exists()
    assert await open_uploads(registry) == 0


async def test_invalid_name_opens_no_session_and_no_repository(
    registry: Client, data_dir: Path
) -> None:
    before = _files(data_dir)
    r = await raw_request(registry, "POST", "/v2/Bad/blobs/uploads/")
    assert_raw_error(r, 400, "NAME_INVALID")
    r = await raw_request(
        registry, "POST", f"/v2/Bad/blobs/uploads/?digest={DIGEST}", body=b"payload"
    )
    assert_raw_error(r, 400, "NAME_INVALID")
    assert await open_uploads(registry) == 0
    r = await raw_request(registry, "GET", "/v2/_catalog")
    assert r.json() == {"repositories": []}
    assert _files(data_dir) == before
