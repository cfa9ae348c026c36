"""A tiny upstream registry in the test's own event loop (devpi's ``simpypi`` idea).

It serves manifests and blobs put into it, counts every request, and can misbehave on
demand: answer 503 or 429, stop half-way through a blob until released, cut a blob off,
hang, or insist on the Docker token dance (optionally with credentials).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.test_utils import TestServer

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
CHUNK = 64 * 1024


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Image:
    """An image put into the fake upstream: its manifest, digest and blobs."""

    manifest: bytes
    digest: str
    config: bytes
    layers: list[bytes]


@dataclass
class FakeUpstream:
    """State and behaviour of the fake (see the module docstring)."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[tuple[str, str], tuple[str, bytes]] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    status: int | None = None  # answer every /v2 request with this, when set
    hang: bool = False  # never answer /v2 requests
    gate: asyncio.Event | None = None  # blob GETs send half, then wait for this
    half_sent: asyncio.Event = field(default_factory=asyncio.Event)
    break_after: int | None = None  # cut blob GETs off after this many bytes
    token_auth: bool = False
    credentials: tuple[str, str] | None = None  # required at the token endpoint
    token_lifetime: int = 300
    tokens: dict[str, float] = field(default_factory=dict)
    url: str = ""
    _issued: int = 0

    # -- content ------------------------------------------------------------------

    def put_image(self, repository: str, tag: str, layers: list[bytes]) -> Image:
        config = json.dumps({"architecture": "amd64", "os": "linux", "tag": tag}).encode()
        doc = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": [
                {"mediaType": DOCKER_LAYER, "digest": sha256(b), "size": len(b)} for b in layers
            ],
        }
        # Deliberately not compact: the cache must keep the bytes exactly.
        manifest = json.dumps(doc, indent=3).encode()
        for blob in (config, *layers):
            self.blobs[sha256(blob)] = blob
        digest = sha256(manifest)
        self.manifests[(repository, tag)] = (DOCKER_MANIFEST, manifest)
        self.manifests[(repository, digest)] = (DOCKER_MANIFEST, manifest)
        return Image(manifest, digest, config, layers)

    # -- HTTP ---------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/token", self._token)
        app.router.add_route("*", "/v2/{name:.+}/manifests/{reference}", self._manifest)
        app.router.add_route("*", "/v2/{name:.+}/blobs/{digest}", self._blob)
        return app

    async def _token(self, request: web.Request) -> web.Response:
        self.requests["token"] += 1
        if self.credentials is not None:
            expected = "Basic " + base64.b64encode(":".join(self.credentials).encode()).decode()
            if request.headers.get("Authorization") != expected:
                return web.json_response({"errors": [{"code": "UNAUTHORIZED"}]}, status=401)
        self._issued += 1
        token = f"token-{self._issued}"
        self.tokens[token] = time.monotonic() + self.token_lifetime
        return web.json_response({"token": token, "expires_in": self.token_lifetime})

    async def _gatekeeper(self, request: web.Request) -> web.Response | None:
        if self.hang:
            await asyncio.Event().wait()
        if self.status is not None:
            return web.json_response({"errors": [{"code": "UNAVAILABLE"}]}, status=self.status)
        if self.token_auth:
            header = request.headers.get("Authorization", "")
            token = header.removeprefix("Bearer ")
            if not header.startswith("Bearer ") or self.tokens.get(token, 0) < time.monotonic():
                name = request.match_info["name"]
                challenge = (
                    f'Bearer realm="{self.url}/token",service="fake",scope="repository:{name}:pull"'
                )
                return web.json_response(
                    {"errors": [{"code": "UNAUTHORIZED"}]},
                    status=401,
                    headers={"WWW-Authenticate": challenge},
                )
        return None

    async def _manifest(self, request: web.Request) -> web.StreamResponse:
        name, reference = request.match_info["name"], request.match_info["reference"]
        self.requests[f"{request.method} manifest {name}:{reference}"] += 1
        refusal = await self._gatekeeper(request)
        if refusal is not None:
            return refusal
        found = self.manifests.get((name, reference))
        if found is None:
            return web.json_response({"errors": [{"code": "MANIFEST_UNKNOWN"}]}, status=404)
        media_type, body = found
        headers = {
            "Docker-Content-Digest": sha256(body),
            "ratelimit-limit": "100;w=21600",
            "ratelimit-remaining": "99;w=21600",
        }
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(body))
            return web.Response(headers=headers, content_type=media_type)
        return web.Response(body=body, headers=headers, content_type=media_type)

    async def _blob(self, request: web.Request) -> web.StreamResponse:
        digest = request.match_info["digest"]
        self.requests[f"{request.method} blob {digest}"] += 1
        refusal = await self._gatekeeper(request)
        if refusal is not None:
            return refusal
        data = self.blobs.get(digest)
        if data is None:
            return web.json_response({"errors": [{"code": "BLOB_UNKNOWN"}]}, status=404)
        response = web.StreamResponse(headers={"Docker-Content-Digest": digest})
        response.content_length = len(data)
        response.content_type = "application/octet-stream"
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        half = len(data) // 2
        for start in range(0, len(data), CHUNK):
            if self.gate is not None and start >= half:
                self.half_sent.set()
                await self.gate.wait()
            if self.break_after is not None and start >= self.break_after:
                assert request.transport is not None
                request.transport.close()
                return response
            await response.write(data[start : start + CHUNK])
        await response.write_eof()
        return response


async def serve(fake: FakeUpstream) -> TestServer:
    """Start ``fake`` on an ephemeral loopback port; the caller closes the server."""
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    fake.url = str(server.make_url("")).rstrip("/")
    return server
