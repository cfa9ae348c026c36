"""Opening a metadata database: the URL a user writes, the engine Dockyard runs on it."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from dockyard.metadata import postgres
from dockyard.metadata.sqlite_writes import tune


def database_url(url: str) -> str:
    """Map user-facing URLs to async drivers (``sqlite:///x`` -> ``sqlite+aiosqlite:///x``)."""
    for plain, driver in (
        ("sqlite://", "sqlite+aiosqlite://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


def create_engine(
    url: str, pool_size: int = 10, *, statement_timeout: float = 30.0, pool_timeout: float = 30.0
) -> AsyncEngine:
    """An async engine for ``url`` with Dockyard's connection settings.

    ``statement_timeout`` and ``pool_timeout`` (seconds) apply to PostgreSQL.
    """
    url = database_url(url)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size)
        tune(engine.sync_engine)
        return engine
    return create_async_engine(
        url, **postgres.engine_options(pool_size, statement_timeout, pool_timeout)
    )
