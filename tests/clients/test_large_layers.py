"""Layers large enough to be read straight off the socket (``dockyard.api.socketbody``),
pushed by real clients that announce their length: oras-py (a monolithic ``PUT``) and
skopeo (a ``PATCH`` per blob, as podman and buildah push too). Every byte comes back,
and ``/metrics`` shows the bodies took the direct path.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import oras.client
import pytest

from dockyard.api.socketbody import DIRECT_MIN
from tests.clients.commands import require, run
from tests.clients.layout import OciLayout, image_blobs
from tests.clients.server import Dockyard, sha256

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"
CONFIG = "application/vnd.oci.image.config.v1+json"


def direct_bodies(dockyard: Dockyard) -> float:
    text = dockyard.request("GET", "/metrics").body.decode()
    match = re.search(r"^dockyard_http_request_bodies_direct_total (\S+)$", text, re.M)
    assert match, text
    return float(match.group(1))


@pytest.fixture(scope="module")
def oras_client(dockyard: Dockyard) -> Iterator[Any]:
    c = oras.client.OrasClient(hostname=dockyard.host, insecure=True)
    yield c
    c.session.close()


def test_oras_pushes_and_pulls_a_large_file(
    dockyard: Dockyard, oras_client: Any, tmp_path: Path
) -> None:
    data = random.Random(21).randbytes(DIRECT_MIN * 3 + 4321)
    source = tmp_path / "push" / "big.bin"
    source.parent.mkdir()
    source.write_bytes(data)
    before = direct_bodies(dockyard)
    response = oras_client.push(
        target=f"{dockyard.host}/large/oras:v1",
        files=[str(source)],
        disable_path_validation=True,
        quiet=True,
    )
    assert response.status_code == 201, response.text
    assert direct_bodies(dockyard) >= before + 1
    assert dockyard.blob("large/oras", sha256(data)) == data
    pulled = oras_client.pull(target=f"{dockyard.host}/large/oras:v1", outdir=str(tmp_path / "out"))
    assert [Path(p).read_bytes() == data for p in pulled] == [True]


def _write_layout(root: Path, layers: list[bytes]) -> str:
    """An OCI layout holding one image of ``layers``, tagged ``v1``; its manifest digest."""
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> dict[str, Any]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{sha256(x)[7:]}" for x in layers]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": CONFIG, **put(config)},
            "layers": [{"mediaType": LAYER, **put(layer)} for layer in layers],
        }
    ).encode()
    described = put(manifest)
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                **described,
                "annotations": {"org.opencontainers.image.ref.name": "v1"},
            }
        ],
    }
    (root / "index.json").write_text(json.dumps(index))
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return str(described["digest"])


def test_skopeo_copies_an_image_with_large_layers_both_ways(
    dockyard: Dockyard, tmp_path: Path
) -> None:
    require("skopeo")
    rng = random.Random(22)
    layers = [rng.randbytes(DIRECT_MIN + 999), rng.randbytes(2 * DIRECT_MIN + 1), b"small"]
    digest = _write_layout(tmp_path / "in", layers)
    before = direct_bodies(dockyard)
    tls = ("--src-tls-verify=false", "--dest-tls-verify=false")
    run(["skopeo", "copy", "--quiet", *tls, "--preserve-digests",
         f"oci:{tmp_path / 'in'}:v1", f"docker://{dockyard.host}/large/skopeo:v1"])  # fmt: skip
    assert direct_bodies(dockyard) >= before + 2  # the two large layers
    served = dockyard.manifest("large/skopeo", "v1")
    assert served.digest == digest
    for layer in layers:
        assert dockyard.blob("large/skopeo", sha256(layer)) == layer
    # And back out into a new layout, byte for byte.
    run(["skopeo", "copy", "--quiet", *tls, "--preserve-digests", f"docker://{dockyard.host}/large/skopeo:v1",
         f"oci:{tmp_path / 'out'}:v1"])  # fmt: skip
    out = OciLayout(tmp_path / "out")
    _, manifest = out.manifest("v1")
    assert sha256(manifest) == digest
    assert [out.blob(d) for d in image_blobs(manifest)[1:]] == layers
