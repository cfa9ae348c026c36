"""Shared pieces of the HTTP API: app keys, the version check, small request helpers."""

from __future__ import annotations

from aiohttp import web

from dockyard.core import ALLOW_ALL, Access, CanRead, Registry, can_pull
from dockyard.oci import ErrorCode, RegistryError

REGISTRY = web.AppKey("registry", Registry)
PUBLIC_URL = web.AppKey("public_url", str)
# The caller's permissions, set by the access-control middleware; absent when it is off.
ACCESS = web.RequestKey[Access]("access")

API_VERSION = {"Docker-Distribution-API-Version": "registry/2.0"}


def registry(request: web.Request) -> Registry:
    """The registry core this request acts on."""
    return request.app[REGISTRY]


def access(request: web.Request) -> Access:
    """What the caller may do; everything when access control is off."""
    granted = request.get(ACCESS)
    return ALLOW_ALL if granted is None else granted


def read_check(request: web.Request) -> CanRead | None:
    """Whether the caller may pull a given repository; None when access control is off."""
    granted = request.get(ACCESS)
    return None if granted is None else can_pull(granted)


def url(request: web.Request, path: str) -> str:
    """``path`` as the client should follow it: absolute when a public URL is configured."""
    base = request.app.get(PUBLIC_URL, "")
    return f"{base.rstrip('/')}{path}" if base else path


def name(request: web.Request) -> str:
    """The repository name as the client spelled it in the path (validated by the core).

    The router percent-decodes what it matched, so ``/v2/a%2Fb/...`` would name the
    repository ``a/b``. The name grammar has no escapes: when the raw path spells the
    name differently, the core gets that raw spelling and answers NAME_INVALID.
    """
    decoded = request.match_info["name"]
    raw_path = request.raw_path.partition("?")[0]
    if raw_path.startswith(f"/v2/{decoded}/"):
        return decoded
    raw = raw_path.removeprefix("/v2/")
    suffix = request.path[len("/v2/") + len(decoded) :]
    return raw.removesuffix(suffix) if suffix else raw


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
