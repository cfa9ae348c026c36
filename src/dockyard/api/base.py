"""Shared pieces of the HTTP API: app keys, the version check, small request helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from dockyard.core import Registry
from dockyard.oci import ErrorCode, RegistryError

REGISTRY = web.AppKey("registry", Registry)
PUBLIC_URL = web.AppKey("public_url", str)

API_VERSION = {"Docker-Distribution-API-Version": "registry/2.0"}


def registry(request: web.Request) -> Registry:
    """The registry core this request acts on."""
    return request.app[REGISTRY]


def url(request: web.Request, path: str) -> str:
    """``path`` as the client should follow it: absolute when a public URL is configured."""
    base = request.app.get(PUBLIC_URL, "")
    return f"{base.rstrip('/')}{path}" if base else path


def name(request: web.Request) -> str:
    """The raw repository name from the path (validated by the core)."""
    return request.match_info["name"]


def body_chunks(request: web.Request) -> AsyncIterator[bytes]:
    """The request body as it arrives, chunk by chunk, without buffering it whole."""
    return request.content.iter_any()


def has_body(request: web.Request) -> bool:
    """Whether the request carries a non-empty body (sized or chunked)."""
    return request.body_exists and request.content_length != 0


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The whole body, refusing more than ``limit`` bytes with MANIFEST_INVALID/413."""
    declared = request.content_length
    too_big = RegistryError(
        ErrorCode.MANIFEST_INVALID,
        f"manifest is larger than the {limit}-byte limit",
        status=413,
    )
    if declared is not None and declared > limit:
        raise too_big
    data = bytearray()
    async for chunk in request.content.iter_any():
        data += chunk
        if len(data) > limit:
            raise too_big
    return bytes(data)


async def version_check(_request: web.Request) -> web.Response:
    """``GET /v2/``: this registry speaks the v2 API (spec end-1)."""
    return web.json_response({}, headers=API_VERSION)
