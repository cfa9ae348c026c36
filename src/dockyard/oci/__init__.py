"""Pure protocol knowledge: digests, names, references, media types, manifests, error codes."""

from dockyard.oci.digest import Digest, new_hasher
from dockyard.oci.errors import (
    ErrorCode,
    InvalidDigest,
    InvalidManifest,
    InvalidName,
    InvalidTag,
    RegistryError,
)
from dockyard.oci.manifest import Descriptor, Manifest, parse_manifest
from dockyard.oci.reference import parse_reference, referrers_tag, validate_name, validate_tag

__all__ = [
    "Descriptor",
    "Digest",
    "ErrorCode",
    "InvalidDigest",
    "InvalidManifest",
    "InvalidName",
    "InvalidTag",
    "Manifest",
    "RegistryError",
    "new_hasher",
    "parse_manifest",
    "parse_reference",
    "referrers_tag",
    "validate_name",
    "validate_tag",
]
