"""Fixtures of the scale-out tests: a shared database and bucket prefix, two replicas."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clients.server import Dockyard
from tests.scaleout.replicas import SharedState, start_replica
from tests.services import PostgresCluster, S3Server


@pytest.fixture
def shared(postgres: PostgresCluster, s3: S3Server) -> Iterator[SharedState]:
    """A fresh database at head and a fresh bucket prefix, shared by the replicas."""
    database = postgres.fresh_database()
    yield SharedState(postgres.url(database), s3.storage())
    postgres.drop_database(database)


def _stop(replica: Dockyard) -> None:
    if replica.process.poll() is None:
        code = replica.stop()
        assert code == 0, f"replica exited {code}:\n{replica.log_since(0)[-3000:]}"
    errors = Dockyard.server_errors(replica.log_since(0))
    assert not errors, "a replica failed requests:\n" + "\n".join(errors)


@pytest.fixture
def replicas(shared: SharedState, tmp_path: Path) -> Iterator[tuple[Dockyard, Dockyard]]:
    """Replicas A and B of one deployment; both checked for server errors at the end."""
    a = start_replica(shared, tmp_path, "a")
    b = start_replica(shared, tmp_path, "b")
    yield a, b
    for replica in (a, b):
        _stop(replica)
