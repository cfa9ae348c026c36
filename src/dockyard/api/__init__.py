"""The HTTP API: thin aiohttp handlers over the registry core."""

from dockyard.api.base import ACCESS, PUBLIC_URL, REGISTRY
from dockyard.api.middleware import errors, stamp_headers
from dockyard.api.routes import add_routes

__all__ = ["ACCESS", "PUBLIC_URL", "REGISTRY", "add_routes", "errors", "stamp_headers"]
