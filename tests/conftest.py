"""Shared fixtures: the real registry on an ephemeral port, and the blocking-call guard."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from blockbuster import BlockBuster, blockbuster_ctx

from dockyard.app import build_app
from dockyard.config import Settings, load_settings
from tests.services import PostgresCluster, S3Server, postgres, s3

__all__ = ["postgres", "s3"]  # session fixtures, shared by every directory

# Migrations run once at start-up, before the first request; alembic reads its scripts
# from disk synchronously there and nowhere else. SQLite point reads run on the loop on
# purpose (see dockyard/metadata/sqlite_reads.py): a thread hop costs more than they do.
_MAY_BLOCK = {
    "dockyard/metadata/migrate.py": ["_upgrade", "_current"],
    "dockyard/metadata/sqlite_reads.py": ["one", "first_column"],
    "dockyard/metadata/sqlite_writes.py": ["_on_loop"],
    # asyncpg looks for ~/.pgpass when a pooled connection opens without a password:
    # a stat of one small file, once per connection, not per request.
    "asyncpg/connect_utils.py": ["_read_password_file"],
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


# The stacks the API suite runs on: the embedded default, and what N replicas share.
STACKS = ["embedded", "postgres-s3"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test of tests/api (the ones using ``settings``) once per stack."""
    if "settings" in metafunc.fixturenames and metafunc.definition.path.parent.name == "api":
        metafunc.parametrize("stack", STACKS, indirect=True)


@pytest.fixture
def stack(request: pytest.FixtureRequest) -> str:
    """The storage and metadata stack under test; "embedded" unless parametrized."""
    return str(getattr(request, "param", "embedded"))


@pytest.fixture
def settings(stack: str, data_dir: Path, request: pytest.FixtureRequest) -> Iterator[Settings]:
    overrides: dict[str, Any] = {"server": {"data_dir": data_dir}}
    if stack != "postgres-s3":
        yield load_settings(overrides=overrides)
        return
    # Requested only here, so the embedded runs never start PostgreSQL or moto.
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    s3: S3Server = request.getfixturevalue("s3")
    database = cluster.fresh_database()
    overrides["metadata"] = {"url": cluster.url(database)}
    overrides["storage"] = s3.storage()
    yield load_settings(overrides=overrides)
    cluster.drop_database(database)


@pytest.fixture
async def registry(aiohttp_client: object, settings: Settings) -> TestClient:  # type: ignore[type-arg]
    """An HTTP client talking to a real Dockyard server on an ephemeral port."""
    client: TestClient = await aiohttp_client(build_app(settings))  # type: ignore[operator,type-arg]
    return client
