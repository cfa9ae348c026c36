"""Shared fixtures: the real registry on an ephemeral port, and the blocking-call guard."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from blockbuster import BlockBuster, blockbuster_ctx

from dockyard.app import build_app
from dockyard.config import Settings, load_settings

# Migrations run once at start-up, before the first request; alembic reads its scripts
# from disk synchronously there and nowhere else. SQLite point reads run on the loop on
# purpose (see dockyard/metadata/sqlite_reads.py): a thread hop costs more than they do.
_MAY_BLOCK = {
    "dockyard/metadata/migrate.py": ["_upgrade", "_current"],
    "dockyard/metadata/sqlite_reads.py": ["one"],
}


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    """Fail any test in which Dockyard makes a blocking call on the event loop."""
    with blockbuster_ctx(["dockyard"]) as bb:
        for function in bb.functions.values():
            for path, names in _MAY_BLOCK.items():
                function.can_block_in(path, names)
        yield bb


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return load_settings(overrides={"server": {"data_dir": data_dir}})


@pytest.fixture
async def registry(aiohttp_client: object, settings: Settings) -> TestClient:  # type: ignore[type-arg]
    """An HTTP client talking to a real Dockyard server on an ephemeral port."""
    client: TestClient = await aiohttp_client(build_app(settings))  # type: ignore[operator,type-arg]
    return client
