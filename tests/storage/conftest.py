"""The blob store implementations the conformance suite runs against.

Every test in ``test_blobstore.py`` runs once per backend. A backend is a factory of
:class:`~dockyard.storage.BlobStore` instances over one shared backing store (one
directory, later one bucket): two instances stand for two processes or replicas. To add
an implementation (S3 through moto's server), add its name to ``BACKENDS`` and a branch
to :func:`backend` that starts whatever it needs and tears it down after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dockyard.storage import BlobStore, FilesystemBlobStore
from dockyard.storage.s3 import open_object_store
from dockyard.storage.timed import TimedBlobStore

# "timed" is the metrics decorator over the filesystem store: a decorator must keep the
# contract of what it wraps.
BACKENDS = ["filesystem", "timed", "s3"]


@dataclass(frozen=True)
class StoreBackend:
    """One implementation under test, and how to open another view of the same data."""

    name: str
    open_store: Callable[[], BlobStore]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreBackend]:
    root = tmp_path / "blobstore"
    if request.param == "filesystem":
        yield StoreBackend("filesystem", lambda: FilesystemBlobStore(root))
    elif request.param == "timed":
        timings: list[tuple[str, float]] = []

        def observe(operation: str, seconds: float) -> None:
            assert seconds >= 0
            timings.append((operation, seconds))

        yield StoreBackend("timed", lambda: TimedBlobStore(FilesystemBlobStore(root), observe))
    elif request.param == "s3":
        # moto's server (session-wide), a fresh prefix per test; each open_store() is
        # another client on the same prefix, as another replica would be.
        config = request.getfixturevalue("s3").storage()
        del config["kind"]
        yield StoreBackend("s3", lambda: open_object_store("s3", **config))
    else:  # pragma: no cover - a name in BACKENDS without a branch here
        raise AssertionError(f"no fixture for backend {request.param!r}")


# Stores are opened in synchronous fixtures: constructors may touch the disk, which is
# fine at start-up but not on the event loop.
@pytest.fixture
def store(backend: StoreBackend) -> BlobStore:
    """The store a test works with."""
    return backend.open_store()


@pytest.fixture
def other_store(backend: StoreBackend) -> BlobStore:
    """A second instance on the same data: what another process or replica sees."""
    return backend.open_store()
