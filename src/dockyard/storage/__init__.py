"""Blob bytes: the :class:`BlobStore` contract and its implementations."""

from dockyard.storage.base import (
    BlobNotFound,
    BlobStore,
    DigestMismatch,
    SizeLimitExceeded,
    StorageError,
    UploadNotFound,
)
from dockyard.storage.filesystem import FilesystemBlobStore

__all__ = [
    "BlobNotFound",
    "BlobStore",
    "DigestMismatch",
    "FilesystemBlobStore",
    "SizeLimitExceeded",
    "StorageError",
    "UploadNotFound",
]
