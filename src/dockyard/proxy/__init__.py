"""Pull-through cache of upstream registries (Docker Hub, ghcr.io, quay.io, ...).

``setup(app, settings)`` is the only entry point; with no ``[[upstreams]]`` it does
nothing. It attaches a :class:`~dockyard.proxy.cache.PullThroughCache` to the registry
core as its :class:`~dockyard.core.Source`, so cached repositories are served by the
same handlers as pushed ones. Modules:

- ``upstream``: HTTP to one upstream: token dance, timeouts, back-off, rate limits;
- ``names``: which upstream serves a repository, Docker Hub short names, ``ns``;
- ``fetch``: single-flight blob downloads teed to storage and to the clients;
- ``cache``: the Source: local copies, tag revalidation, stale-if-error, negative cache;
- ``pulls``: last-pull times and least-recently-pulled eviction;
- ``web``: the ``ns`` middleware, the ``Warning`` header and metrics.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web as aiohttp_web

from dockyard.api import REGISTRY, errors
from dockyard.config import Settings
from dockyard.metrics import METRICS
from dockyard.proxy import cache, names, pulls, upstream, web
from dockyard.proxy.web import CACHE

log = logging.getLogger("dockyard.proxy")

__all__ = ["CACHE", "setup"]


def setup(app: aiohttp_web.Application, settings: Settings) -> None:
    """Serve ``settings.upstreams`` through the cache; nothing at all without any.

    Call after the registry's cleanup context is added: the cache attaches to it.
    """
    if not settings.upstreams:
        return

    async def proxy_ctx(app: aiohttp_web.Application) -> AsyncIterator[None]:
        core = app[REGISTRY]
        # Blobs are large: a bigger read buffer pauses the socket far less often.
        async with aiohttp.ClientSession(auto_decompress=False, read_bufsize=4 << 20) as session:
            upstreams = [upstream.Upstream(u, session) for u in settings.upstreams]
            pull_log = pulls.PullLog(
                core,
                {u.name: int(u.max_size) if u.max_size != "" else None for u in settings.upstreams},
                {u.name: u.prefix for u in settings.upstreams},
                {u.name: u.max_idle for u in settings.upstreams},
            )
            source = cache.PullThroughCache(core, names.Router(upstreams), pull_log)
            core.attach(source)
            app[CACHE] = source
            if METRICS in app:
                app[METRICS].registry.register(web.CacheCollector(source))
            if removed := await source.fetcher.remove_leftovers():
                log.info("removed %d spool file(s) left by an interrupted download", removed)
            flushing = pull_log.run()
            await anext(flushing)
            try:
                yield
            finally:
                await source.fetcher.close()
                await anext(flushing, None)

    app.cleanup_ctx.append(proxy_ctx)
    # Right inside the error middleware, before access control: names are mapped first.
    position = app.middlewares.index(errors) + 1 if errors in app.middlewares else 0
    app.middlewares.insert(position, web.namespace)
    app.on_response_prepare.append(web.stale_warning)
