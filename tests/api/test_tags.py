"""``/v2/<name>/tags/list``: lexical order, ``n``/``last`` pagination, the ``Link`` header,
and the tag grammar (spec end-8a, end-8b)."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from dockyard.app import build_app
from dockyard.config import load_settings
from tests.helpers import (
    Client,
    assert_error,
    assert_raw_error,
    image_manifest,
    push_blob,
    put_manifest,
    raw_request,
    sha256,
    tags_of,
)

REPO = "tags/demo"
CONFIG = b'{"architecture":"amd64","os":"linux"}'
# ASCII order puts digits before uppercase before "_" before lowercase; "." and "-" early.
TAGS = ["latest", "v1.0", "v1.0-rc.1", "V2", "9", "10", "_private", "a-b", "a.b", "a_b", "Z"]
LINK = re.compile(r'<(?P<url>[^>]+)>; rel="next"')


async def _tag_all(client: Client, repo: str, tags: list[str]) -> str:
    """Push one manifest under every tag in ``tags`` (in a shuffled order); its digest."""
    await push_blob(client, repo, CONFIG)
    body = image_manifest(CONFIG, [])
    for tag in random.sample(tags, len(tags)):
        r = await put_manifest(client, repo, tag, body)
        assert r.status == 201, await r.text()
    return sha256(body)


async def _page(client: Client, url: str) -> tuple[list[str], str | None]:
    r = await client.get(url)
    assert r.status == 200, await r.text()
    doc = await r.json()
    link = r.headers.get("Link")
    next_url = None
    if link is not None:
        m = LINK.fullmatch(link)
        assert m, link
        next_url = m["url"]
    return doc["tags"], next_url


async def test_tags_are_listed_in_lexical_order(registry: Client) -> None:
    await _tag_all(registry, REPO, TAGS)
    r = await registry.get(f"/v2/{REPO}/tags/list")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert "Link" not in r.headers
    assert await r.json() == {"name": REPO, "tags": sorted(TAGS)}


async def test_n_limits_and_link_points_to_the_next_page(registry: Client) -> None:
    await _tag_all(registry, REPO, TAGS)
    tags, next_url = await _page(registry, f"/v2/{REPO}/tags/list?n=4")
    assert tags == sorted(TAGS)[:4]
    assert next_url == f"/v2/{REPO}/tags/list?n=4&last={tags[-1]}"
    collected = list(tags)
    while next_url is not None:
        tags, next_url = await _page(registry, next_url)
        assert 0 < len(tags) <= 4
        collected += tags
    assert collected == sorted(TAGS)


async def test_last_starts_after_the_given_tag(registry: Client) -> None:
    await _tag_all(registry, REPO, TAGS)
    ordered = sorted(TAGS)
    tags, _ = await _page(registry, f"/v2/{REPO}/tags/list?last={ordered[2]}")
    assert tags == ordered[3:]
    tags, next_url = await _page(registry, f"/v2/{REPO}/tags/list?n=2&last={ordered[2]}")
    assert tags == ordered[3:5]
    assert next_url is not None
    # A ``last`` that is not itself a tag still splits the order where it would sort.
    tags, _ = await _page(registry, f"/v2/{REPO}/tags/list?last=a-c")
    assert tags == [t for t in ordered if t > "a-c"]
    tags, next_url = await _page(registry, f"/v2/{REPO}/tags/list?last={ordered[-1]}")
    assert tags == []
    assert next_url is None


async def test_n_equal_to_the_count_has_no_link(registry: Client) -> None:
    await _tag_all(registry, REPO, TAGS)
    tags, next_url = await _page(registry, f"/v2/{REPO}/tags/list?n={len(TAGS)}")
    assert tags == sorted(TAGS)
    assert next_url is None
    tags, next_url = await _page(registry, f"/v2/{REPO}/tags/list?n=1000")
    assert tags == sorted(TAGS)
    assert next_url is None


async def test_n_zero_is_an_empty_list_without_link(registry: Client) -> None:
    await _tag_all(registry, REPO, TAGS)
    r = await registry.get(f"/v2/{REPO}/tags/list?n=0")
    assert r.status == 200
    assert await r.json() == {"name": REPO, "tags": []}
    assert "Link" not in r.headers


@pytest.mark.parametrize("n", ["-1", "abc", "1.5", "%201"])
async def test_malformed_n_is_rejected(registry: Client, n: str) -> None:
    await _tag_all(registry, REPO, ["v1"])
    r = await registry.get(f"/v2/{REPO}/tags/list?n={n}")
    await assert_error(r, 400, "PAGINATION_NUMBER_INVALID")


async def test_unknown_repository_is_name_unknown(registry: Client) -> None:
    for url in ("/v2/no/such/repo/tags/list", "/v2/no/such/repo/tags/list?n=0"):
        r = await registry.get(url)
        error = await assert_error(r, 404, "NAME_UNKNOWN")
        assert error["detail"] == {"name": "no/such/repo"}


async def test_repository_without_tags_lists_none(registry: Client) -> None:
    await push_blob(registry, REPO, CONFIG)
    r = await registry.get(f"/v2/{REPO}/tags/list")
    assert r.status == 200
    assert await r.json() == {"name": REPO, "tags": []}


async def test_deleted_tags_leave_the_list(registry: Client) -> None:
    await _tag_all(registry, REPO, ["a", "b", "c"])
    r = await registry.delete(f"/v2/{REPO}/manifests/b")
    assert r.status == 202
    assert await tags_of(registry, REPO) == ["a", "c"]


async def test_tags_of_one_repository_only(registry: Client) -> None:
    await _tag_all(registry, "tags/one", ["one"])
    await _tag_all(registry, "tags/one/nested", ["nested"])
    assert await tags_of(registry, "tags/one") == ["one"]
    assert await tags_of(registry, "tags/one/nested") == ["nested"]


async def test_128_character_tag_is_accepted(registry: Client) -> None:
    tag = "t" * 128
    digest = await _tag_all(registry, REPO, [tag])
    assert await tags_of(registry, REPO) == [tag]
    r = await registry.get(f"/v2/{REPO}/manifests/{tag}")
    assert r.status == 200
    assert r.headers["Docker-Content-Digest"] == digest


@pytest.mark.parametrize("tag", ["A", "_", "0", "a" * 128, "v1.0.0-rc.1_build-7", "UPPER_lower"])
async def test_valid_tags(registry: Client, tag: str) -> None:
    await _tag_all(registry, REPO, [tag])
    assert await tags_of(registry, REPO) == [tag]


@pytest.mark.parametrize(
    "tag", ["t" * 129, ".hidden", "-dash", "sp%20ace", "caf%C3%A9", "a+b", "a%2Fb", "%00"]
)
async def test_invalid_tags_are_rejected_and_nothing_is_stored(registry: Client, tag: str) -> None:
    await push_blob(registry, REPO, CONFIG)
    body = image_manifest(CONFIG, [])
    r = await raw_request(
        registry,
        "PUT",
        f"/v2/{REPO}/manifests/{tag}",
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        body=body,
    )
    if r.status == 404:  # an escaped "/" makes the path match no route at all
        assert_raw_error(r, 404, "NOT_FOUND")
    else:
        assert_raw_error(r, 400, "MANIFEST_INVALID")
    assert await tags_of(registry, REPO) == []
    r2 = await registry.get(f"/v2/{REPO}/manifests/{sha256(body)}")
    await assert_error(r2, 404, "MANIFEST_UNKNOWN")


async def test_link_is_absolute_when_a_public_url_is_configured(
    aiohttp_client: object, tmp_path: Path
) -> None:
    settings = load_settings(
        overrides={
            "server": {"data_dir": tmp_path / "data", "public_url": "https://reg.example.com"}
        }
    )
    client: TestClient = await aiohttp_client(build_app(settings))  # type: ignore[operator,type-arg]
    await _tag_all(client, REPO, ["a", "b", "c"])
    r = await client.get(f"/v2/{REPO}/tags/list?n=1")
    assert (
        r.headers["Link"] == f'<https://reg.example.com/v2/{REPO}/tags/list?n=1&last=a>; rel="next"'
    )
