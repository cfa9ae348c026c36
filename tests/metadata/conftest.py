"""The metadata databases the metadata tests run against.

Each test gets a fresh, empty database per backend. ``sqlite`` is opened as the server
opens it (with the SQLite point-read path); ``sqlite-engine`` skips that path, so the
plain SQLAlchemy queries that PostgreSQL runs are exercised on SQLite too;
``postgresql`` is a fresh database on the session's throw-away cluster. A test for one
backend only parametrizes ``metadata_backend`` indirectly with that name.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dockyard.metadata import MetadataStore, create_engine, upgrade
from tests.services import PostgresCluster

BACKENDS = ["sqlite", "sqlite-engine", "postgresql"]


@dataclass(frozen=True)
class MetadataBackend:
    """One database under test: its URL, and whether to open the fast read path."""

    name: str
    url: str
    fast_reads: bool = True


@pytest.fixture(params=BACKENDS)
def metadata_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MetadataBackend]:
    if request.param in ("sqlite", "sqlite-engine"):
        url = f"sqlite:///{tmp_path / 'metadata.db'}"
        yield MetadataBackend(request.param, url, fast_reads=request.param == "sqlite")
    elif request.param == "postgresql":
        # An empty database on the session's cluster: the tests migrate it themselves.
        cluster: PostgresCluster = request.getfixturevalue("postgres")
        yield MetadataBackend("postgresql", cluster.url(cluster.create_database()))
    else:  # pragma: no cover - a name in BACKENDS without a branch here
        raise AssertionError(f"no fixture for backend {request.param!r}")


@pytest.fixture
async def engine(metadata_backend: MetadataBackend) -> AsyncIterator[AsyncEngine]:
    """An engine on the backend's empty database."""
    engine = await asyncio.to_thread(create_engine, metadata_backend.url, 5)
    yield engine
    await engine.dispose()


@pytest.fixture
async def meta(
    metadata_backend: MetadataBackend, engine: AsyncEngine
) -> AsyncIterator[MetadataStore]:
    """A MetadataStore on a freshly migrated database, opened as the server opens it."""
    await upgrade(engine)
    store = MetadataStore(engine)
    if metadata_backend.fast_reads:
        await store.open()
    yield store
    await store.close()
