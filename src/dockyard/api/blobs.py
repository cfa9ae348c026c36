"""``/v2/<name>/blobs/<digest>``: fetch, check and delete blobs (spec end-2, end-10)."""

from __future__ import annotations

from aiohttp import web

from dockyard.api.base import name, registry
from dockyard.api.blobsend import send_blob


async def get_blob(request: web.Request) -> web.StreamResponse:
    """GET/HEAD a blob, whole or a Range of it."""
    core = registry(request)
    blob = await core.blobs.stat(name(request), request.match_info["digest"])
    return await send_blob(request, core, blob)


async def delete_blob(request: web.Request) -> web.Response:
    """DELETE a blob from one repository: 202, or BLOB_UNKNOWN."""
    await registry(request).blobs.delete(name(request), request.match_info["digest"])
    return web.Response(status=202)
