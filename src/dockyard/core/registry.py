"""The registry core: every domain operation, whoever asks (HTTP API, CLI, cache, GC)."""

from __future__ import annotations

from dockyard.core.blobs import Blobs
from dockyard.core.lifecycle import Lifecycle
from dockyard.core.manifests import DEFAULT_MAX_MANIFEST_SIZE, Manifests
from dockyard.core.robots import Robots
from dockyard.core.sources import Source
from dockyard.core.tags import Discovery
from dockyard.core.uploads import Uploads
from dockyard.metadata import MetadataStore
from dockyard.oci import Digest
from dockyard.storage import BlobNotFound, BlobStore

# Any digest will do: the probe only checks that the blob store answers at all.
_PROBE = Digest.of(b"")


class Registry:
    """One registry: a blob store and a metadata store, and the rules between them.

    The operations are grouped by what they act on: ``blobs``, ``uploads``,
    ``manifests``, ``discovery``, ``robots`` and ``lifecycle`` (GC, retention, fsck,
    quotas). Handlers call these and nothing below them.
    """

    def __init__(
        self,
        store: BlobStore,
        meta: MetadataStore,
        *,
        max_manifest_size: int = DEFAULT_MAX_MANIFEST_SIZE,
        quotas: dict[str, int] | None = None,
    ) -> None:
        self.store = store
        self.meta = meta
        # Deletion, verification and quotas: GC, retention and fsck go through this.
        self.lifecycle = Lifecycle(store, meta, dict(quotas or {}))
        self.blobs = Blobs(store, meta, self.lifecycle)
        self.uploads = Uploads(store, meta, self.lifecycle)
        self.manifests = Manifests(meta, max_manifest_size)
        self.discovery = Discovery(meta)
        self.robots = Robots(meta)

    def attach(self, source: Source) -> None:
        """Serve the repositories ``source`` covers from it, read-only for clients."""
        self.blobs.source = source
        self.uploads.source = source
        self.manifests.source = source

    async def check_ready(self) -> list[str]:
        """What keeps this registry from serving: an empty list when both stores answer."""
        problems = []
        try:
            await self.meta.ping()
        except Exception as e:
            problems.append(f"metadata store: {e}")
        try:
            await self.store.stat(_PROBE)
        except BlobNotFound:
            pass
        except Exception as e:
            problems.append(f"blob store: {e}")
        return problems
