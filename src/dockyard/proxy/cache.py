"""The pull-through cache as the core sees it: a :class:`~dockyard.core.Source`.

Like devpi's ``MirrorStage`` beside its ``PrivateStage``, and distribution's
``proxyBlobStore`` around its ``BlobStore``, this answers the same questions the core
answers for local repositories, so handlers cannot tell a cached repository from a
pushed one. What it fetches it records through the core (:meth:`Blobs.ingest`,
:meth:`Manifests.record`), so cached content is ordinary content: listed, served with
``sendfile``, referenced, collected.

Freshness:

- blobs and manifests fetched by digest are immutable: cached forever (until evicted
  or collected), never revalidated;
- a tag is revalidated with a ``HEAD`` once ``tag_ttl`` has passed since it was last
  checked; when the upstream digest moved, the new manifest is fetched and the local
  tag moves (tag history records reason ``cache``);
- when the upstream is down, slow, failing or rate limiting, a cached tag is served as it
  is (``stale_if_error``) with a ``Warning`` header; with nothing cached the client
  gets UNAVAILABLE naming the upstream.

Tag check times live in memory: after a restart each tag is revalidated once more.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

from dockyard.core import BlobInfo, ManifestRecord, Registry, WriteAction
from dockyard.oci import Digest, ErrorCode, RegistryError, mediatypes
from dockyard.proxy.fetch import BlobFetcher
from dockyard.proxy.names import Route, Router
from dockyard.proxy.pulls import PullLog
from dockyard.proxy.upstream import Upstream, UpstreamDenied, UpstreamError, UpstreamNotFound

# A manifest, and the Warning to send with it when it is served stale.
_Answer = tuple[ManifestRecord, str | None]

# Every manifest kind we can store: the upstream picks, and we keep what it sent.
ACCEPT = ", ".join(
    (
        mediatypes.OCI_INDEX,
        mediatypes.OCI_MANIFEST,
        mediatypes.DOCKER_MANIFEST_LIST,
        mediatypes.DOCKER_MANIFEST,
    )
)

# Set while answering a request with stale content; the response hook turns it into a
# ``Warning`` header (proxy/web.py). Handlers run in one task, so the hook sees it.
STALE_WARNING: ContextVar[str | None] = ContextVar("dockyard_stale_warning", default=None)


@dataclass(slots=True)
class CacheStats:
    """Counters the metrics collector reads, per upstream name."""

    hits: dict[str, int] = field(default_factory=dict)
    misses: dict[str, int] = field(default_factory=dict)
    stale: dict[str, int] = field(default_factory=dict)
    upstream_errors: dict[str, int] = field(default_factory=dict)

    @staticmethod
    def bump(counter: dict[str, int], upstream: str) -> None:
        counter[upstream] = counter.get(upstream, 0) + 1


class PullThroughCache:
    """The :class:`~dockyard.core.Source` of every configured upstream."""

    def __init__(self, core: Registry, router: Router, pulls: PullLog) -> None:
        self._core = core
        self.router = router
        self.pulls = pulls
        self.stats = CacheStats()
        self.fetcher = BlobFetcher(core)
        self._checked: dict[tuple[str, str], float] = {}
        self._not_found: dict[tuple[str, str], float] = {}
        self._inflight: dict[tuple[str, ...], asyncio.Future[_Answer]] = {}

    # -- Source ---------------------------------------------------------------------

    def covers(self, repository: str) -> bool:
        """Whether ``repository`` is served through an upstream (a prefix check)."""
        return self.router.covers(repository)

    def refuse_write(self, repository: str, action: WriteAction) -> RegistryError:
        """Cached repositories mirror their upstream: clients cannot change them."""
        route = self.router.route(repository)
        return RegistryError(
            ErrorCode.DENIED,
            f"{repository} is a read-only cache of upstream {route.upstream.name!r} "
            f"({route.upstream.base}): {action} there is not allowed",
            detail={"upstream": route.upstream.name, "repository": repository},
        )

    async def stat_blob(self, repository: str, digest: Digest) -> BlobInfo:
        """The local copy, or the blob streaming in from the upstream."""
        route = self.router.route(repository)
        name = route.upstream.name
        size = await self._core.meta.blob_size(route.local, str(digest))
        if size is not None:
            self.stats.bump(self.stats.hits, name)
            self.pulls.touch(name, str(digest), size)
            return BlobInfo(digest, size, self._core.store.local_path(digest))
        self.stats.bump(self.stats.misses, name)
        size = self.fetcher.size_in_flight(digest)
        if size is None:
            size = await self._upstream_blob_size(route, digest)
            adopted = await self._core.blobs.adopt(route.local, digest, size)
            if adopted is not None:
                self.pulls.touch(name, str(digest), size)
                return adopted
        self.pulls.touch(name, str(digest), size)
        return BlobInfo(digest, size, None, self.fetcher.stream(route, digest, size))

    async def get_manifest(self, repository: str, reference: str | Digest) -> ManifestRecord:
        """A manifest by digest (cached forever) or by tag (revalidated after its TTL)."""
        route = self.router.route(repository)
        meta = self._core.meta
        if isinstance(reference, Digest):
            record = await meta.get_manifest(route.local, str(reference), by_digest=True)
            if record is not None:
                self.stats.bump(self.stats.hits, route.upstream.name)
                return record
            self.stats.bump(self.stats.misses, route.upstream.name)
            return await self._once(
                ("digest", route.local, str(reference)),
                lambda: self._guarded(route, str(reference), None),
            )
        record = await meta.get_manifest(route.local, reference, by_digest=False)
        checked = self._checked.get((route.local, reference))
        ttl = route.upstream.settings.tag_ttl
        if record is not None and checked is not None and time.monotonic() - checked < ttl:
            self.stats.bump(self.stats.hits, route.upstream.name)
            return record
        return await self._once(
            ("tag", route.local, reference), lambda: self._guarded(route, reference, record)
        )

    # -- upstream round trips -------------------------------------------------------

    async def _once(
        self, key: tuple[str, ...], fetch: Callable[[], Awaitable[_Answer]]
    ) -> ManifestRecord:
        """Single flight: concurrent callers for ``key`` share one fetch (its own task,
        so one caller hanging up does not cancel it for the others)."""
        pending = self._inflight.get(key)
        if pending is None:
            pending = asyncio.ensure_future(fetch())
            self._inflight[key] = pending
            pending.add_done_callback(lambda done: self._settled(key, done))
        record, warning = await asyncio.shield(pending)
        if warning is not None:
            # Set here, in the request's own task, where the response hook will see it.
            STALE_WARNING.set(warning)
        return record

    def _settled(self, key: tuple[str, ...], done: asyncio.Future[_Answer]) -> None:
        self._inflight.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved: every waiter may have gone

    async def _guarded(
        self, route: Route, reference: str, cached: ManifestRecord | None
    ) -> _Answer:
        """Revalidate or fetch ``reference``; on upstream failure, stale or UNAVAILABLE."""
        upstream = route.upstream
        key = (route.local, reference)
        if self._not_found.get(key, 0.0) > time.monotonic():
            raise _manifest_unknown(route, reference)
        try:
            record = await self._revalidate(route, reference, cached)
        except UpstreamNotFound:
            self._not_found[key] = time.monotonic() + upstream.settings.negative_ttl
            raise _manifest_unknown(route, reference) from None
        except (UpstreamError, UpstreamDenied) as e:
            self.stats.bump(self.stats.upstream_errors, upstream.name)
            if cached is not None and upstream.settings.stale_if_error:
                self.stats.bump(self.stats.stale, upstream.name)
                warning = (
                    f'110 dockyard "Response is stale: upstream {upstream.name} '
                    f'could not revalidate it ({_short(e)})"'
                )
                return cached, warning
            raise _unavailable(upstream, str(e)) from None
        if ":" not in reference:
            self._checked[key] = time.monotonic()
        return record, None

    async def _revalidate(
        self, route: Route, reference: str, cached: ManifestRecord | None
    ) -> ManifestRecord:
        wanted = reference
        if cached is not None:
            async with route.upstream.open(
                "HEAD", route.remote, f"manifests/{reference}", ACCEPT
            ) as response:
                current = response.headers.get("Docker-Content-Digest")
            if current == cached.digest:
                return cached
            # The tag moved: fetch the new manifest by its digest (or by tag, when the
            # upstream does not say), so what is stored is what the HEAD named.
            wanted = current or reference
        data, content_type = await self._download_manifest(route, wanted)
        if ":" in wanted:
            digest = Digest.of(data, Digest.parse(wanted).algorithm)
            if str(digest) != wanted:
                raise UpstreamError(
                    f"upstream {route.upstream.name!r} served a manifest hashing to "
                    f"{digest}, not {wanted}"
                )
        else:
            digest = Digest.of(data)
        # By tag: stored and the tag moved in one transaction (history reason "cache").
        target = reference if ":" not in reference else str(digest)
        await self._core.manifests.record(route.local, target, data, content_type)
        stored = await self._core.meta.get_manifest(route.local, str(digest), by_digest=True)
        assert stored is not None
        return stored

    async def _download_manifest(self, route: Route, reference: str) -> tuple[bytes, str | None]:
        limit = self._core.manifests.max_size
        async with route.upstream.open(
            "GET", route.remote, f"manifests/{reference}", ACCEPT
        ) as response:
            if (response.content_length or 0) > limit:
                raise UpstreamError(f"manifest {reference} is larger than {limit} bytes")
            data = await response.content.read(limit + 1)
            if len(data) > limit:
                raise UpstreamError(f"manifest {reference} is larger than {limit} bytes")
            return data, response.headers.get("Content-Type")

    async def _upstream_blob_size(self, route: Route, digest: Digest) -> int:
        upstream = route.upstream
        key = (route.local, str(digest))
        if self._not_found.get(key, 0.0) > time.monotonic():
            raise _blob_unknown(route, digest)
        try:
            async with upstream.open("HEAD", route.remote, f"blobs/{digest}") as response:
                size = response.content_length
        except UpstreamNotFound:
            self._not_found[key] = time.monotonic() + upstream.settings.negative_ttl
            raise _blob_unknown(route, digest) from None
        except (UpstreamError, UpstreamDenied) as e:
            self.stats.bump(self.stats.upstream_errors, upstream.name)
            raise _unavailable(upstream, str(e)) from None
        if size is None:
            raise _unavailable(upstream, f"no Content-Length for blob {digest}")
        return size


def _short(error: Exception) -> str:
    return str(error).replace('"', "'")[:200]


def _unavailable(upstream: Upstream, why: str) -> RegistryError:
    return RegistryError(
        ErrorCode.UNAVAILABLE,
        f"upstream registry {upstream.name!r} ({upstream.base}) is unavailable and the "
        f"cache holds no copy: {why}",
        detail={"upstream": upstream.name},
    )


def _manifest_unknown(route: Route, reference: str) -> RegistryError:
    return RegistryError(
        ErrorCode.MANIFEST_UNKNOWN,
        f"upstream {route.upstream.name!r} has no manifest {route.remote}:{reference}",
        detail={"reference": reference, "upstream": route.upstream.name},
    )


def _blob_unknown(route: Route, digest: Digest) -> RegistryError:
    return RegistryError(
        ErrorCode.BLOB_UNKNOWN,
        f"upstream {route.upstream.name!r} has no blob {digest} in {route.remote}",
        detail={"digest": str(digest), "upstream": route.upstream.name},
    )
