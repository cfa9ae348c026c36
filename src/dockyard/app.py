"""build_app(settings) -> the aiohttp application, with its resources' lifetimes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from dockyard import api, auth, gc, metadata, metrics, proxy
from dockyard.config import Settings
from dockyard.core import Registry
from dockyard.storage import BlobStore, FilesystemBlobStore
from dockyard.storage.s3 import open_object_store
from dockyard.storage.timed import Observe, TimedBlobStore

log = logging.getLogger("dockyard")

T = TypeVar("T")

SETTINGS = web.AppKey("settings", Settings)


def make_blob_store(settings: Settings) -> BlobStore:
    """The blob store the configuration names."""
    cfg = settings.storage
    if cfg.kind == "filesystem":
        return FilesystemBlobStore(settings.blob_path, fsync=cfg.fsync)
    return open_object_store(
        cfg.kind,
        bucket=cfg.bucket,
        prefix=cfg.prefix,
        endpoint=cfg.endpoint,
        region=cfg.region,
        access_key_id=cfg.access_key_id,
        secret_access_key=cfg.secret_access_key,
        path_style=cfg.path_style,
        redirect_ttl=cfg.redirect_ttl if cfg.redirect else None,
    )


def open_engine(settings: Settings, pool_size: int | None = None) -> AsyncEngine:
    """An engine on the configured metadata database (blocking: call off the loop)."""
    return metadata.create_engine(
        settings.metadata_url,
        pool_size or settings.metadata.pool_size,
        statement_timeout=settings.metadata.statement_timeout,
        pool_timeout=settings.metadata.pool_timeout,
    )


async def open_registry(
    settings: Settings, *, migrate: bool = True, observe: Observe | None = None
) -> Registry:
    """Connect the stores (upgrading an embedded SQLite schema when ``migrate``).

    A shared PostgreSQL database is never upgraded here, only checked: replicas of
    different versions must not race to migrate it (``dockyard migrate`` does).
    """
    await asyncio.to_thread(settings.server.data_dir.mkdir, parents=True, exist_ok=True)
    store = await asyncio.to_thread(make_blob_store, settings)
    if observe is not None:
        store = TimedBlobStore(store, observe)
    engine = await asyncio.to_thread(open_engine, settings)
    if migrate and not metadata.is_postgresql(settings.metadata_url):
        await metadata.upgrade(engine)
    else:
        await metadata.check(engine)
    meta = metadata.MetadataStore(engine)
    await meta.open()
    return Registry(
        store,
        meta,
        max_manifest_size=int(settings.server.max_manifest_size),
        quotas={q.namespace: int(q.size) for q in settings.quota},
    )


def run_with_registry(settings: Settings, work: Callable[[Registry], Awaitable[T]]) -> T:
    """Open the registry, run ``work`` on it, close it: the CLI commands' one-shot use."""

    async def _run() -> T:
        registry = await open_registry(settings)
        try:
            return await work(registry)
        finally:
            await registry.meta.close()

    return asyncio.run(_run())


def build_app(settings: Settings) -> web.Application:
    """The whole registry as an aiohttp application; stores open on startup."""
    app = web.Application(middlewares=[api.errors], handler_args={"max_field_size": 16384})
    app[SETTINGS] = settings
    app[api.PUBLIC_URL] = settings.server.public_url
    measured = metrics.setup(app)

    async def registry_ctx(app: web.Application) -> AsyncIterator[None]:
        core = await open_registry(settings, observe=measured.observe_store)
        app[api.REGISTRY] = core
        yield
        await core.meta.close()

    app.cleanup_ctx.append(registry_ctx)
    app.on_response_prepare.append(api.stamp_headers)
    api.add_routes(app)
    # After registry_ctx: access control reads robot accounts from the metadata store.
    auth.setup(app, settings)
    # Read-only maintenance mode, and GC and retention on a schedule when configured.
    gc.setup(app, settings, lambda: app[api.REGISTRY])
    # After registry_ctx: the pull-through cache attaches to the registry core.
    proxy.setup(app, settings)
    return app
