"""``/v2/_catalog``: every repository in lexical order, paginated like tag lists."""

from __future__ import annotations

import re

import pytest

from tests.helpers import Client, assert_error, push_blob, push_image

REPOS = ["zeta", "alpha/one", "alpha", "alpha/one/two", "b-c", "b.c", "b_c", "b__c", "0day"]
LINK = re.compile(r'<(?P<url>[^>]+)>; rel="next"')


async def _page(client: Client, url: str) -> tuple[list[str], str | None]:
    r = await client.get(url)
    assert r.status == 200, await r.text()
    repositories: list[str] = (await r.json())["repositories"]
    link = r.headers.get("Link")
    if link is None:
        return repositories, None
    m = LINK.fullmatch(link)
    assert m, link
    return repositories, m["url"]


async def _populate(client: Client) -> None:
    for i, repo in enumerate(REPOS):
        await push_blob(client, repo, f"blob {i}".encode())


async def test_empty_registry_has_an_empty_catalog(registry: Client) -> None:
    r = await registry.get("/v2/_catalog")
    assert r.status == 200
    assert await r.json() == {"repositories": []}
    assert "Link" not in r.headers


async def test_catalog_lists_every_repository_in_lexical_order(registry: Client) -> None:
    await _populate(registry)
    await push_image(registry, "with/image", "v1")
    repositories, next_url = await _page(registry, "/v2/_catalog")
    assert repositories == sorted([*REPOS, "with/image"])
    assert next_url is None


async def test_pagination_follows_link_headers(registry: Client) -> None:
    await _populate(registry)
    repositories, next_url = await _page(registry, "/v2/_catalog?n=2")
    assert repositories == sorted(REPOS)[:2]
    assert next_url == f"/v2/_catalog?n=2&last={repositories[-1]}"
    collected = list(repositories)
    while next_url is not None:
        repositories, next_url = await _page(registry, next_url)
        assert 0 < len(repositories) <= 2
        collected += repositories
    assert collected == sorted(REPOS)


async def test_last_and_n(registry: Client) -> None:
    await _populate(registry)
    ordered = sorted(REPOS)
    repositories, _ = await _page(registry, f"/v2/_catalog?last={ordered[3]}")
    assert repositories == ordered[4:]
    repositories, next_url = await _page(registry, f"/v2/_catalog?n=3&last={ordered[3]}")
    assert repositories == ordered[4:7]
    assert next_url is not None
    repositories, next_url = await _page(registry, f"/v2/_catalog?n={len(REPOS)}")
    assert repositories == ordered
    assert next_url is None


async def test_n_zero_is_an_empty_list_without_link(registry: Client) -> None:
    await _populate(registry)
    r = await registry.get("/v2/_catalog?n=0")
    assert r.status == 200
    assert await r.json() == {"repositories": []}
    assert "Link" not in r.headers


@pytest.mark.parametrize("n", ["-1", "x", "2.0"])
async def test_malformed_n_is_rejected(registry: Client, n: str) -> None:
    r = await registry.get(f"/v2/_catalog?n={n}")
    await assert_error(r, 400, "PAGINATION_NUMBER_INVALID")


async def test_rejected_pushes_create_no_repository(registry: Client) -> None:
    await push_blob(registry, "real", b"x")
    r = await registry.post("/v2/ghost/blobs/uploads/?digest=sha256:" + "0" * 64, data=b"x")
    await assert_error(r, 400, "DIGEST_INVALID")
    r = await registry.put(
        "/v2/ghost2/manifests/v1",
        data=b"not json",
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )
    await assert_error(r, 400, "MANIFEST_INVALID")
    repositories, _ = await _page(registry, "/v2/_catalog")
    assert repositories == ["real"]
