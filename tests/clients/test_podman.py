"""podman against Dockyard (vfs storage, plain HTTP): push, pull into an empty storage,
pull by digest, and the catalog and tag listings behind ``podman search``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.clients.commands import require
from tests.clients.images import BuiltImage, ContainerStorage
from tests.clients.server import Dockyard

TLS = "--tls-verify=false"
REPO = "podman/img"
LOCAL = "localhost/podman-test:v1"


def inspect_image(storage: ContainerStorage, reference: str) -> dict[str, Any]:
    (info,) = json.loads(storage.podman("image", "inspect", reference))
    assert isinstance(info, dict)
    return info


def assert_files(storage: ContainerStorage, reference: str, files: dict[str, bytes]) -> None:
    """The image's root filesystem holds exactly ``files``' bytes at their paths."""
    root = Path(storage.podman("image", "mount", reference))
    try:
        for path, data in files.items():
            assert (root / path.lstrip("/")).read_bytes() == data, path
    finally:
        storage.podman("image", "unmount", reference)


@pytest.fixture(scope="module")
def pushed(
    dockyard: Dockyard, image: BuiltImage, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, str]:
    """The test image loaded into podman and pushed to ``podman/img:v1``:
    (the digest podman reports for the push, the image id)."""
    require("podman")
    work = tmp_path_factory.mktemp("podman-push")
    digest_file = work / "digest"
    with ContainerStorage.create(work / "storage") as storage:
        image_id = storage.podman("pull", "--quiet", image.reference)
        storage.podman("tag", image_id, LOCAL)
        target = f"{dockyard.host}/{REPO}:v1"
        storage.podman("push", "--quiet", TLS, "--digestfile", digest_file, LOCAL, target)
    return digest_file.read_text().strip(), image_id


def test_push_stores_what_podman_reports(
    dockyard: Dockyard, image: BuiltImage, pushed: tuple[str, str]
) -> None:
    digest, image_id = pushed
    served = dockyard.manifest(REPO, "v1")
    assert served.digest == digest
    config = served.doc["config"]["digest"]
    assert config == f"sha256:{image_id}"
    # podman recompresses the layers it pushes, but the config (the image id) is the
    # one built into the layout, byte for byte.
    assert dockyard.blob(REPO, config) == image.layout.blob(config)
    for layer in served.doc["layers"]:
        dockyard.blob(REPO, layer["digest"])


def test_pull_into_empty_storage(
    dockyard: Dockyard, image: BuiltImage, pushed: tuple[str, str], storage: ContainerStorage
) -> None:
    digest, image_id = pushed
    reference = f"{dockyard.host}/{REPO}:v1"
    storage.podman("pull", "--quiet", TLS, reference)
    info = inspect_image(storage, reference)
    assert info["Id"] == image_id
    assert info["Digest"] == digest
    assert f"{dockyard.host}/{REPO}@{digest}" in info["RepoDigests"]
    assert_files(storage, reference, image.files)


def test_pull_by_digest(
    dockyard: Dockyard, image: BuiltImage, pushed: tuple[str, str], storage: ContainerStorage
) -> None:
    digest, image_id = pushed
    reference = f"{dockyard.host}/{REPO}@{digest}"
    assert storage.podman("pull", "--quiet", TLS, reference) == image_id
    assert inspect_image(storage, reference)["Digest"] == digest
    assert_files(storage, reference, image.files)


def test_search_lists_catalog_and_tags(
    dockyard: Dockyard, pushed: tuple[str, str], storage: ContainerStorage
) -> None:
    digest, _ = pushed
    storage.podman("pull", "--quiet", TLS, f"{dockyard.host}/{REPO}:v1")
    storage.podman("tag", f"{dockyard.host}/{REPO}:v1", f"{dockyard.host}/{REPO}:v2")
    storage.podman("push", "--quiet", TLS, f"{dockyard.host}/{REPO}:v2")
    assert dockyard.manifest_digest(REPO, "v2") == digest

    (listed,) = json.loads(
        storage.podman("search", TLS, "--list-tags", "--format", "json", f"{dockyard.host}/{REPO}")
    )
    assert listed["Tags"] == ["v1", "v2"]
    found = json.loads(storage.podman("search", TLS, "--format", "json", f"{dockyard.host}/"))
    assert f"{dockyard.host}/{REPO}" in [row["Name"] for row in found]
