"""Blob bytes: the :class:`BlobStore` contract and its implementations."""

from dockyard.storage.base import (
    BlobEnumerator,
    BlobNotFound,
    BlobStore,
    BodySink,
    DigestMismatch,
    DirectBody,
    SizeLimitExceeded,
    StagingEnumerator,
    StorageError,
    UploadNotFound,
)
from dockyard.storage.filesystem import FilesystemBlobStore

__all__ = [
    "BlobEnumerator",
    "BlobNotFound",
    "BlobStore",
    "BodySink",
    "DigestMismatch",
    "DirectBody",
    "FilesystemBlobStore",
    "SizeLimitExceeded",
    "StagingEnumerator",
    "StorageError",
    "UploadNotFound",
]
