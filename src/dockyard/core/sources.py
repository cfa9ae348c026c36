"""Content the registry does not hold itself: the extension point of the pull-through cache.

A :class:`Source` answers for the repositories it *covers* (a cache namespace such as
``hub/``): the core hands blob stats and manifest reads for them to the source, which
serves its local copy or fetches from elsewhere and records what it fetched through the
core's own operations (:meth:`Blobs.ingest`, :meth:`Manifests.record`). Handlers never
know. Repositories a source covers are read-only for clients: pushes and deletes there
fail with the source's own error.

The core knows only this protocol; the proxy feature implements it and ``app.py``
attaches it (:meth:`Registry.attach`). A registry without a source pays nothing; one
with a source pays one :meth:`Source.covers` call per request.
"""

from __future__ import annotations

from typing import Literal, Protocol

from dockyard.core.blobs import BlobInfo
from dockyard.metadata import ManifestRecord
from dockyard.oci import Digest, RegistryError

WriteAction = Literal["push", "delete"]


class Source(Protocol):
    """Where the content of the repositories it covers comes from."""

    def covers(self, repository: str) -> bool:
        """Whether ``repository`` (a validated name) belongs to this source.

        Asked on every blob and manifest request: it must be cheap (a prefix check)
        and must not do I/O.
        """
        ...

    async def stat_blob(self, repository: str, digest: Digest) -> BlobInfo:
        """The blob as ``repository`` serves it, from the local copy or fetched.

        A blob not yet stored comes with :attr:`BlobInfo.stream`, which yields its bytes
        as they arrive. Raises ``RegistryError`` (BLOB_UNKNOWN, or UNAVAILABLE when the
        content cannot be had right now).
        """
        ...

    async def get_manifest(self, repository: str, reference: str | Digest) -> ManifestRecord:
        """The manifest a tag or digest names, exactly as first served.

        Raises ``RegistryError`` (MANIFEST_UNKNOWN, or UNAVAILABLE).
        """
        ...

    def refuse_write(self, repository: str, action: WriteAction) -> RegistryError:
        """The error a client gets for a push or delete in a covered repository."""
        ...


def check_writable(source: Source | None, repository: str, action: WriteAction) -> None:
    """Raise the source's refusal when ``repository`` belongs to a (read-only) source."""
    if source is not None and source.covers(repository):
        raise source.refuse_write(repository, action)
