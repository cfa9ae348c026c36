"""Read-only maintenance mode: pulls work, pushes and deletes answer 405 UNSUPPORTED."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient

from dockyard.app import build_app
from dockyard.config import load_settings
from tests.helpers import Client, assert_error, push_image, sha256


async def test_read_only_serves_pulls_and_refuses_writes(
    aiohttp_client: object, data_dir: Path
) -> None:
    writable = load_settings(overrides={"server": {"data_dir": data_dir}})
    client: Client = await aiohttp_client(build_app(writable))  # type: ignore[operator]
    digest, manifest = await push_image(client, "ro/app", "v1", layers=[b"ro layer"])
    await client.close()

    frozen = load_settings(overrides={"server": {"data_dir": data_dir, "read_only": True}})
    ro: TestClient = await aiohttp_client(build_app(frozen))  # type: ignore[operator,type-arg]
    r = await ro.get("/v2/ro/app/manifests/v1")
    assert r.status == 200
    assert await r.read() == manifest
    r = await ro.get(f"/v2/ro/app/blobs/{sha256(b'ro layer')}")
    assert await r.read() == b"ro layer"
    writes = [
        ("POST", "/v2/ro/app/blobs/uploads/"),
        ("PUT", "/v2/ro/app/manifests/v2"),
        ("DELETE", f"/v2/ro/app/manifests/{digest}"),
        ("DELETE", "/v2/ro/app/manifests/v1"),
        ("DELETE", f"/v2/ro/app/blobs/{sha256(b'ro layer')}"),
        ("PATCH", "/v2/ro/app/blobs/uploads/abc"),
    ]
    for method, path in writes:
        error = await assert_error(await ro.request(method, path, data=b"x"), 405, "UNSUPPORTED")
        assert "maintenance" in error["message"], (method, path)
    assert (await ro.get("/v2/ro/app/manifests/v1")).status == 200
    assert (await ro.get("/v2/ro/app/tags/list")).status == 200
