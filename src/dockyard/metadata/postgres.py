"""PostgreSQL specifics: recognising its URLs, and the connection settings.

Replicas share one PostgreSQL. Its default isolation, READ COMMITTED, lets two
transactions read the same row and both write it; the store therefore locks what it
is about to change (``SELECT ... FOR UPDATE``) and inserts with ``ON CONFLICT``, so a
concurrent tag move waits for the other one and records the digest it really replaced.
"""

from __future__ import annotations

from typing import Any


def is_postgresql(url: str) -> bool:
    """Whether ``url`` names a PostgreSQL database."""
    return url.startswith(("postgresql", "postgres:"))


def engine_options(pool_size: int, statement_timeout: float, pool_timeout: float) -> dict[str, Any]:
    """Keyword arguments of ``create_async_engine`` for an asyncpg PostgreSQL engine."""
    settings = server_settings(statement_timeout)
    return {
        "pool_size": pool_size,
        "max_overflow": pool_size,
        "pool_timeout": pool_timeout,
        "pool_pre_ping": True,
        "connect_args": {"server_settings": settings},
        # Read back by MetadataStore.open() for its point-read pool (postgres_reads.py).
        "execution_options": {SERVER_SETTINGS: settings},
    }


SERVER_SETTINGS = "dockyard_server_settings"


def server_settings(statement_timeout: float) -> dict[str, str]:
    """The session settings every Dockyard connection to PostgreSQL starts with."""
    return {
        "statement_timeout": str(int(statement_timeout * 1000)),
        "application_name": "dockyard",
    }
