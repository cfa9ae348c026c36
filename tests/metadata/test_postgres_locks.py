"""Row locks on PostgreSQL: GC skips what a push holds, and a deadlock is run again.

GC never waits for a row a push holds: it skips the row instead.

A manifest PUT locks the links it needs ``FOR SHARE``, one row after another in no
particular order. A sweep that waited for ``FOR UPDATE`` on a batch of those links
could close a cycle with such a PUT (each holding a row the other wants) and one of
them would die of "deadlock detected". Here a transaction stands in for a PUT half-way
through: it holds its rows and waits, and the sweep has to finish without them.

Pushes among themselves can still deadlock (row locks taken in different orders);
PostgreSQL rolls one back, and the store runs that transaction again.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Table, delete, select, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from dockyard.metadata import MetadataStore
from dockyard.metadata import schema as s
from dockyard.metadata.graph import GraphStore
from dockyard.metadata.lifecycle import BlobLink, LifecycleStore
from dockyard.metadata.postgres import ATTEMPTS, worth_retrying
from dockyard.metadata.sqlite_writes import wait
from tests.helpers import eventually
from tests.metadata.test_store import digest_of, new_manifest

on_postgresql = pytest.mark.parametrize("metadata_backend", ["postgresql"], indirect=True)

# Longer than the sweep needs, far shorter than "waits until the holder commits".
PATIENCE = 10


@asynccontextmanager
async def holding(engine: AsyncEngine, table: Table, digests: list[str]) -> AsyncIterator[None]:
    """A transaction holding ``FOR SHARE`` the rows of ``table`` with these digests,
    as a manifest PUT holds the links and child manifests it checked."""
    async with engine.connect() as conn, conn.begin():
        held = await conn.execute(
            select(table.c.digest).where(table.c.digest.in_(digests)).with_for_update(read=True)
        )
        assert sorted(held.scalars()) == sorted(digests)
        yield


@on_postgresql
async def test_the_sweep_skips_links_a_put_holds(meta: MetadataStore, engine: AsyncEngine) -> None:
    held, free = digest_of("held layer"), digest_of("free layer")
    for digest in (held, free):
        await meta.link_blob("app", digest, 10)
    life = LifecycleStore(meta)
    cutoff = datetime.now(UTC) + timedelta(seconds=1)
    async with holding(engine, s.repository_blobs, [held]):
        dropped = await asyncio.wait_for(life.drop_stale_links(cutoff), PATIENCE)
        assert dropped == [BlobLink("app", free, 10)]
    # Released (the PUT failed, say): the next sweep drops it.
    assert await life.drop_stale_links(cutoff) == [BlobLink("app", held, 10)]
    assert await meta.repositories_with_blob(held) == []


@on_postgresql
async def test_a_put_holding_its_links_still_stores_its_manifest(
    meta: MetadataStore, engine: AsyncEngine
) -> None:
    """The PUT's side of the race: the sweep ran while the PUT held its links, and the
    manifest the PUT stores afterwards keeps them."""
    layer = digest_of("layer")
    await meta.link_blob("app", layer, 10)
    life = LifecycleStore(meta)
    cutoff = datetime.now(UTC) + timedelta(seconds=1)
    async with holding(engine, s.repository_blobs, [layer]):
        assert await asyncio.wait_for(life.drop_stale_links(cutoff), PATIENCE) == []
    await meta.put_manifest("app", new_manifest("v1", blobs=(layer,)), ["v1"])
    assert await life.drop_stale_links(cutoff) == []
    assert await meta.blob_size("app", layer) == 10


@on_postgresql
async def test_retention_skips_a_manifest_an_index_put_holds(
    meta: MetadataStore, engine: AsyncEngine
) -> None:
    layer = digest_of("layer")
    await meta.link_blob("app", layer, 10)
    child = new_manifest("child", blobs=(layer,))
    await meta.put_manifest("app", child, [])
    graph = GraphStore(meta)
    async with holding(engine, s.manifests, [child.digest]):
        deleted = await asyncio.wait_for(
            graph.delete_untagged_manifest("app", child.digest, frozenset()), PATIENCE
        )
        assert deleted is False
    assert await meta.get_manifest("app", child.digest, by_digest=True) is not None
    assert await graph.delete_untagged_manifest("app", child.digest, frozenset()) is True
    assert await meta.get_manifest("app", child.digest, by_digest=True) is None


async def _until_a_transaction_waits_for_a_lock(
    engine: AsyncEngine, or_done: asyncio.Task[Any]
) -> None:
    """Until some session waits for a lock, or ``or_done`` finished without waiting."""
    waiting = text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
    async with engine.connect() as conn:

        async def check() -> bool:
            return or_done.done() or bool((await conn.execute(waiting)).scalar())

        await eventually(check, "the push to wait for retention's lock", PATIENCE)


@on_postgresql
async def test_a_push_of_a_manifest_retention_is_deleting_stores_it_again(
    meta: MetadataStore, engine: AsyncEngine
) -> None:
    """An untagged manifest, pushed again with a tag just as retention deletes it: the
    push waits for retention, then stores the manifest afresh under its tag."""
    layer = digest_of("layer")
    await meta.link_blob("app", layer, 10)
    image = new_manifest("v1", blobs=(layer,))
    await meta.put_manifest("app", image, [])
    m = s.manifests
    this = (m.c.digest == image.digest,)
    async with engine.connect() as retention, retention.begin():
        # Retention half-way: the manifest locked, and found untagged.
        await retention.execute(select(m.c.id).where(*this).with_for_update(skip_locked=True))
        push = asyncio.create_task(meta.put_manifest("app", image, ["v1"]))
        await _until_a_transaction_waits_for_a_lock(engine, push)
        await retention.execute(delete(m).where(*this))
    await asyncio.wait_for(push, PATIENCE)
    stored = await meta.get_manifest("app", "v1", by_digest=False)
    assert stored is not None
    assert stored.digest == image.digest
    assert stored.content == image.content
    # Stored afresh with its references: the sweep keeps the layer.
    life = LifecycleStore(meta)
    assert await life.drop_stale_links(datetime.now(UTC) + timedelta(seconds=1)) == []


@on_postgresql
async def test_a_manifest_delete_waits_for_a_put_and_removes_its_tag(
    meta: MetadataStore, engine: AsyncEngine
) -> None:
    """A DELETE of a manifest that a PUT (holding it) is tagging at that moment: the
    DELETE waits for the PUT, then removes the new tag too; no tag is left dangling."""
    layer = digest_of("layer")
    await meta.link_blob("app", layer, 10)
    image = new_manifest("v1", blobs=(layer,))
    await meta.put_manifest("app", image, ["old"])
    m, t = s.manifests, s.tags
    async with engine.connect() as put, put.begin():
        # The PUT half-way: the stored manifest held, a new tag pointed at it.
        held = await put.execute(
            select(m.c.id, m.c.repository_id)
            .where(m.c.digest == image.digest)
            .with_for_update(read=True)
        )
        repo_id = held.one().repository_id
        await put.execute(
            t.insert().values(
                repository_id=repo_id,
                name="new",
                manifest_digest=image.digest,
                updated_at=datetime.now(UTC),
            )
        )
        deleting = asyncio.create_task(meta.delete_manifest("app", image.digest))
        await _until_a_transaction_waits_for_a_lock(engine, deleting)
    assert await asyncio.wait_for(deleting, PATIENCE) is True
    assert await meta.list_tags("app", None, None) == []
    assert await meta.get_manifest("app", "new", by_digest=False) is None


@on_postgresql
async def test_a_transaction_rolled_back_by_a_deadlock_runs_again(meta: MetadataStore) -> None:
    a, b = digest_of("a"), digest_of("b")
    for digest in (a, b):
        await meta.link_blob("app", digest, 10)
    rb = s.repository_blobs
    locked = {a: asyncio.Event(), b: asyncio.Event()}
    runs: Counter[str] = Counter()

    def lock(conn: Connection, digest: str) -> None:
        conn.execute(select(rb.c.digest).where(rb.c.digest == digest).with_for_update())

    def crosswise(first: str, second: str) -> Callable[[Connection], None]:
        def body(conn: Connection) -> None:
            runs[first] += 1
            lock(conn, first)
            locked[first].set()
            wait(locked[second].wait())  # each holds one row and wants the other's
            lock(conn, second)

        return body

    both = asyncio.gather(meta._transact(crosswise(a, b)), meta._transact(crosswise(b, a)))
    await asyncio.wait_for(both, PATIENCE)
    # PostgreSQL rolled one back (after deadlock_timeout); it ran again and committed.
    assert sorted(runs.values()) == [1, 2]


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("sqlstate", "retried"),
    [("40P01", True), ("40001", True), ("23505", False), ("57014", False)],
)
def test_which_failures_run_again(sqlstate: str, retried: bool) -> None:
    """Deadlocks and serialization failures, up to ATTEMPTS runs; never a unique key or
    a statement timeout (running again would fail the same way, or take as long)."""
    error = OperationalError("SELECT 1", {}, _PgError(sqlstate))
    assert worth_retrying(error, 1) is retried
    assert worth_retrying(error, ATTEMPTS) is False
    assert worth_retrying(DBAPIError("SELECT 1", {}, Exception("sqlite")), 1) is False
