"""Docker against Dockyard, through a private dockerd: load an image, push it, remove it,
pull it back by tag and by digest, and push it to a second repository (layer mounts)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.clients.commands import require, run
from tests.clients.daemons import Docker
from tests.clients.images import BuiltImage
from tests.clients.layout import image_blobs
from tests.clients.server import Dockyard

pytestmark = pytest.mark.slow

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
REPO = "docker/img"
LOCAL = "dockyard-test/img:v1"
_PUSHED = re.compile(r"digest: (sha256:[0-9a-f]{64}) size: (\d+)")


def inspect_image(docker: Docker, reference: str) -> dict[str, Any]:
    (info,) = json.loads(docker("image", "inspect", reference))
    assert isinstance(info, dict)
    return info


def push(docker: Docker, reference: str) -> tuple[str, int]:
    """``docker push``; the digest and size it reports."""
    match = _PUSHED.search(docker("push", reference))
    assert match, f"no digest in the output of docker push {reference}"
    return match.group(1), int(match.group(2))


@pytest.fixture(scope="module")
def pushed(
    docker: Docker, dockyard: Dockyard, image: BuiltImage, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, str]:
    """The test image loaded from a docker-archive and pushed: (manifest digest, image id)."""
    require("skopeo")
    archive = tmp_path_factory.mktemp("docker") / "image.tar"
    run(["skopeo", "copy", "--quiet", image.reference, f"docker-archive:{archive}:{LOCAL}"])
    docker("load", "--quiet", "--input", archive)
    image_id = inspect_image(docker, LOCAL)["Id"]
    # docker load keeps the config bytes, so the image id is the layout's config digest.
    _, manifest = image.layout.manifest(image.tag)
    assert image_id == image_blobs(manifest)[0]
    docker("tag", LOCAL, f"{dockyard.host}/{REPO}:v1")
    digest, size = push(docker, f"{dockyard.host}/{REPO}:v1")
    assert size == len(dockyard.manifest(REPO, "v1").content)
    return digest, image_id


def test_push_stores_what_docker_reports(
    dockyard: Dockyard, image: BuiltImage, pushed: tuple[str, str]
) -> None:
    digest, image_id = pushed
    served = dockyard.manifest(REPO, "v1")
    assert served.digest == digest
    assert served.media_type == DOCKER_MANIFEST
    assert served.doc["config"]["digest"] == image_id
    assert dockyard.blob(REPO, image_id) == image.layout.blob(image_id)
    assert len(served.doc["layers"]) == len(image_blobs(image.layout.manifest(image.tag)[1])) - 1
    for layer in served.doc["layers"]:
        assert len(dockyard.blob(REPO, layer["digest"])) == layer["size"]


def test_pull_after_rmi(
    docker: Docker, dockyard: Dockyard, image: BuiltImage, pushed: tuple[str, str], tmp_path: Path
) -> None:
    digest, image_id = pushed
    reference = f"{dockyard.host}/{REPO}:v1"
    docker("rmi", "--force", image_id)
    assert docker.fails("image", "inspect", image_id)

    docker("pull", "--quiet", reference)
    info = inspect_image(docker, reference)
    assert info["Id"] == image_id
    assert info["RepoDigests"] == [f"{dockyard.host}/{REPO}@{digest}"]
    assert dockyard.manifest_digest(REPO, "v1") == digest

    container = docker("create", reference, "/no-command")
    try:
        for path, data in image.files.items():
            target = tmp_path / path.lstrip("/").replace("/", "_")
            docker("cp", f"{container}:{path}", target)
            assert target.read_bytes() == data, path
    finally:
        docker("rm", container)


def test_pull_by_digest(docker: Docker, dockyard: Dockyard, pushed: tuple[str, str]) -> None:
    digest, image_id = pushed
    reference = f"{dockyard.host}/{REPO}@{digest}"
    docker("pull", "--quiet", reference)
    info = inspect_image(docker, reference)
    assert info["Id"] == image_id
    assert f"{dockyard.host}/{REPO}@{digest}" in info["RepoDigests"]


def test_push_to_another_repository_mounts_the_layers(
    docker: Docker, dockyard: Dockyard, pushed: tuple[str, str]
) -> None:
    digest, _ = pushed
    source = f"{dockyard.host}/{REPO}:v1"
    docker("pull", "--quiet", source)  # docker mounts what it knows it pulled from there
    target = f"{dockyard.host}/docker/copy:v1"
    docker("tag", source, target)
    offset = dockyard.log_offset()
    assert push(docker, target)[0] == digest

    dockyard.wait_for_log(offset, r'"PUT /v2/docker/copy/manifests/v1" 201 ')
    log = dockyard.log_since(offset)
    layers = dockyard.manifest("docker/copy", "v1").doc["layers"]
    # Each layer is mounted from docker/img (POST answered 201), only the config is sent.
    mounts = re.findall(r'"POST /v2/docker/copy/blobs/uploads/" 201 ', log)
    assert len(mounts) == len(layers), log
    uploads = re.findall(r'"PUT /v2/docker/copy/blobs/uploads/\w+" 201 ', log)
    assert len(uploads) == 1, log
    for layer in layers:
        assert dockyard.blob("docker/copy", layer["digest"]) == dockyard.blob(REPO, layer["digest"])


def test_pull_an_oci_image_pushed_from_a_layout(
    docker: Docker, dockyard: Dockyard, image: BuiltImage
) -> None:
    run(["skopeo", "copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false",
         image.reference, f"docker://{dockyard.host}/docker/oci:v1"])  # fmt: skip
    digest, manifest = image.layout.manifest(image.tag)
    reference = f"{dockyard.host}/docker/oci:v1"
    docker("pull", "--quiet", reference)
    info = inspect_image(docker, reference)
    assert info["Id"] == image_blobs(manifest)[0]
    # The same image (same id) came from docker/img too: one digest per repository.
    assert f"{dockyard.host}/docker/oci@{digest}" in info["RepoDigests"]
