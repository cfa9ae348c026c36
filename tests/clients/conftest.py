"""Fixtures for the real-client tests: one Dockyard process, test images, private daemons.

One ``dockyard serve --port 0`` runs for the whole session; each client module pushes to
repositories named after the client, so modules never see each other's images. Images
are built once per session with buildah and umoci (no daemon, no network) and reused.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clients.commands import require
from tests.clients.daemons import Ctr, Docker, start_containerd, start_dockerd
from tests.clients.images import (
    ARCHES,
    BuiltImage,
    ContainerStorage,
    PlatformImages,
    build_buildah_image,
    build_platform_image,
    build_umoci_image,
)
from tests.clients.server import Dockyard


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: starts a daemon (dockerd, containerd) or moves several images"
    )


@pytest.fixture(scope="session")
def dockyard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dockyard]:
    """The registry under test, as a real subprocess on an ephemeral port."""
    work = tmp_path_factory.mktemp("dockyard")
    server = Dockyard.start(work / "data", work / "server.log")
    yield server
    code = server.stop()
    log = server.log_since(0)
    assert code == 0, f"dockyard serve exited {code} on SIGTERM:\n{log[-3000:]}"
    errors = Dockyard.server_errors(log)
    assert not errors, "the server failed requests:\n" + "\n".join(errors)


@pytest.fixture(autouse=True)
def no_server_errors(dockyard: Dockyard) -> Iterator[None]:
    """Fail a test during which the server logged an error or answered 5xx.

    Clients retry and fall back quietly (a failed mount becomes an upload, a 500 on a
    HEAD becomes a re-push), so a test can pass on the client's side while the
    server misbehaves; the log tells.
    """
    if dockyard.process.poll() is not None:
        # Fail at once: clients retry a refused connection for minutes (oras-py: 133 s).
        pytest.fail(f"dockyard serve has exited:\n{dockyard.log_since(0)[-3000:]}")
    offset = dockyard.log_offset()
    yield
    errors = Dockyard.server_errors(dockyard.log_since(offset))
    assert not errors, "the server failed requests during this test:\n" + "\n".join(errors)


@pytest.fixture(scope="session")
def build_storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ContainerStorage]:
    """The containers-storage the test images are built in."""
    require("buildah")
    with ContainerStorage.create(tmp_path_factory.mktemp("build-storage")) as storage:
        yield storage


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[ContainerStorage]:
    """An empty containers-storage for one test: a pull into it really pulls."""
    with ContainerStorage.create(tmp_path / "storage") as storage:
        yield storage


@pytest.fixture(scope="session")
def image(build_storage: ContainerStorage, tmp_path_factory: pytest.TempPathFactory) -> BuiltImage:
    """A two-layer image built with buildah from scratch, in an OCI layout."""
    work = tmp_path_factory.mktemp("buildah-image")
    return build_buildah_image(build_storage, work, "localhost/dockyard-test")


@pytest.fixture(scope="session")
def umoci_image(tmp_path_factory: pytest.TempPathFactory) -> BuiltImage:
    """A one-layer image built with umoci alone, in an OCI layout."""
    require("umoci")
    return build_umoci_image(tmp_path_factory.mktemp("umoci-image"))


@pytest.fixture(scope="session")
def platform_images(
    build_storage: ContainerStorage, tmp_path_factory: pytest.TempPathFactory
) -> PlatformImages:
    """Two images that differ by architecture, gathered in one buildah manifest list."""
    work = tmp_path_factory.mktemp("platform-images")
    list_name = "localhost/dockyard-multi:v1"
    build_storage.buildah("manifest", "create", list_name)
    files = {}
    for arch in ARCHES:
        name = f"localhost/dockyard-multi-{arch}:v1"
        files[arch] = build_platform_image(build_storage, work, name, arch)
        build_storage.buildah("manifest", "add", list_name, f"containers-storage:{name}")
    return PlatformImages(list_name, files)


@pytest.fixture(scope="session")
def short_tmp() -> Iterator[Path]:
    """A short directory under /tmp for daemon sockets (108-byte unix path limit)."""
    path = Path(tempfile.mkdtemp(prefix="dy-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def docker(short_tmp: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Docker]:
    """A private dockerd (vfs storage) and the docker CLI bound to it."""
    require("dockerd", "docker")
    run_dir = short_tmp / "docker"
    run_dir.mkdir()
    client = start_dockerd(run_dir, tmp_path_factory.mktemp("dockerd-data"))
    yield client
    client.daemon.stop()


@pytest.fixture(scope="session")
def ctr(short_tmp: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ctr]:
    """A private containerd and the ctr CLI bound to it."""
    require("containerd", "ctr")
    run_dir = short_tmp / "containerd"
    run_dir.mkdir()
    client = start_containerd(run_dir, tmp_path_factory.mktemp("containerd-root"))
    yield client
    client.daemon.stop()
