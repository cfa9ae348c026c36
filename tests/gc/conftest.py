"""Lifecycle fixtures: a registry whose GC has no grace period, and its core."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard import api
from dockyard.config import Settings, load_settings
from dockyard.core import Registry
from dockyard.oci import Digest
from dockyard.storage import BlobNotFound
from tests.helpers import Client
from tests.services import PostgresCluster, S3Server

QUOTA = 4096  # bytes: the "quota" namespace's limit in these tests


# Modules whose tests also run with PostgreSQL metadata (the SQL and locking that several
# replicas share), blobs on the filesystem, and with PostgreSQL metadata and blobs in S3.
BOTH_STACKS = {
    "test_collect.py",
    "test_race.py",
    "test_retention.py",
    "test_quota.py",
    "test_fsck.py",
}
GC_STACKS = ["embedded", "postgres", "postgres-s3"]
# Those of them that keep blobs on the filesystem (tests marked ``filesystem_blobs``).
FILESYSTEM_STACKS = ["embedded", "postgres"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "settings" in metafunc.fixturenames and metafunc.definition.path.name in BOTH_STACKS:
        on_files = metafunc.definition.get_closest_marker("filesystem_blobs") is not None
        stacks = FILESYSTEM_STACKS if on_files else GC_STACKS
        metafunc.parametrize("stack", stacks, indirect=True)


@pytest.fixture
def settings(stack: str, data_dir: Path, request: pytest.FixtureRequest) -> Iterator[Settings]:
    """No grace period (blobs are collectable at once) and a small quota on ``quota/``."""
    overrides: dict[str, Any] = {
        "server": {"data_dir": data_dir},
        "gc": {"grace": "0s", "upload_expiry": "24h"},
        "quota": [{"namespace": "quota", "size": QUOTA}],
    }
    if stack == "embedded":
        yield load_settings(overrides=overrides)
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    database = cluster.fresh_database()
    overrides["metadata"] = {"url": cluster.url(database)}
    if stack == "postgres-s3":
        s3: S3Server = request.getfixturevalue("s3")
        overrides["storage"] = s3.storage()
    yield load_settings(overrides=overrides)
    cluster.drop_database(database)


async def stored(client: Client, digest: str) -> bool:
    """Whether the blob store (whichever it is) holds ``digest``'s bytes."""
    try:
        await core(client).store.stat(Digest.parse(digest))
    except BlobNotFound:
        return False
    return True


def core(client: Client) -> Registry:
    """The registry core behind a test server."""
    app = client.app
    assert app is not None
    return app[api.REGISTRY]


def blob_file(data_dir: Path, digest: str) -> Path:
    """Where the filesystem store keeps ``digest``."""
    algorithm, encoded = digest.split(":", 1)
    return data_dir / "blobs" / "blobs" / algorithm / encoded[:2] / encoded
