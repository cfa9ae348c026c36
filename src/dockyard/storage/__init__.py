"""Blob bytes: the :class:`BlobStore` contract and its implementations."""

from dockyard.storage.base import (
    BlobEnumerator,
    BlobNotFound,
    BlobStore,
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
    "DigestMismatch",
    "DirectBody",
    "FilesystemBlobStore",
    "SizeLimitExceeded",
    "StagingEnumerator",
    "StorageError",
    "UploadNotFound",
]
