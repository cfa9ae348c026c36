"""Test helpers: assert the OCI error envelope, push blobs and images over HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict, CIMultiDictProxy

from dockyard.api import REGISTRY

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

Client = TestClient[web.Request, web.Application]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def assert_error(response: ClientResponse, status: int, code: str) -> dict[str, Any]:
    """Assert ``response`` is the spec's error envelope with ``code`` and ``status``."""
    body = await response.text()
    assert response.status == status, f"{response.status} != {status}: {body}"
    assert response.headers["Content-Type"].startswith("application/json"), body
    doc = json.loads(body)
    assert isinstance(doc["errors"], list), body
    assert doc["errors"], body
    error = doc["errors"][0]
    assert error["code"] == code, body
    assert isinstance(error["message"], str), body
    assert error["message"], body
    return error  # type: ignore[no-any-return]


async def push_blob(client: Client, repo: str, data: bytes) -> str:
    """Upload ``data`` monolithically to ``repo``; return its digest."""
    digest = sha256(data)
    r = await client.post(f"/v2/{repo}/blobs/uploads/?digest={digest}", data=data)
    assert r.status == 201, await r.text()
    return digest


def image_manifest(
    config: bytes,
    layers: list[bytes],
    *,
    subject: dict[str, Any] | None = None,
    artifact_type: str | None = None,
    annotations: dict[str, str] | None = None,
    config_media_type: str = OCI_CONFIG,
) -> bytes:
    """The bytes of an OCI image manifest over ``config`` and ``layers``."""
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": config_media_type, "digest": sha256(config), "size": len(config)},
        "layers": [
            {"mediaType": OCI_LAYER, "digest": sha256(layer), "size": len(layer)}
            for layer in layers
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
    client: Client,
    repo: str,
    tag: str,
    *,
    layers: list[bytes] | None = None,
    config: bytes | None = None,
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


# -- appended: raw HTTP, manifests of every kind, uploads -------------------------------

OCI_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"
EMPTY_JSON_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def sha512(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


@dataclass(frozen=True)
class RawResponse:
    """A response read off a raw socket: status, headers (case-insensitive), body."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def raw_request(
    client: Client,
    method: str,
    target: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> RawResponse:
    """Send ``target`` byte for byte, so no client library normalises the path
    (``..``, ``%2F``, ``//``) before the server sees it."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        head = [f"{method} {target} HTTP/1.1", f"Host: {client.host}:{client.port}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body or method in ("POST", "PUT", "PATCH"):
            head.append(f"Content-Length: {len(body)}")
        head.append("Connection: close")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await writer.drain()
        data = await reader.read(-1)
    finally:
        writer.close()
        await writer.wait_closed()
    return _parse_response(data, method)


def _parse_response(data: bytes, method: str) -> RawResponse:
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers.add(key.strip(), value.strip())
    body = b""
    if method != "HEAD":
        if headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = _dechunk(rest)
        else:
            body = rest[: int(headers.get("Content-Length", len(rest)))]
    return RawResponse(status, CIMultiDictProxy(headers), body)


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return bytes(out)


def assert_raw_error(response: RawResponse, status: int, code: str) -> dict[str, Any]:
    """:func:`assert_error` for a :class:`RawResponse`."""
    assert response.status == status, f"{response.status} != {status}: {response.body!r}"
    assert response.headers["Content-Type"].startswith("application/json"), response.body
    doc = response.json()
    assert isinstance(doc["errors"], list), response.body
    assert doc["errors"], response.body
    error = doc["errors"][0]
    assert error["code"] == code, response.body
    assert isinstance(error["message"], str), response.body
    assert error["message"], response.body
    return error  # type: ignore[no-any-return]


async def start_upload(client: Client, repo: str) -> str:
    """Open an upload session in ``repo``; return its ``Location``."""
    r = await client.post(f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
    assert r.status == 202, await r.text()
    return r.headers["Location"]


def with_query(location: str, **params: str) -> str:
    """``location`` with ``params`` added to its query string (it may already have one)."""
    return location + ("&" if "?" in location else "?") + urlencode(params)


def descriptor(media_type: str, content: bytes, /, **extra: Any) -> dict[str, Any]:
    """The descriptor of ``content`` (sha256), with ``extra`` fields."""
    return {"mediaType": media_type, "digest": sha256(content), "size": len(content), **extra}


def index_manifest(
    children: list[tuple[str, bytes]],
    *,
    media_type: str = OCI_INDEX,
    subject: dict[str, Any] | None = None,
    artifact_type: str | None = None,
    annotations: dict[str, str] | None = None,
) -> bytes:
    """The bytes of an index (or Docker manifest list) over ``(media type, manifest)``."""
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [
            descriptor(mt, body, platform={"architecture": f"arch{i}", "os": "linux"})
            for i, (mt, body) in enumerate(children)
        ],
    }
    if artifact_type:
        doc["artifactType"] = artifact_type
    if subject:
        doc["subject"] = subject
    if annotations:
        doc["annotations"] = annotations
    return json.dumps(doc).encode()


async def put_manifest(
    client: Client, repo: str, reference: str, body: bytes, media_type: str = OCI_MANIFEST
) -> ClientResponse:
    """PUT ``body`` as a manifest; the response, unchecked."""
    return await client.put(
        f"/v2/{repo}/manifests/{reference}", data=body, headers={"Content-Type": media_type}
    )


async def blob_status(client: Client, repo: str, digest: str) -> int:
    """The status of ``HEAD /v2/<repo>/blobs/<digest>``."""
    r = await client.head(f"/v2/{repo}/blobs/{digest}")
    return r.status


async def tags_of(client: Client, repo: str) -> list[str]:
    """The full tag list of ``repo`` (an existing repository)."""
    r = await client.get(f"/v2/{repo}/tags/list")
    assert r.status == 200, await r.text()
    tags: list[str] = (await r.json())["tags"]
    return tags


async def open_uploads(client: Client) -> int:
    """How many upload sessions the server behind ``client`` holds open."""
    return await client.app[REGISTRY].meta.count_uploads()


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, deadline: float = 30.0
) -> None:
    """Poll ``check`` until it holds, failing after ``deadline`` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not await check():
        if loop.time() > end:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
