"""umoci's images through Dockyard: built with umoci, pushed and pulled with skopeo,
unpacked again with umoci, and compared file by file and blob by blob."""

from __future__ import annotations

import json
from pathlib import Path

from tests.clients.commands import require, run
from tests.clients.images import BuiltImage
from tests.clients.layout import OciLayout, image_blobs
from tests.clients.server import Dockyard

REPO = "umoci/img"


def skopeo_copy(source: str, destination: str) -> None:
    run(["skopeo", "copy", "--quiet", "--preserve-digests", "--src-tls-verify=false",
         "--dest-tls-verify=false", source, destination])  # fmt: skip


def test_umoci_image_round_trip(
    dockyard: Dockyard, umoci_image: BuiltImage, tmp_path: Path
) -> None:
    require("skopeo")
    digest, manifest = umoci_image.layout.manifest(umoci_image.tag)
    skopeo_copy(umoci_image.reference, f"docker://{dockyard.host}/{REPO}:v1")

    served = dockyard.manifest(REPO, "v1")
    assert (served.digest, served.content) == (digest, manifest)
    for blob in image_blobs(manifest):
        assert dockyard.blob(REPO, blob) == umoci_image.layout.blob(blob)
    config = json.loads(umoci_image.layout.blob(image_blobs(manifest)[0]))
    assert config["config"]["Cmd"] == ["/greeting.txt"]

    pulled = OciLayout(tmp_path / "pulled")
    skopeo_copy(f"docker://{dockyard.host}/{REPO}:v1", f"oci:{pulled.path}:v1")
    assert pulled.manifest("v1") == (digest, manifest)
    assert run(["umoci", "ls", "--layout", pulled.path]).stdout.split() == ["v1"]

    bundle = tmp_path / "bundle"
    run(["umoci", "unpack", "--image", f"{pulled.path}:v1", bundle])
    rootfs = bundle / "rootfs"
    unpacked = {
        f"/{path.relative_to(rootfs)}": path.read_bytes()
        for path in rootfs.rglob("*")
        if path.is_file()
    }
    assert unpacked == umoci_image.files
