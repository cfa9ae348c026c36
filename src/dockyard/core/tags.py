"""Discovery: tag lists and the catalog, with the spec's ``n``/``last`` pagination."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.core import validation
from dockyard.core.blobs import CanRead
from dockyard.metadata import MetadataStore, TagChange
from dockyard.oci import ErrorCode, RegistryError

# The most entries one page carries, whatever ``n`` asks: a larger ``n`` gets this many
# and a Link to the rest, as the spec allows.
MAX_PAGE = 10_000
# Repositories read per query while filtering the catalog by what the caller may pull.
_FILTER_BATCH = 1_000


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing; ``more`` says whether entries follow ``items[-1]``."""

    items: list[str]
    more: bool


def parse_page_size(raw: str | None) -> int | None:
    """The ``n`` query parameter: None when absent, else a non-negative integer."""
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise RegistryError(
            ErrorCode.PAGINATION_NUMBER_INVALID,
            f"n must be a non-negative integer, not {raw[:50]!r}",
        )
    return int(raw)


class Discovery:
    """Tag and repository listings."""

    def __init__(self, meta: MetadataStore) -> None:
        self._meta = meta

    async def tags(self, repository: str, n: int | None, last: str | None) -> Page:
        """Tags of ``repository`` in lexical order; NAME_UNKNOWN if there is no such repository."""
        name = validation.repository_name(repository)
        limit = _limit(n)
        if limit == 0:
            if not await self._meta.repository_exists(name):
                raise RegistryError(ErrorCode.NAME_UNKNOWN, detail={"name": name})
            return Page([], more=False)
        rows = await self._meta.list_tags(name, limit + 1 if limit else None, last)
        if rows is None:
            raise RegistryError(ErrorCode.NAME_UNKNOWN, detail={"name": name})
        return _page(rows, limit)

    async def repositories(
        self, n: int | None, last: str | None, can_read: CanRead | None = None
    ) -> Page:
        """Repository names in lexical order; only those ``can_read`` allows, when given.

        Filtering happens before paging, so a page is full whenever enough readable
        repositories follow ``last``, and its ``Link`` never points past a hidden one.
        """
        limit = _limit(n)
        if limit == 0:
            return Page([], more=False)
        if can_read is None:
            rows = await self._meta.list_repositories(limit + 1 if limit else None, last)
            return _page(rows, limit)
        wanted = None if limit is None else limit + 1
        visible: list[str] = []
        while wanted is None or len(visible) < wanted:
            batch = await self._meta.list_repositories(_FILTER_BATCH, last)
            visible += [name for name in batch if await can_read(name)]
            if len(batch) < _FILTER_BATCH:
                break
            last = batch[-1]
        return _page(visible, limit)

    async def history(self, repository: str, tag: str | None = None) -> list[TagChange]:
        """Every recorded move of ``tag`` (or of every tag) in ``repository``."""
        name = validation.repository_name(repository)
        return await self._meta.tag_history(name, tag)


def _limit(n: int | None) -> int | None:
    return None if n is None else min(n, MAX_PAGE)


def _page(rows: list[str], limit: int | None) -> Page:
    if limit is not None and len(rows) > limit:
        return Page(rows[:limit], more=True)
    return Page(rows, more=False)
