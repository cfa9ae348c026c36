"""buildah against Dockyard (vfs storage, plain HTTP): push the image it built, as OCI and
as Docker schema 2, pull it into an empty storage and read the files back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.clients.images import BuiltImage, ContainerStorage
from tests.clients.server import Dockyard

TLS = "--tls-verify=false"
MEDIA_TYPES = {
    "oci": "application/vnd.oci.image.manifest.v1+json",
    "docker": "application/vnd.docker.distribution.manifest.v2+json",
}


def inspect_image(storage: ContainerStorage, reference: str) -> dict[str, Any]:
    info = json.loads(storage.buildah("inspect", "--type", "image", reference))
    assert isinstance(info, dict)
    return info


@pytest.mark.parametrize("manifest_format", ["oci", "docker"])
def test_push_and_pull(
    dockyard: Dockyard,
    build_storage: ContainerStorage,
    image: BuiltImage,
    storage: ContainerStorage,
    tmp_path: Path,
    manifest_format: str,
) -> None:
    repository = f"buildah/{manifest_format}"
    reference = f"{dockyard.host}/{repository}:v1"
    digest_file = tmp_path / "digest"
    build_storage.buildah(
        "push", "--quiet", TLS, "--format", manifest_format, "--digestfile", digest_file,
        image.name, f"docker://{reference}",
    )  # fmt: skip
    pushed = digest_file.read_text().strip()

    served = dockyard.manifest(repository, "v1")
    assert served.digest == pushed
    assert served.media_type == MEDIA_TYPES[manifest_format]
    config = served.doc["config"]["digest"]
    assert json.loads(dockyard.blob(repository, config))["architecture"] == "amd64"
    if manifest_format == "oci":
        # Pushed as built: the config, hence the image id, is the one in the build storage.
        built = inspect_image(build_storage, image.name)["FromImageID"]
        assert config == f"sha256:{built}"

    image_id = storage.buildah("pull", "--quiet", TLS, reference)
    assert f"sha256:{image_id}" == config
    pulled = inspect_image(storage, reference)
    assert pulled["FromImageDigest"] == pushed
    assert pulled["FromImageID"] == image_id

    container = storage.buildah("from", "--quiet", reference)
    root = Path(storage.buildah("mount", container))
    try:
        for path, data in image.files.items():
            assert (root / path.lstrip("/")).read_bytes() == data, path
    finally:
        storage.buildah("umount", container)
        storage.buildah("rm", container)
