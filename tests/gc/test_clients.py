"""Real clients: skopeo pushes images (a multi-platform index too) to ``dockyard serve``,
``dockyard gc`` runs, skopeo pulls them back with the same digests; and ``serve
--read-only`` refuses skopeo's push while serving its pull."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.clients.commands import require, run
from tests.clients.layout import OciLayout
from tests.clients.server import Dockyard, sha256
from tests.gc.cli import write_config

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"
TLS = ("--src-tls-verify=false", "--dest-tls-verify=false", "--preserve-digests")


def _put(root: Path, data: bytes) -> dict[str, Any]:
    digest = sha256(data)
    path = root / "blobs" / "sha256" / digest.split(":", 1)[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": digest, "size": len(data)}


def _image(root: Path, arch: str, seed: int) -> dict[str, Any]:
    layer = random.Random(seed).randbytes(200_000)
    config = json.dumps({"architecture": arch, "os": "linux", "rootfs": {
        "type": "layers", "diff_ids": [sha256(layer)]}}).encode()  # fmt: skip
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **_put(root, config)},
        "layers": [{"mediaType": LAYER, **_put(root, layer)}],
    }).encode()  # fmt: skip
    return {"mediaType": OCI_MANIFEST, **_put(root, manifest)}


def make_layout(root: Path) -> OciLayout:
    """An OCI layout with ``single`` (one image) and ``multi`` (an amd64+arm64 index)."""
    (root / "oci-layout").parent.mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    single = _image(root, "amd64", 1)
    children = [
        {**_image(root, arch, 10 + i), "platform": {"architecture": arch, "os": "linux"}}
        for i, arch in enumerate(("amd64", "arm64"))
    ]
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children})
    multi = {"mediaType": OCI_INDEX, **_put(root, index.encode())}
    tag = "org.opencontainers.image.ref.name"
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {**single, "annotations": {tag: "single"}}, {**multi, "annotations": {tag: "multi"}},
    ]}))  # fmt: skip
    return OciLayout(root)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Dockyard]:
    require("skopeo")
    data = tmp_path / "data"
    config = write_config(tmp_path / "dockyard.toml", data)
    server = Dockyard.start(data, tmp_path / "server.log", args=["-c", str(config)])
    yield server
    assert server.stop() == 0
    assert not Dockyard.server_errors(server.log_since(0)), server.log_since(0)[-3000:]


def dockyard_cli(*args: str | Path) -> str:
    return run(
        [str(Path(run.__globals__["os"].sys.executable).with_name("dockyard")), *args]
    ).stdout


def test_push_gc_pull_keeps_every_digest(server: Dockyard, tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "layout")
    host = server.host
    run(
        [
            "skopeo",
            "copy",
            "--quiet",
            *TLS,
            f"oci:{layout.path}:single",
            f"docker://{host}/gc/one:v1",
        ]
    )
    run(["skopeo", "copy", "--quiet", "--all", *TLS, f"oci:{layout.path}:multi",
         f"docker://{host}/gc/multi:v1"])  # fmt: skip
    # Something for GC to take: the single image, then its tag and manifest deleted.
    run(
        [
            "skopeo",
            "copy",
            "--quiet",
            *TLS,
            f"oci:{layout.path}:single",
            f"docker://{host}/gc/tmp:v1",
        ]
    )
    digest = server.manifest_digest("gc/tmp", "v1")
    assert server.request("DELETE", f"/v2/gc/tmp/manifests/{digest}").status == 202
    config = tmp_path / "dockyard.toml"
    report = json.loads(dockyard_cli("gc", "--json", "-c", config))
    assert {link["repository"] for link in report["dropped_links"]} == {"gc/tmp"}
    assert report["deleted_blobs"] == []  # gc/one still uses the same blobs
    assert report["reachable_manifests"] == 4
    for name, reference, flags in (("gc/one", "single", []), ("gc/multi", "multi", ["--all"])):
        out = tmp_path / f"pulled-{name.replace('/', '-')}"
        run(["skopeo", "copy", "--quiet", *flags, *TLS, f"docker://{host}/{name}:v1",
             f"oci:{out}:{reference}"])  # fmt: skip
        pulled = OciLayout(out)
        assert pulled.manifest_digest(reference) == layout.manifest_digest(reference)
        for entry in json.loads(layout.blob(layout.manifest_digest(reference))).get(
            "manifests", []
        ):
            assert pulled.blob(entry["digest"]) == layout.blob(entry["digest"])
    assert (
        server.request("GET", f"/v2/gc/tmp/blobs/{report['dropped_links'][0]['digest']}").status
        == 404
    )


def test_serve_read_only_with_skopeo(tmp_path: Path) -> None:
    require("skopeo")
    data = tmp_path / "data"
    layout = make_layout(tmp_path / "layout")
    first = Dockyard.start(data, tmp_path / "first.log")
    try:
        run(["skopeo", "copy", "--quiet", *TLS, f"oci:{layout.path}:single",
             f"docker://{first.host}/ro/img:v1"])  # fmt: skip
    finally:
        assert first.stop() == 0
    ro = Dockyard.start(data, tmp_path / "ro.log", args=["--read-only"])
    try:
        out = tmp_path / "pulled"
        run(["skopeo", "copy", "--quiet", *TLS, f"docker://{ro.host}/ro/img:v1", f"oci:{out}:x"])
        assert OciLayout(out).manifest_digest("x") == layout.manifest_digest("single")
        refused = run(["skopeo", "copy", "--quiet", "--retry-times", "0", *TLS,
                       f"oci:{layout.path}:single", f"docker://{ro.host}/ro/img:v2"],
                      check=False)  # fmt: skip
        assert refused.returncode != 0
        assert "maintenance" in refused.stderr
        r = ro.request("DELETE", "/v2/ro/img/manifests/v1")
        assert r.status == 405
        assert json.loads(r.body)["errors"][0]["code"] == "UNSUPPORTED"
    finally:
        ro.stop()
