"""PostgreSQL as the shared metadata store: concurrent writers, migrations, refusing to
serve a schema it does not know."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from dockyard.metadata import MetadataStore, NewManifest, create_engine, upgrade
from tests.scaleout.replicas import digest_of
from tests.services import PostgresCluster

DOCKYARD = str(Path(sys.executable).with_name("dockyard"))


def manifest(i: int) -> NewManifest:
    content = f'{{"schemaVersion": 2, "n": {i}}}'.encode()
    return NewManifest(
        digest=digest_of(content),
        media_type="application/vnd.oci.image.manifest.v1+json",
        content=content,
        blob_refs=(),
        manifest_refs=(),
        subject_digest=None,
        artifact_type=None,
        annotations=None,
    )


@pytest.fixture
async def two_stores(
    postgres: PostgresCluster,
) -> AsyncIterator[tuple[MetadataStore, MetadataStore]]:
    """Two MetadataStores on one fresh database at head: two replicas' views."""
    database = await asyncio.to_thread(postgres.fresh_database)
    url = postgres.url(database)
    stores = []
    for _ in range(2):
        engine = await asyncio.to_thread(create_engine, url, 10)
        store = MetadataStore(engine)
        await store.open()
        stores.append(store)
    yield stores[0], stores[1]
    for store in stores:
        await store.close()
    await asyncio.to_thread(postgres.drop_database, database)


async def test_concurrent_tag_moves_lose_no_update(
    two_stores: tuple[MetadataStore, MetadataStore],
) -> None:
    a, b = two_stores
    moves = [manifest(i) for i in range(40)]
    # Every writer moves the same tag; the two stores stand for two replicas.
    results = await asyncio.gather(
        *(
            (a, b)[i % 2].put_manifest("race/app", m, ["latest", "stable"])
            for i, m in enumerate(moves)
        )
    )
    assert all(len(changes) == 2 for changes in results)
    for tag in ("latest", "stable"):
        history = await a.tag_history("race/app", tag)
        assert len(history) == len(moves)
        # A chain: each move replaced exactly the digest the previous move set.
        assert history[0].old_digest is None
        for before, after in itertools.pairwise(history):
            assert after.old_digest == before.new_digest
        current = await b.get_manifest("race/app", tag, by_digest=False)
        assert current is not None
        assert current.digest == history[-1].new_digest


async def test_the_same_manifest_pushed_through_both_at_once(
    two_stores: tuple[MetadataStore, MetadataStore],
) -> None:
    a, b = two_stores
    m = manifest(1)
    await asyncio.gather(*((a, b)[i % 2].put_manifest("race/same", m, ["v1"]) for i in range(10)))
    stored = await b.get_manifest("race/same", m.digest, by_digest=True)
    assert stored is not None
    assert stored.content == m.content
    history = await a.tag_history("race/same", "v1")
    assert [(h.old_digest, h.new_digest) for h in history] == [(None, m.digest)]


async def test_upload_sessions_are_shared(two_stores: tuple[MetadataStore, MetadataStore]) -> None:
    a, b = two_stores
    await a.create_upload("0123abcd", "race/upload")
    results = await asyncio.gather(
        a.advance_upload("0123abcd", 0, 100), b.advance_upload("0123abcd", 0, 200)
    )
    assert sorted(results) == [False, True]
    record = await b.get_upload("0123abcd")
    assert record is not None
    assert record.size == (100 if results[0] else 200)


def _dockyard(*args: str, url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKYARD_METADATA__URL": url}
    return subprocess.run(
        [DOCKYARD, *args, "--data-dir", str(tmp_path)] if args[0] == "serve" else [DOCKYARD, *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


async def test_a_database_at_0001_upgrades_to_head_with_data_intact(
    postgres: PostgresCluster, tmp_path: Path
) -> None:
    database = await asyncio.to_thread(postgres.create_database)
    url = postgres.url(database)
    engine = await asyncio.to_thread(create_engine, url, 2)
    await upgrade(engine, "0001")
    store = MetadataStore(engine)
    content = b"layer bytes"
    await store.link_blob("old/app", digest_of(content), len(content))
    old = manifest(7)
    await store.put_manifest("old/app", old, ["v1"])
    await store.create_upload("feedface", "old/app")
    await engine.dispose()

    # serve refuses, and names what is missing.
    refused = await asyncio.to_thread(_dockyard, "serve", "--port", "0", url=url, tmp_path=tmp_path)
    assert refused.returncode != 0
    assert "0001" in refused.stderr
    assert "missing migrations: 0002" in refused.stderr
    assert "dockyard migrate" in refused.stderr

    migrated = await asyncio.to_thread(_dockyard, "migrate", url=url, tmp_path=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert "0001 ->" in migrated.stdout

    engine = await asyncio.to_thread(create_engine, url, 2)
    store = MetadataStore(engine)
    try:
        assert await store.blob_size("old/app", digest_of(content)) == len(content)
        stored = await store.get_manifest("old/app", "v1", by_digest=False)
        assert stored is not None
        assert stored.content == old.content
        assert [h.new_digest for h in await store.tag_history("old/app", "v1")] == [old.digest]
        upload = await store.get_upload("feedface")
        assert upload is not None
        assert upload.repository == "old/app"
        async with engine.connect() as conn:
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
        assert version != "0001"
    finally:
        await engine.dispose()
        await asyncio.to_thread(postgres.drop_database, database)


async def test_concurrent_migrations_of_one_database(postgres: PostgresCluster) -> None:
    database = await asyncio.to_thread(postgres.create_database)
    engines = [await asyncio.to_thread(create_engine, postgres.url(database), 2) for _ in range(3)]
    try:
        await asyncio.gather(*(upgrade(engine) for engine in engines))
        async with engines[0].connect() as conn:
            versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
        assert len(versions) == 1
    finally:
        for engine in engines:
            await engine.dispose()
        await asyncio.to_thread(postgres.drop_database, database)
