"""Fixtures: a fake upstream in the test's loop, and Dockyard caching it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from dockyard.app import build_app
from dockyard.config import load_settings
from tests.helpers import Client
from tests.proxy.fake_upstream import FakeUpstream, serve

CacheFactory = Callable[..., Awaitable[Client]]


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    """The fake upstream, listening on loopback."""
    upstream = FakeUpstream()
    server = await serve(upstream)
    yield upstream
    upstream.hang = False
    if upstream.gate is not None:
        upstream.gate.set()
    await server.close()


@pytest.fixture
def make_cache(
    aiohttp_client: Callable[..., Awaitable[TestClient]],  # type: ignore[type-arg]
    tmp_path: Path,
) -> CacheFactory:
    """Start Dockyard with the given ``[[upstreams]]`` tables; return its client."""
    count = 0

    async def make(*upstreams: dict[str, Any]) -> Client:
        nonlocal count
        count += 1
        settings = load_settings(
            overrides={
                "server": {"data_dir": tmp_path / f"dockyard-{count}"},
                "upstreams": list(upstreams),
            }
        )
        client: Client = await aiohttp_client(build_app(settings))
        return client

    return make


@pytest.fixture
async def cache(make_cache: CacheFactory, fake: FakeUpstream) -> Client:
    """Dockyard caching the fake upstream under ``cache/``."""
    return await make_cache({"name": "fake", "url": fake.url, "prefix": "cache/"})
