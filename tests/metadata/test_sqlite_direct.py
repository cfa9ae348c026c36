"""Prepared statements run directly on SQLite store exactly what SQLAlchemy stores, and
anything that cannot run directly still runs, through SQLAlchemy."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, select

from dockyard.metadata import queries as q
from dockyard.metadata import schema as s
from dockyard.metadata.sqlite_direct import DirectConnection, Prepared, Rows

WHEN = datetime(2026, 12, 5, 4, 30, 1, 250000, tzinfo=UTC)
UPSERTS = q.upserts("sqlite")


def _connection(path: Path) -> Iterator[Connection]:
    engine = create_engine(f"sqlite+pysqlite:///{path}")
    s.metadata.create_all(engine)
    with engine.connect() as conn:
        yield conn
    engine.dispose()


@pytest.fixture
def plain(tmp_path: Path) -> Iterator[Connection]:
    """A SQLAlchemy connection on a fresh database with the schema."""
    yield from _connection(tmp_path / "plain.db")


@pytest.fixture
def direct(tmp_path: Path) -> Iterator[DirectConnection]:
    """The same, with the push's statements run directly."""
    for conn in _connection(tmp_path / "direct.db"):
        direct = DirectConnection(conn, Prepared(q.write_statements("sqlite")))
        yield direct
        direct._cursor.close()


def _push(conn: Any) -> list[Any]:
    """A push's statements (the upserts return ids and names); what they returned."""
    returned = []
    repo_id = conn.execute(UPSERTS.repository, {"name": "a/b", "created_at": WHEN}).scalar()
    returned.append(repo_id)
    upload = {"id": "u1", "repository": "a/b", "size": 0, "created_at": WHEN, "updated_at": WHEN}
    conn.execute(q.INSERT_UPLOAD, upload)
    moved = conn.execute(
        q.ADVANCE_UPLOAD, {"upload_id": "u1", "expected": 0, "size": 7, "updated_at": WHEN}
    )
    returned.append(moved.rowcount)
    conn.execute(UPSERTS.blob, {"digest": "sha256:" + "1" * 64, "size": 7, "created_at": WHEN})
    link = {"repository_id": repo_id, "digest": "sha256:" + "1" * 64, "created_at": WHEN}
    conn.execute(UPSERTS.link, link)
    manifest = {
        "repository_id": repo_id,
        "digest": "sha256:" + "2" * 64,
        "media_type": "application/vnd.oci.image.manifest.v1+json",
        "size": 3,
        "content": b"{}\n",
        "artifact_type": None,
        "subject_digest": None,
        "annotations": {"org.opencontainers.image.title": "t", "n": [1, 2]},
        "created_at": WHEN,
    }
    manifest_id = conn.execute(UPSERTS.manifest, manifest).scalar()
    returned.append(manifest_id)
    returned.append(conn.execute(UPSERTS.manifest, manifest).scalar())  # exists: no id
    refs = [{"manifest_id": manifest_id, "digest": "sha256:" + "1" * 64, "kind": "blob"}]
    conn.execute(q.INSERT_MANIFEST_REF, refs)
    tag = {"repository_id": repo_id, "name": "v1", "manifest_digest": "sha256:" + "2" * 64}
    returned.append(conn.execute(UPSERTS.tag, {**tag, "updated_at": WHEN}).first())
    history = {
        "repository_id": repo_id,
        "tag": "v1",
        "old_digest": None,
        "new_digest": tag["manifest_digest"],
        "changed_at": WHEN,
        "reason": "push",
    }
    conn.execute(q.INSERT_TAG_HISTORY, history)
    returned.append(
        conn.execute(q.TAG_FOR_UPDATE, {"repository_id": repo_id, "name": "v1"}).scalar()
    )
    returned.append(conn.execute(q.DELETE_UPLOAD, {"id": "u1"}).rowcount)
    return [tuple(r) if isinstance(r, tuple) else r for r in returned]


def _tables(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    cursor = dbapi.cursor()
    tables = {}
    for table in s.metadata.sorted_tables:
        cursor.execute(f"SELECT * FROM {table.name} ORDER BY 1")
        tables[table.name] = list(cursor.fetchall())
    return tables


def test_direct_statements_store_and_return_what_sqlalchemy_does(
    plain: Connection, direct: DirectConnection
) -> None:
    with plain.begin():
        expected = _push(plain)
    with direct.begin():
        got = _push(direct)
    assert got == expected
    assert expected[:2] == [1, 1]
    tables = _tables(direct._conn)
    assert tables == _tables(plain)
    # The conversions SQLAlchemy makes were made: dates as text, JSON as text.
    (manifest,) = tables["manifests"]
    assert "2026-12-05 04:30:01.250000" in manifest
    assert '{"org.opencontainers.image.title": "t", "n": [1, 2]}' in manifest


def test_what_cannot_run_directly_runs_through_sqlalchemy(direct: DirectConnection) -> None:
    with direct.begin():
        _push(direct)
        # An IN list rendered per call, and a statement built on the fly.
        found = direct.execute(
            q.LINKED_BLOBS, {"repository_id": 1, "digests": {"sha256:" + "1" * 64, "sha256:x"}}
        )
        assert list(found.scalars()) == ["sha256:" + "1" * 64]
        assert not isinstance(found, Rows)
        names = direct.execute(select(s.repositories.c.name)).scalars().all()
        assert names == ["a/b"]


def test_no_plan_for_statements_that_need_sqlalchemy_at_each_execution() -> None:
    prepared = Prepared([q.LINKED_BLOBS, q.REPOSITORY_ID])
    assert prepared.get(q.LINKED_BLOBS, ("repository_id", "digests")) is None
    assert prepared.get(q.UPLOAD, ("upload_id",)) is None  # not prepared
    plan = prepared.get(q.REPOSITORY_ID, ("name",))
    assert plan is not None
    assert plan.sql.startswith("SELECT repositories.id")


def test_rows() -> None:
    assert Rows([], 0).scalar() is None
    assert Rows([], 0).first() is None
    assert Rows([(1, "a"), (2, "b")], -1).scalars() == [1, 2]
    assert Rows([(3,)], 1).scalar_one() == 3
    with pytest.raises(LookupError):
        Rows([], 0).scalar_one()
    with pytest.raises(LookupError):
        Rows([(1,), (2,)], 2).scalar_one_or_none()
