"""Listings on the SQLite fast path: pages on the loop, long whole lists in a thread."""

from __future__ import annotations

import pytest

from dockyard.metadata import MetadataStore, store
from tests.metadata.test_store import digest_of, put_image

TAGS = tuple(f"v{i}" for i in range(7))
REPOSITORIES = tuple(f"repo-{i}" for i in range(7))


@pytest.fixture
def few_rows_on_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lists longer than 3 names are read through the engine instead of on the loop."""
    monkeypatch.setattr(store, "_LOOP_ROWS", 3)


@pytest.mark.usefixtures("few_rows_on_loop")
async def test_tag_lists_longer_than_the_loop_reads_are_whole(meta: MetadataStore) -> None:
    await put_image(meta, "app", "x", TAGS)
    assert await meta.list_tags("app", None, None) == list(TAGS)
    assert await meta.list_tags("app", None, "v1") == list(TAGS[2:])
    assert await meta.list_tags("app", 5, "v0") == list(TAGS[1:6])
    assert await meta.list_tags("app", 2, "v0") == ["v1", "v2"]
    assert await meta.list_tags("app", 3, None) == ["v0", "v1", "v2"]
    assert await meta.list_tags("app", None, "v3") == ["v4", "v5", "v6"]
    assert await meta.list_tags("app", 0, None) == []
    assert await meta.list_tags("nothing", 2, None) is None


@pytest.mark.usefixtures("few_rows_on_loop")
async def test_catalogs_longer_than_the_loop_reads_are_whole(meta: MetadataStore) -> None:
    for name in REPOSITORIES:
        await meta.link_blob(name, digest_of("blob"), 1)
    assert await meta.list_repositories(None, None) == list(REPOSITORIES)
    assert await meta.list_repositories(None, "repo-3") == list(REPOSITORIES[4:])
    assert await meta.list_repositories(5, "repo-0") == list(REPOSITORIES[1:6])
    assert await meta.list_repositories(2, "repo-4") == ["repo-5", "repo-6"]
    assert await meta.list_repositories(0, None) == []
