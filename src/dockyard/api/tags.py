"""``/v2/<name>/tags/list``: the repository's tags, paginated (spec end-8a, end-8b)."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from dockyard.api.base import name, registry, url
from dockyard.core import Page, parse_page_size


def next_link(request: web.Request, path: str, page: Page, n: int | None) -> dict[str, str]:
    """The RFC 5988 ``Link`` header to the next page, when there is one."""
    if not page.more or not page.items:
        return {}
    query = urlencode({"n": n if n is not None else len(page.items), "last": page.items[-1]})
    return {"Link": f'<{url(request, path)}?{query}>; rel="next"'}


async def list_tags(request: web.Request) -> web.Response:
    """GET: ``{"name": ..., "tags": [...]}`` in lexical order, ``n``/``last`` pagination."""
    repository = name(request)
    n = parse_page_size(request.query.get("n"))
    page = await registry(request).discovery.tags(repository, n, request.query.get("last"))
    return web.json_response(
        {"name": repository, "tags": page.items},
        headers=next_link(request, f"/v2/{repository}/tags/list", page, n),
    )
