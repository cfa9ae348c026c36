"""Manifests: push (validate, store exact bytes, move tags), pull, delete; referrers."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.core import validation
from dockyard.core.sources import Source, check_writable
from dockyard.metadata import (
    ManifestRecord,
    MetadataStore,
    MissingReferences,
    NewManifest,
    TagChange,
)
from dockyard.oci import (
    Descriptor,
    Digest,
    ErrorCode,
    InvalidManifest,
    RegistryError,
    parse_manifest,
)

DEFAULT_MAX_MANIFEST_SIZE = 4 << 20


@dataclass(frozen=True, slots=True)
class PutResult:
    """What a manifest push did: its digest, its subject if any, the tags it set."""

    digest: Digest
    subject: Digest | None
    tags: tuple[str, ...]
    tag_changes: tuple[TagChange, ...]


class Manifests:
    """Manifest operations for one registry."""

    def __init__(self, meta: MetadataStore, max_size: int = DEFAULT_MAX_MANIFEST_SIZE) -> None:
        self._meta = meta
        self.max_size = max_size
        self.source: Source | None = None

    async def put(
        self,
        repository: str,
        raw_reference: str,
        data: bytes,
        content_type: str | None,
        extra_tags: list[str] | None = None,
    ) -> PutResult:
        """Store ``data`` as pushed, under its digest, and point the tags at it.

        ``raw_reference`` is a tag or the manifest's digest; ``extra_tags`` come from
        ``?tag=`` parameters. Every blob and child manifest it references must already be
        in the repository (MANIFEST_BLOB_UNKNOWN); its subject need not be.
        """
        name = validation.repository_name(repository)
        check_writable(self.source, name, "push")
        return await self._store(name, raw_reference, data, content_type, extra_tags)

    async def record(
        self, repository: str, raw_reference: str, data: bytes, content_type: str | None
    ) -> PutResult:
        """Store a manifest a source fetched, exactly as served, and move a tag to it.

        Like :meth:`put`, but not write-protected (for sources, never for clients), the
        blobs it references need not be present yet (the source fetches them on demand),
        and tag moves are recorded with the reason ``cache``.
        """
        name = validation.repository_name(repository)
        return await self._store(name, raw_reference, data, content_type, None, cached=True)

    async def _store(
        self,
        name: str,
        raw_reference: str,
        data: bytes,
        content_type: str | None,
        extra_tags: list[str] | None,
        *,
        cached: bool = False,
    ) -> PutResult:
        reference = validation.reference(raw_reference)
        if len(data) > self.max_size:
            raise RegistryError(
                ErrorCode.MANIFEST_INVALID,
                f"manifest is {len(data)} bytes; the limit is {self.max_size}",
                status=413,
            )
        if isinstance(reference, Digest):
            digest = Digest.of(data, reference.algorithm)
            if digest != reference:
                raise RegistryError(
                    ErrorCode.DIGEST_INVALID,
                    f"manifest content hashes to {digest}, not {reference}",
                    detail={"digest": str(reference)},
                )
            tags = []
        else:
            digest = Digest.of(data)
            tags = [reference]
        tags += [validation.tag(t) for t in extra_tags or []]
        try:
            manifest = parse_manifest(data, content_type)
        except InvalidManifest as e:
            raise RegistryError(ErrorCode.MANIFEST_INVALID, str(e)) from None
        record = NewManifest(
            digest=str(digest),
            media_type=manifest.media_type,
            content=data,
            blob_refs=tuple(str(d.digest) for d in manifest.blobs),
            manifest_refs=tuple(str(d.digest) for d in manifest.manifests),
            subject_digest=str(manifest.subject.digest) if manifest.subject else None,
            artifact_type=manifest.referrer_artifact_type,
            annotations=manifest.annotations or None,
        )
        try:
            changes = await self._meta.put_manifest(
                name,
                record,
                dict.fromkeys(tags),
                reason="cache" if cached else "push",
                check_references=not cached,
            )
        except MissingReferences as e:
            missing = e.blobs + e.manifests
            raise RegistryError(
                ErrorCode.MANIFEST_BLOB_UNKNOWN,
                f"manifest references {len(missing)} blob(s) or manifest(s) not in {name}: "
                + ", ".join(missing[:5]),
                # detail.digest as distribution gives it, plus the full list.
                detail={"digest": missing[0], "missing": missing},
            ) from None
        return PutResult(
            digest=digest,
            subject=manifest.subject.digest if manifest.subject else None,
            tags=tuple(dict.fromkeys(tags)),
            tag_changes=tuple(changes),
        )

    async def get(self, repository: str, raw_reference: str) -> ManifestRecord:
        """The manifest a tag or digest names; MANIFEST_UNKNOWN when there is none."""
        name = validation.repository_name(repository)
        reference = validation.reference(raw_reference, ErrorCode.MANIFEST_UNKNOWN)
        if self.source is not None and self.source.covers(name):
            return await self.source.get_manifest(name, reference)
        is_digest = isinstance(reference, Digest)
        record = await self._meta.get_manifest(name, str(reference), by_digest=is_digest)
        if record is None:
            raise RegistryError(ErrorCode.MANIFEST_UNKNOWN, detail={"reference": raw_reference})
        return record

    async def delete(self, repository: str, raw_reference: str) -> None:
        """Delete by digest (the manifest and its tags) or by tag (only the tag)."""
        name = validation.repository_name(repository)
        check_writable(self.source, name, "delete")
        reference = validation.reference(raw_reference, ErrorCode.MANIFEST_UNKNOWN)
        if isinstance(reference, Digest):
            found = await self._meta.delete_manifest(name, str(reference))
        else:
            found = await self._meta.delete_tag(name, reference) is not None
        if not found:
            raise RegistryError(ErrorCode.MANIFEST_UNKNOWN, detail={"reference": raw_reference})

    async def referrers(
        self, repository: str, raw_digest: str, artifact_type: str | None
    ) -> list[Descriptor]:
        """Descriptors of the manifests in ``repository`` whose subject is ``raw_digest``.

        An unknown repository or subject gives an empty list: the referrers API never
        answers 404 (spec.md, "Listing Referrers").
        """
        name = validation.repository_name(repository)
        subject = validation.digest(raw_digest)
        rows = await self._meta.referrers(name, str(subject), artifact_type)
        return [
            Descriptor(
                media_type=r.media_type,
                digest=Digest.parse(r.digest),
                size=r.size,
                artifact_type=r.artifact_type,
                annotations=r.annotations,
            )
            for r in rows
        ]
