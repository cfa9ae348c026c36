"""Replicas: ``dockyard serve`` processes sharing one PostgreSQL database and one bucket.

Each replica is a real subprocess on port 0 with its own data directory (which stays
empty: nothing of the shared state lives there) and a TOML configuration naming the
shared database and bucket prefix. Images are small OCI layouts written here, so a
push needs no daemon and no network.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import re
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.clients.commands import run
from tests.clients.server import Dockyard

_LISTENING = re.compile(rb"dockyard listening on http://127\.0\.0\.1:(\d+)")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass(frozen=True)
class SharedState:
    """What every replica of one deployment is configured with."""

    database_url: str
    storage: dict[str, Any]

    def toml(self, **storage: Any) -> str:
        lines = ["[metadata]", f"url = {json.dumps(self.database_url)}", "", "[storage]"]
        for key, value in {**self.storage, **storage}.items():
            lines.append(f"{key} = {json.dumps(value)}")
        return "\n".join(lines) + "\n"


def start_replica(
    state: SharedState, work: Path, name: str, *, timeout: float = 60.0, **storage: Any
) -> Dockyard:
    """Start one replica on port 0; wait, against a deadline, for the port it logs."""
    work.mkdir(parents=True, exist_ok=True)
    config = work / f"{name}.toml"
    config.write_text(state.toml(**storage))
    log_path = work / f"{name}.log"
    command = [
        str(Path(sys.executable).with_name("dockyard")), "serve", "--config", str(config),
        "--port", "0", "--data-dir", str(work / f"{name}-data"),
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while True:
        match = _LISTENING.search(log_path.read_bytes())
        if match:
            return Dockyard(process, int(match.group(1)), log_path)
        if process.poll() is not None or time.monotonic() > deadline:
            Dockyard._halt(process)
            pytest.fail(f"replica {name} did not start:\n{log_path.read_text()[-4000:]}")
        time.sleep(0.05)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer(seed: int, size: int) -> bytes:
    """A gzipped tar holding one file of ``size`` seeded random bytes."""
    content = random.Random(seed).randbytes(size)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo(f"data/blob-{seed}.bin")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)


@dataclass(frozen=True)
class Image:
    """One image: its blobs by digest and its manifest."""

    blobs: dict[str, bytes]
    manifest: bytes

    @property
    def digest(self) -> str:
        return digest_of(self.manifest)


def make_image(seed: int, layer_size: int = 3 << 20) -> Image:
    layers = [layer(seed, layer_size), layer(seed + 1, 4096)]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {
                "type": "layers",
                "diff_ids": [digest_of(gzip.decompress(b)) for b in layers],
            },
            "config": {"Labels": {"seed": str(seed)}},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest_of(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": digest_of(b),
                    "size": len(b),
                }
                for b in layers
            ],
        }
    ).encode()
    blobs = {digest_of(b): b for b in [config, *layers]}
    return Image(blobs, manifest)


def write_layout(image: Image, path: Path, tag: str) -> str:
    """Write ``image`` as an OCI layout; return skopeo's ``oci:<path>:<tag>`` reference."""
    (path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    for digest, data in [*image.blobs.items(), (image.digest, image.manifest)]:
        (path / "blobs" / "sha256" / digest.removeprefix("sha256:")).write_bytes(data)
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": image.digest,
                "size": len(image.manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (path / "index.json").write_text(json.dumps(index))
    return f"oci:{path}:{tag}"


def skopeo_copy(source: str, destination: str) -> None:
    """``skopeo copy`` over plain HTTP, digests preserved."""
    run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false",
         "--preserve-digests", source, destination])  # fmt: skip


def push_blob(replica: Dockyard, repository: str, data: bytes) -> str:
    """A whole blob in one ``POST ?digest=``; its digest."""
    digest = digest_of(data)
    r = replica.request("POST", f"/v2/{repository}/blobs/uploads/?digest={digest}", body=data)
    assert r.status == 201, r.body
    return digest
