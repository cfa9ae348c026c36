"""The registry core: the rules, whoever calls them."""

from dockyard.core.access import ACTIONS, ALLOW_ALL, Access, Action, AllowAll, can_pull
from dockyard.core.blobs import BlobInfo, BlobStream, CanRead
from dockyard.core.manifests import PutResult
from dockyard.core.regions import FileRegion, open_for_reading
from dockyard.core.registry import Registry
from dockyard.core.robots import RobotError, Robots, validate_robot_name
from dockyard.core.sources import Source, WriteAction
from dockyard.core.tags import Page, parse_page_size
from dockyard.core.uploads import range_header
from dockyard.core.verify import CorruptBlob
from dockyard.metadata import ManifestRecord, RobotRecord, RobotRules, TagChange, UploadRecord

__all__ = [
    "ACTIONS",
    "ALLOW_ALL",
    "Access",
    "Action",
    "AllowAll",
    "BlobInfo",
    "BlobStream",
    "CanRead",
    "CorruptBlob",
    "FileRegion",
    "ManifestRecord",
    "Page",
    "PutResult",
    "Registry",
    "RobotError",
    "RobotRecord",
    "RobotRules",
    "Robots",
    "Source",
    "TagChange",
    "UploadRecord",
    "WriteAction",
    "can_pull",
    "open_for_reading",
    "parse_page_size",
    "range_header",
    "validate_robot_name",
]
