"""Observability: Prometheus ``/metrics``, ``/healthz`` (alive) and ``/readyz`` (stores answer).

With several worker processes, ``PROMETHEUS_MULTIPROC_DIR`` (set by the server before
the workers start) makes every worker write its samples there and ``/metrics`` add
them up, so a scrape that lands on any worker sees the whole server.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from dockyard.api import REGISTRY
from dockyard.api.middleware import Handler
from dockyard.api.socketbody import taken
from dockyard.logs import sent_bytes

# At most this many (group, method, status) series are looked up once and kept.
_MAX_CACHED = 1000
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """The collectors of one server process, in their own registry."""

    def __init__(self) -> None:
        multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry()
        # In multiprocess mode the samples go to files and MultiProcessCollector reads
        # them all back; the collectors themselves must then not be registered.
        own = None if multiprocess else self.registry
        self.requests = Counter(
            "dockyard_http_requests_total",
            "HTTP requests answered, by endpoint group, method and status.",
            ["group", "method", "status"],
            registry=own,
        )
        self.latency = Histogram(
            "dockyard_http_request_duration_seconds",
            "Time to answer a request, by endpoint group and method.",
            ["group", "method"],
            buckets=_BUCKETS,
            registry=own,
        )
        self.bytes_in = Counter(
            "dockyard_http_request_body_bytes_total",
            "Request body bytes received.",
            ["group"],
            registry=own,
        )
        self.bytes_out = Counter(
            "dockyard_http_response_body_bytes_total",
            "Response body bytes sent.",
            ["group"],
            registry=own,
        )
        self.direct_bodies = Counter(
            "dockyard_http_request_bodies_direct_total",
            "Large request bodies read straight off the socket by a worker thread.",
            registry=own,
        )
        self.store_latency = Histogram(
            "dockyard_blob_store_operation_seconds",
            "Blob store operation latency, by operation.",
            ["operation"],
            buckets=_BUCKETS,
            registry=own,
        )
        if multiprocess:
            MultiProcessCollector(self.registry)  # type: ignore[no-untyped-call]
        else:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
        self.uploads = _UploadSessions()
        self.registry.register(self.uploads)
        # Labelled children, looked up once: ``labels()`` on every request (a lock, a
        # tuple, a dict) was most of the middleware's cost, itself 14% of manifest GETs.
        self._children: dict[tuple[str, str, int], _RequestSeries] = {}
        self._store_children: dict[str, Any] = {}

    def record_request(
        self, group: str, method: str, status: int, seconds: float, received: int, sent: int
    ) -> None:
        """Count one answered request and its duration and body bytes."""
        series = self._children.get((group, method, status))
        if series is None:
            series = _RequestSeries(
                self.requests.labels(group, method, str(status)),
                self.latency.labels(group, method),
                self.bytes_in.labels(group),
                self.bytes_out.labels(group),
            )
            if len(self._children) < _MAX_CACHED:  # methods come from clients
                self._children[(group, method, status)] = series
        series.requests.inc()
        series.latency.observe(seconds)
        if received:
            series.bytes_in.inc(received)
        if sent:
            series.bytes_out.inc(sent)

    def observe_store(self, operation: str, seconds: float) -> None:
        """Record one blob store operation (the ``TimedBlobStore`` callback)."""
        child = self._store_children.get(operation)
        if child is None:
            child = self._store_children[operation] = self.store_latency.labels(operation)
        child.observe(seconds)


@dataclass(frozen=True, slots=True)
class _RequestSeries:
    """The labelled children one (group, method, status) updates."""

    requests: Any
    latency: Any
    bytes_in: Any
    bytes_out: Any


METRICS = web.AppKey("metrics", Metrics)


def _group(request: web.Request) -> str:
    # The handler's module names the endpoint group: dockyard.api.blobs -> "blobs".
    handler = request.match_info.route.handler
    group = _GROUPS.get(handler)
    if group is None:
        module = getattr(handler, "__module__", "") or ""
        group = module.rsplit(".", 1)[-1] if module.startswith("dockyard.") else "other"
        _GROUPS[handler] = group
    return group


_GROUPS: dict[Any, str] = {}


@web.middleware
async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count and time every request (sits outside the error middleware)."""
    start = time.perf_counter()
    response: web.StreamResponse | None = None
    try:
        response = await handler(request)
        return response
    finally:
        if taken(request):
            request.app[METRICS].direct_bodies.inc()
        request.app[METRICS].record_request(
            _group(request),
            request.method,
            response.status if response is not None else 500,
            time.perf_counter() - start,
            request.content.total_bytes,
            sent_bytes(request, response) if response is not None else 0,
        )


class _UploadSessions(Collector):
    """Open upload sessions, read from metadata at scrape time (shared by all workers)."""

    def __init__(self) -> None:
        self.value = 0.0

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "dockyard_upload_sessions", "Upload sessions currently open.", value=self.value
        )


def setup(app: web.Application) -> Metrics:
    """Add the metrics middleware and the ``/metrics``, ``/healthz``, ``/readyz`` routes."""
    m = Metrics()
    app[METRICS] = m

    async def metrics(request: web.Request) -> web.Response:
        m.uploads.value = await request.app[REGISTRY].meta.count_uploads()
        # Collecting reads /proc (and the multiprocess files): keep it off the loop.
        body = await asyncio.to_thread(generate_latest, m.registry)
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        problems = await request.app[REGISTRY].check_ready()
        status = 503 if problems else 200
        return web.json_response(
            {"status": "unavailable" if problems else "ok", "problems": problems}, status=status
        )

    app.middlewares.insert(0, measure)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return m
