"""Metadata: repositories, blob links, manifests, tags and their history, uploads."""

from dockyard.metadata.migrate import (
    SchemaMismatch,
    check,
    current_revision,
    head_revision,
    upgrade,
)
from dockyard.metadata.records import (
    ManifestRecord,
    NewManifest,
    ReferrerRecord,
    TagChange,
    UploadRecord,
)
from dockyard.metadata.store import MetadataError, MetadataStore, MissingReferences, create_engine

__all__ = [
    "ManifestRecord",
    "MetadataError",
    "MetadataStore",
    "MissingReferences",
    "NewManifest",
    "ReferrerRecord",
    "SchemaMismatch",
    "TagChange",
    "UploadRecord",
    "check",
    "create_engine",
    "current_revision",
    "head_revision",
    "upgrade",
]
