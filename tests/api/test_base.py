"""``GET /v2/`` and the error envelope of paths outside the API."""

from __future__ import annotations

import os
import re

from dockyard.api import middleware
from tests.helpers import Client, assert_error


async def test_version_check(registry: Client) -> None:
    r = await registry.get("/v2/")
    assert r.status == 200
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert r.headers["X-Request-Id"]
    assert await r.json() == {}


async def test_fresh_request_ids_are_unique(registry: Client) -> None:
    ids = [(await registry.get("/v2/")).headers["X-Request-Id"] for _ in range(50)]
    assert len(set(ids)) == 50
    assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in ids)


def test_a_forked_worker_draws_its_own_request_ids() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: as a worker process after the fork
        os.write(write, middleware._new_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    parent = middleware._new_id()
    assert len(child) == len(parent) == 32
    assert child[:20] != parent[:20], "each process has its own random prefix"


async def test_request_id_is_echoed(registry: Client) -> None:
    r = await registry.get("/v2/", headers={"X-Request-Id": "abc123"})
    assert r.headers["X-Request-Id"] == "abc123"


async def test_unknown_path_is_an_oci_error(registry: Client) -> None:
    r = await registry.get("/v2/foo/bar/nothing-here")
    await assert_error(r, 404, "NOT_FOUND")


async def test_wrong_method_is_unsupported(registry: Client) -> None:
    r = await registry.post("/v2/_catalog")
    await assert_error(r, 405, "UNSUPPORTED")
