"""Read-only maintenance mode: pulls work, anything that writes answers 405 UNSUPPORTED."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from dockyard.oci import ErrorCode, RegistryError

_READS = frozenset({"GET", "HEAD", "OPTIONS"})
MAINTENANCE = (
    "the registry is in read-only maintenance mode: pulls work, pushes and deletes are "
    "refused until maintenance ends"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def read_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse every write to the registry API (``/v2/``) with UNSUPPORTED."""
    if request.method not in _READS and request.path.startswith("/v2/"):
        raise RegistryError(ErrorCode.UNSUPPORTED, MAINTENANCE, detail={"read_only": True})
    return await handler(request)
