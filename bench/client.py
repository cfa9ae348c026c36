"""The load generator's registry client: the OCI push and pull flows over aiohttp.

Both registries get the same requests. Blob pushes are the spec's two-request monolithic
upload (``POST`` then ``PUT ?digest=`` with the body), and the chunked one (``POST``,
``PATCH`` with ``Content-Range`` per chunk, ``PUT ?digest=``); Distribution 2.8 ignores a
``POST ?digest=`` body, so the one-request form is not used. Pulls read the body in large
pieces and throw them away. Each concurrent worker has its own ``ClientSession`` with one
keep-alive connection, so no worker waits on another's pool.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from yarl import URL

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
ACCEPT = f"{OCI_MANIFEST}, application/vnd.docker.distribution.manifest.v2+json"
_READ_BUFSIZE = 1 << 20
# Bodies over 1 MiB go out as a stream of 256 KiB slices, one write and one drain each:
# aiohttp warns about one huge bytes body, and Python 3.11's transport copies whatever
# of a write the kernel does not take at once into a buffer of its own. With 4 MiB
# slices that copy cost the client about 0.5 ms per 8 MiB, and the server saw a
# request's headers 0.8 ms after it started instead of 0.3 (a bare socket server that
# only hashes and writes took 9.4 ms per 8 MiB chunk against 8.5 with 256 KiB slices).
_WHOLE_BODY_MAX = 1 << 20
_WRITE_SLICE = 256 << 10


class BenchError(RuntimeError):
    """A registry answered something other than what the flow expects."""


def session() -> aiohttp.ClientSession:
    """A session for one worker: one keep-alive connection, large reads, no decompression."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=1, force_close=False),
        read_bufsize=_READ_BUFSIZE,
        auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120),
    )


def sha256(data: bytes | memoryview) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def _expect(response: aiohttp.ClientResponse, status: int, what: str) -> None:
    if response.status != status:
        body = (await response.read())[:500]
        raise BenchError(f"{what}: HTTP {response.status}, expected {status}: {body!r}")


async def _slices(data: bytes | memoryview) -> AsyncIterator[memoryview]:
    view = memoryview(data)
    for start in range(0, len(view), _WRITE_SLICE):
        yield view[start : start + _WRITE_SLICE]


def _body(
    data: bytes | memoryview, headers: dict[str, str]
) -> bytes | memoryview | AsyncIterator[memoryview]:
    """``data`` as an aiohttp body, sized by ``Content-Length`` (set in ``headers``)."""
    headers["Content-Length"] = str(len(data))
    return _slices(data) if len(data) > _WHOLE_BODY_MAX else data


@dataclass(frozen=True, slots=True)
class Registry:
    """Where one registry listens; the flows below are relative to it."""

    url: str

    def _next(self, response: aiohttp.ClientResponse) -> URL:
        return URL(self.url).join(URL(response.headers["Location"]))

    async def start_upload(self, s: aiohttp.ClientSession, repo: str) -> URL:
        """``POST /v2/<repo>/blobs/uploads/``: the session's URL."""
        async with s.post(f"{self.url}/v2/{repo}/blobs/uploads/") as r:
            await _expect(r, 202, f"start upload in {repo}")
            return self._next(r)

    async def push_blob(
        self, s: aiohttp.ClientSession, repo: str, data: bytes, digest: str
    ) -> None:
        """Monolithic push: ``POST``, then ``PUT ?digest=`` with the whole body."""
        location = await self.start_upload(s, repo)
        headers = {"Content-Type": "application/octet-stream"}
        body = _body(data, headers)
        async with s.put(location.update_query(digest=digest), data=body, headers=headers) as r:
            await _expect(r, 201, f"push {digest[:19]} to {repo}")

    async def push_blob_chunked(
        self, s: aiohttp.ClientSession, repo: str, data: bytes, digest: str, chunk: int
    ) -> None:
        """Chunked push: ``POST``, one ``PATCH`` per ``chunk`` bytes, ``PUT ?digest=``."""
        location = await self.start_upload(s, repo)
        view = memoryview(data)
        for start in range(0, len(data), chunk):
            piece = view[start : start + chunk]
            headers = {
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{start}-{start + len(piece) - 1}",
            }
            async with s.patch(location, data=_body(piece, headers), headers=headers) as r:
                await _expect(r, 202, f"chunk at {start} of {digest[:19]}")
                location = self._next(r)
        async with s.put(location.update_query(digest=digest), data=b"") as r:
            await _expect(r, 201, f"close chunked upload of {digest[:19]}")

    async def push_blob_stream(
        self,
        s: aiohttp.ClientSession,
        repo: str,
        body: AsyncIterator[bytes],
        size: int,
        digest: str,
    ) -> None:
        """Monolithic push of a body produced on the fly (never whole in memory)."""
        location = await self.start_upload(s, repo)
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        async with s.put(location.update_query(digest=digest), data=body, headers=headers) as r:
            await _expect(r, 201, f"stream {digest[:19]} to {repo}")

    async def mount_blob(
        self, s: aiohttp.ClientSession, repo: str, digest: str, source: str
    ) -> None:
        """Cross-repository mount of ``digest`` from ``source`` into ``repo``."""
        url = f"{self.url}/v2/{repo}/blobs/uploads/?mount={digest}&from={source}"
        async with s.post(url) as r:
            await _expect(r, 201, f"mount {digest[:19]} from {source} into {repo}")

    async def put_manifest(
        self, s: aiohttp.ClientSession, repo: str, reference: str, manifest: bytes
    ) -> None:
        """``PUT /v2/<repo>/manifests/<reference>`` with an OCI image manifest."""
        headers = {"Content-Type": OCI_MANIFEST}
        url = f"{self.url}/v2/{repo}/manifests/{reference}"
        async with s.put(url, data=manifest, headers=headers) as r:
            await _expect(r, 201, f"put manifest {repo}:{reference}")

    async def pull(
        self, s: aiohttp.ClientSession, path: str, headers: dict[str, str] | None = None
    ) -> int:
        """GET ``path``; read and discard the body; return its length."""
        received = 0
        async with s.get(f"{self.url}{path}", headers=headers) as r:
            if r.status not in (200, 206):
                await _expect(r, 200, f"GET {path}")
            while chunk := await r.content.readany():
                received += len(chunk)
        return received

    async def get_json(self, s: aiohttp.ClientSession, path: str) -> tuple[object, str | None]:
        """GET ``path`` as JSON; also the ``Link`` header's next URL path, if any."""
        async with s.get(f"{self.url}{path}") as r:
            await _expect(r, 200, f"GET {path}")
            doc = await r.json()
            link = r.headers.get("Link")
        next_path = link.split(";")[0].strip("<> ") if link else None
        if next_path and next_path.startswith("http"):
            next_path = URL(next_path).path_qs
        return doc, next_path


def image_manifest(config: bytes, layers: list[bytes]) -> bytes:
    """An OCI image manifest over ``config`` and ``layers``."""
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [
            {"mediaType": OCI_LAYER, "digest": sha256(layer), "size": len(layer)}
            for layer in layers
        ],
    }
    return json.dumps(doc, indent=2).encode()


def small_image(tag: str) -> tuple[bytes, bytes, bytes]:
    """A small, unique image: (config, layer, manifest)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "bench": tag}).encode()
    layer = hashlib.sha512(tag.encode()).digest() * 16  # 1 KiB, unique per tag
    return config, layer, image_manifest(config, [layer])
