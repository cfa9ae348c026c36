"""Metadata: repositories, blob links, manifests, tags and their history, uploads."""

from dockyard.metadata.cache import CachePulls
from dockyard.metadata.engine import create_engine
from dockyard.metadata.migrate import (
    SchemaMismatch,
    check,
    current_revision,
    head_revision,
    upgrade,
)
from dockyard.metadata.postgres import is_postgresql
from dockyard.metadata.records import (
    ManifestRecord,
    NewManifest,
    ReferrerRecord,
    TagChange,
    UploadRecord,
)
from dockyard.metadata.robots import RobotRecord, RobotRules, RobotStore
from dockyard.metadata.store import MetadataError, MetadataStore, MissingReferences

__all__ = [
    "CachePulls",
    "ManifestRecord",
    "MetadataError",
    "MetadataStore",
    "MissingReferences",
    "NewManifest",
    "ReferrerRecord",
    "RobotRecord",
    "RobotRules",
    "RobotStore",
    "SchemaMismatch",
    "TagChange",
    "UploadRecord",
    "check",
    "create_engine",
    "current_revision",
    "head_revision",
    "is_postgresql",
    "upgrade",
]
