"""Typed rows the metadata store returns: plain frozen values, no SQL types leak out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class ManifestRecord:
    """A stored manifest: the exact bytes pushed and how to serve them."""

    digest: str
    media_type: str
    content: bytes


@dataclass(frozen=True, slots=True)
class ReferrerRecord:
    """A manifest whose subject is the digest asked about."""

    digest: str
    media_type: str
    size: int
    artifact_type: str | None
    annotations: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class UploadRecord:
    """An upload session: where it belongs and how many bytes it has committed."""

    id: str
    repository: str
    size: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class TagChange:
    """One entry of a tag's history."""

    repository: str
    tag: str
    old_digest: str | None
    new_digest: str | None
    changed_at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class NewManifest:
    """Everything put_manifest records about a manifest being pushed."""

    digest: str
    media_type: str
    content: bytes
    blob_refs: tuple[str, ...]
    manifest_refs: tuple[str, ...]
    subject_digest: str | None
    artifact_type: str | None
    annotations: dict[str, str] | None
