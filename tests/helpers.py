"""Test helpers: assert the OCI error envelope, push blobs and images over HTTP."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

Client = TestClient  # type: ignore[type-arg]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def assert_error(response: ClientResponse, status: int, code: str) -> dict[str, Any]:
    """Assert ``response`` is the spec's error envelope with ``code`` and ``status``."""
    body = await response.text()
    assert response.status == status, f"{response.status} != {status}: {body}"
    assert response.headers["Content-Type"].startswith("application/json"), body
    doc = json.loads(body)
    assert isinstance(doc["errors"], list) and doc["errors"], body
    error = doc["errors"][0]
    assert error["code"] == code, body
    assert isinstance(error["message"], str) and error["message"], body
    return error  # type: ignore[no-any-return]


async def push_blob(client: Client, repo: str, data: bytes) -> str:
    """Upload ``data`` monolithically to ``repo``; return its digest."""
    digest = sha256(data)
    r = await client.post(f"/v2/{repo}/blobs/uploads/?digest={digest}", data=data)
    assert r.status == 201, await r.text()
    return digest


def image_manifest(
    config: bytes, layers: list[bytes], *, subject: dict[str, Any] | None = None,
    artifact_type: str | None = None, annotations: dict[str, str] | None = None,
    config_media_type: str = OCI_CONFIG,
) -> bytes:
    """The bytes of an OCI image manifest over ``config`` and ``layers``."""
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": config_media_type, "digest": sha256(config), "size": len(config)},
        "layers": [
            {"mediaType": OCI_LAYER, "digest": sha256(layer), "size": len(layer)} for layer in layers
        ],
    }
    if artifact_type:
        doc["artifactType"] = artifact_type
    if subject:
        doc["subject"] = subject
    if annotations:
        doc["annotations"] = annotations
    return json.dumps(doc, indent=1).encode()


async def push_image(
    client: Client, repo: str, tag: str, *, layers: list[bytes] | None = None, config: bytes | None = None
) -> tuple[str, bytes]:
    """Push config, layers and manifest; return the manifest digest and bytes."""
    config = config or json.dumps({"architecture": "amd64", "os": "linux", "tag": tag}).encode()
    layers = layers if layers is not None else [f"layer of {repo}:{tag}".encode()]
    for blob in (config, *layers):
        await push_blob(client, repo, blob)
    manifest = image_manifest(config, layers)
    r = await client.put(
        f"/v2/{repo}/manifests/{tag}", data=manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert r.status == 201, await r.text()
    return sha256(manifest), manifest
