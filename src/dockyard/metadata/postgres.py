"""PostgreSQL specifics: recognising its URLs, and the connection settings.

Replicas share one PostgreSQL. Its default isolation, READ COMMITTED, lets two
transactions read the same row and both write it; the store therefore locks what it
is about to change (``SELECT ... FOR UPDATE``) and inserts with ``ON CONFLICT``, so a
concurrent tag move waits for the other one and records the digest it really replaced.

Row locks taken in different orders can still close a cycle (a manifest DELETE and an
index PUT moving the same tag, say); PostgreSQL then rolls one transaction back with
``deadlock_detected``. A write transaction is a function of its connection
(:meth:`Database._transact`), so it is simply run again: :func:`worth_retrying`.
GC's sweeps never wait for a row (``SKIP LOCKED``) and so never take part.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.exc import DBAPIError

log = logging.getLogger("dockyard.metadata")

# deadlock_detected, serialization_failure: the transaction was rolled back and running
# it again is the answer PostgreSQL expects.
RETRIED_STATES = frozenset({"40P01", "40001"})
# Runs of one transaction at most: a third collision in a row is a pattern, not bad luck.
ATTEMPTS = 3


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


def worth_retrying(error: DBAPIError, attempt: int) -> bool:
    """Whether a write transaction that failed with ``error`` on its ``attempt``-th run
    (from 1) should run again; logs the retry."""
    state = getattr(error.orig, "sqlstate", None)
    if state not in RETRIED_STATES or attempt >= ATTEMPTS:
        return False
    log.warning("transaction rolled back by PostgreSQL (%s), running it again", state)
    return True
