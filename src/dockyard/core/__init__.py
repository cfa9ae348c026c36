"""The registry core: the rules, whoever calls them."""

from dockyard.core.blobs import BlobInfo, CanRead
from dockyard.core.manifests import PutResult
from dockyard.core.registry import Registry
from dockyard.core.tags import Page, parse_page_size
from dockyard.core.uploads import range_header
from dockyard.metadata import ManifestRecord, TagChange, UploadRecord

__all__ = [
    "BlobInfo",
    "CanRead",
    "ManifestRecord",
    "Page",
    "PutResult",
    "Registry",
    "TagChange",
    "UploadRecord",
    "parse_page_size",
    "range_header",
]
