"""build_app(settings) -> the aiohttp application, with its resources' lifetimes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from dockyard import api, metadata, metrics
from dockyard.config import Settings
from dockyard.core import Registry
from dockyard.storage import BlobStore, FilesystemBlobStore
from dockyard.storage.timed import Observe, TimedBlobStore

log = logging.getLogger("dockyard")

SETTINGS = web.AppKey("settings", Settings)


def make_blob_store(settings: Settings) -> BlobStore:
    """The blob store the configuration names."""
    return FilesystemBlobStore(settings.blob_path, fsync=settings.storage.fsync)


async def open_registry(
    settings: Settings, *, migrate: bool = True, observe: Observe | None = None
) -> Registry:
    """Connect the stores (upgrading an embedded SQLite schema when ``migrate``)."""
    await asyncio.to_thread(settings.server.data_dir.mkdir, parents=True, exist_ok=True)
    store = await asyncio.to_thread(make_blob_store, settings)
    if observe is not None:
        store = TimedBlobStore(store, observe)
    engine = await asyncio.to_thread(
        metadata.create_engine, settings.metadata_url, settings.metadata.pool_size
    )
    if migrate:
        await metadata.upgrade(engine)
    else:
        await metadata.check(engine)
    meta = metadata.MetadataStore(engine)
    await meta.open()
    return Registry(
        store,
        meta,
        max_manifest_size=int(settings.server.max_manifest_size),
    )


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
    return app
