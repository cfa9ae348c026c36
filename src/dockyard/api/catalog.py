"""``/v2/_catalog``: the repositories, paginated like tag lists."""

from __future__ import annotations

from aiohttp import web

from dockyard.api.base import read_check, registry
from dockyard.api.tags import next_link
from dockyard.core import parse_page_size


async def catalog(request: web.Request) -> web.Response:
    """GET: ``{"repositories": [...]}`` in lexical order, those the caller may pull."""
    n = parse_page_size(request.query.get("n"))
    page = await registry(request).discovery.repositories(
        n, request.query.get("last"), read_check(request)
    )
    return web.json_response(
        {"repositories": page.items}, headers=next_link(request, "/v2/_catalog", page, n)
    )
