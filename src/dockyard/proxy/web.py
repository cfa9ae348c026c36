"""The cache's HTTP side: containerd's ``ns`` parameter, the Warning header, metrics."""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from dockyard.api.middleware import Handler
from dockyard.proxy.cache import STALE_WARNING, PullThroughCache

CACHE = web.AppKey("proxy_cache", PullThroughCache)


@web.middleware
async def namespace(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map ``/v2/<name>/...?ns=<registry>`` to the cached repository of that registry.

    containerd sends ``ns`` when Dockyard mirrors several registries, one ``hosts.toml``
    each; ``ghcr.io``'s ``org/app`` then lives at ``<prefix>org/app``. An ``ns`` naming
    no configured upstream is ignored. The answer names the namespace it served in
    ``OCI-Namespace``.
    """
    ns = request.query.get("ns")
    name = request.match_info.get("name")
    if not ns or name is None:
        return await handler(request)
    upstream = request.app[CACHE].router.for_namespace(ns)
    if upstream is None:
        return await handler(request)
    prefix = upstream.settings.prefix
    if prefix and not name.startswith(prefix):
        # Handlers read the name from the path as the client spelled it: rewrite both.
        request.match_info["name"] = prefix + name
        path = "/v2/" + prefix + request.rel_url.path.removeprefix("/v2/")
        request = request.clone(rel_url=request.rel_url.with_path(path))
    response = await handler(request)
    response.headers["OCI-Namespace"] = ns
    return response


async def stale_warning(_request: web.BaseRequest, response: web.StreamResponse) -> None:
    """``on_response_prepare``: say so when the cache answered with stale content."""
    warning = STALE_WARNING.get()
    if warning is not None:
        response.headers["Warning"] = warning
        STALE_WARNING.set(None)


class CacheCollector(Collector):
    """Cache counters and upstream rate limits, read at scrape time."""

    def __init__(self, cache: PullThroughCache) -> None:
        self._cache = cache

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        stats = self._cache.stats
        for name, help_text, values in (
            ("dockyard_cache_hits", "Cached blobs and manifests served locally.", stats.hits),
            ("dockyard_cache_misses", "Requests that had to go upstream.", stats.misses),
            (
                "dockyard_cache_stale_served",
                "Cached tags served stale because the upstream failed (Warning header).",
                stats.stale,
            ),
            (
                "dockyard_cache_upstream_errors",
                "Failed upstream round trips.",
                stats.upstream_errors,
            ),
        ):
            family = CounterMetricFamily(name, help_text, labels=["upstream"])
            for upstream, value in sorted(values.items()):
                family.add_metric([upstream], value)
            yield family
        limit = GaugeMetricFamily(
            "dockyard_cache_upstream_ratelimit_limit",
            "The upstream's last ratelimit-limit header.",
            labels=["upstream"],
        )
        remaining = GaugeMetricFamily(
            "dockyard_cache_upstream_ratelimit_remaining",
            "The upstream's last ratelimit-remaining header.",
            labels=["upstream"],
        )
        for each in self._cache.router.upstreams:
            if each.rate_limit.limit is not None:
                limit.add_metric([each.name], each.rate_limit.limit)
            if each.rate_limit.remaining is not None:
                remaining.add_metric([each.name], each.rate_limit.remaining)
        yield limit
        yield remaining
        evicted = CounterMetricFamily(
            "dockyard_cache_evicted_blobs", "Blobs evicted as least recently pulled."
        )
        evicted.add_metric([], self._cache.pulls.evicted)
        yield evicted
