"""A multi-platform image through Dockyard: an index of an amd64 and an arm64 image pushed
with ``buildah manifest push --all``, copied with ``skopeo copy --all``, pulled whole
into a layout and one platform at a time with podman."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.clients.commands import require, run
from tests.clients.images import ARCHES, ContainerStorage, PlatformImages
from tests.clients.layout import OciLayout, child_digests, image_blobs
from tests.clients.server import Dockyard, Manifest

pytestmark = pytest.mark.slow

TLS = "--tls-verify=false"
INDEXES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}
REPO = "multi/img"


@pytest.fixture(scope="module")
def pushed(
    dockyard: Dockyard,
    build_storage: ContainerStorage,
    platform_images: PlatformImages,
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """The manifest list pushed with every image in it; the index digest buildah reports."""
    digest_file = tmp_path_factory.mktemp("multi-push") / "digest"
    build_storage.buildah(
        "manifest", "push", "--quiet", "--all", TLS, "--digestfile", digest_file,
        platform_images.list_name, f"docker://{dockyard.host}/{REPO}:v1",
    )  # fmt: skip
    return digest_file.read_text().strip()


def children_by_arch(dockyard: Dockyard, repository: str, index: Manifest) -> dict[str, Manifest]:
    """Each child manifest of ``index``, fetched by digest from ``repository``."""
    children = {}
    for entry in index.doc["manifests"]:
        child = dockyard.manifest(repository, entry["digest"])
        assert child.media_type == entry["mediaType"]
        assert len(child.content) == entry["size"]
        children[entry["platform"]["architecture"]] = child
    return children


def copy_all(source: str, destination: str) -> None:
    require("skopeo")
    run(["skopeo", "copy", "--quiet", "--all", "--preserve-digests", "--src-tls-verify=false",
         "--dest-tls-verify=false", source, destination])  # fmt: skip


def test_index_and_children_are_served(
    dockyard: Dockyard,
    build_storage: ContainerStorage,
    platform_images: PlatformImages,
    pushed: str,
) -> None:
    index = dockyard.manifest(REPO, "v1")
    assert index.digest == pushed
    assert index.media_type in INDEXES
    assert index.doc["mediaType"] == index.media_type
    local = json.loads(build_storage.buildah("manifest", "inspect", platform_images.list_name))
    assert sorted(child_digests(index.content)) == sorted(child_digests(json.dumps(local).encode()))

    children = children_by_arch(dockyard, REPO, index)
    assert sorted(children) == sorted(ARCHES)
    for arch, child in children.items():
        config_digest, *layers = image_blobs(child.content)
        config = json.loads(dockyard.blob(REPO, config_digest))
        assert (config["os"], config["architecture"]) == ("linux", arch)
        assert len(layers) == 1
        dockyard.blob(REPO, layers[0])


def test_pull_everything_back_into_a_layout(
    dockyard: Dockyard, pushed: str, tmp_path: Path
) -> None:
    out = OciLayout(tmp_path / "pulled")
    copy_all(f"docker://{dockyard.host}/{REPO}:v1", f"oci:{out.path}:v1")
    index = dockyard.manifest(REPO, "v1")
    assert out.manifest("v1") == (pushed, index.content)
    for child in children_by_arch(dockyard, REPO, index).values():
        assert out.blob(child.digest) == child.content
        for blob in image_blobs(child.content):
            assert out.blob(blob) == dockyard.blob(REPO, blob)


def test_copy_all_to_another_repository_keeps_the_digests(dockyard: Dockyard, pushed: str) -> None:
    copy_all(f"docker://{dockyard.host}/{REPO}:v1", f"docker://{dockyard.host}/multi/copy:v1")
    index = dockyard.manifest("multi/copy", "v1")
    assert index.digest == pushed
    original = children_by_arch(dockyard, REPO, dockyard.manifest(REPO, "v1"))
    copied = children_by_arch(dockyard, "multi/copy", index)
    assert {a: c.content for a, c in copied.items()} == {a: c.content for a, c in original.items()}


@pytest.mark.parametrize("arch", ARCHES)
def test_pull_one_platform(
    dockyard: Dockyard,
    platform_images: PlatformImages,
    pushed: str,
    storage: ContainerStorage,
    arch: str,
) -> None:
    require("podman")
    reference = f"{dockyard.host}/{REPO}:v1"
    image_id = storage.podman("pull", "--quiet", TLS, "--arch", arch, reference)
    child = children_by_arch(dockyard, REPO, dockyard.manifest(REPO, "v1"))[arch]
    assert f"sha256:{image_id}" == image_blobs(child.content)[0]
    (info,) = json.loads(storage.podman("image", "inspect", reference))
    assert info["Architecture"] == arch
    assert f"{dockyard.host}/{REPO}@{child.digest}" in info["RepoDigests"]
    root = Path(storage.podman("image", "mount", reference))
    try:
        for path, data in platform_images.files[arch].items():
            assert (root / path.lstrip("/")).read_bytes() == data
    finally:
        storage.podman("image", "unmount", reference)
