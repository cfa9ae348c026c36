"""``GET /v2/`` and the error envelope of paths outside the API."""

from __future__ import annotations

from tests.helpers import Client, assert_error


async def test_version_check(registry: Client) -> None:
    r = await registry.get("/v2/")
    assert r.status == 200
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert r.headers["X-Request-Id"]
    assert await r.json() == {}


async def test_request_id_is_echoed(registry: Client) -> None:
    r = await registry.get("/v2/", headers={"X-Request-Id": "abc123"})
    assert r.headers["X-Request-Id"] == "abc123"


async def test_unknown_path_is_an_oci_error(registry: Client) -> None:
    r = await registry.get("/v2/foo/bar/nothing-here")
    await assert_error(r, 404, "NOT_FOUND")


async def test_wrong_method_is_unsupported(registry: Client) -> None:
    r = await registry.post("/v2/_catalog")
    await assert_error(r, 405, "UNSUPPORTED")
