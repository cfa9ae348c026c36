"""Reading OCI image layouts (image-spec ``image-layout.md``) to compare with the registry."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.clients.server import sha256

REF_NAME = "org.opencontainers.image.ref.name"


@dataclass(frozen=True, slots=True)
class OciLayout:
    """An OCI layout directory: ``oci-layout``, ``index.json``, ``blobs/<alg>/<hex>``."""

    path: Path

    def index(self) -> dict[str, Any]:
        doc = json.loads((self.path / "index.json").read_bytes())
        assert isinstance(doc, dict)
        return doc

    def descriptor(self, tag: str) -> dict[str, Any]:
        """The ``index.json`` entry named ``tag``."""
        for entry in self.index()["manifests"]:
            if (entry.get("annotations") or {}).get(REF_NAME) == tag:
                assert isinstance(entry, dict)
                return entry
        raise AssertionError(f"{self.path} has no image tagged {tag!r}")

    def blob(self, digest: str) -> bytes:
        """The bytes stored under ``digest``, checked against it."""
        algorithm, hex_digest = digest.split(":", 1)
        data = (self.path / "blobs" / algorithm / hex_digest).read_bytes()
        assert sha256(data) == digest, f"{self.path}: blob {digest} is corrupt"
        return data

    def manifest_digest(self, tag: str) -> str:
        digest = self.descriptor(tag)["digest"]
        assert isinstance(digest, str)
        return digest

    def manifest(self, tag: str) -> tuple[str, bytes]:
        """The digest and bytes of the manifest (or index) tagged ``tag``."""
        digest = self.manifest_digest(tag)
        return digest, self.blob(digest)


def image_blobs(manifest: bytes) -> list[str]:
    """The config and layer digests an image manifest references, config first."""
    doc = json.loads(manifest)
    return [doc["config"]["digest"], *(layer["digest"] for layer in doc["layers"])]


def child_digests(index: bytes) -> list[str]:
    """The manifest digests an image index lists."""
    return [entry["digest"] for entry in json.loads(index)["manifests"]]
