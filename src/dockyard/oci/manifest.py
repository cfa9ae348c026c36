"""Manifest parsing and validation: what a manifest is, what it references, its subject.

Pure functions over the bytes a client pushed. The bytes themselves are never
re-serialised: the registry stores and serves exactly what was pushed, so the digest a
client computed is the digest served.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from dockyard.oci import mediatypes as mt
from dockyard.oci.digest import Digest
from dockyard.oci.errors import InvalidDigest, InvalidManifest


@dataclass(frozen=True, slots=True)
class Descriptor:
    """An OCI content descriptor: media type, digest and size of referenced content."""

    media_type: str
    digest: Digest
    size: int
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None
    urls: tuple[str, ...] = ()
    platform: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The descriptor as the JSON object the image-spec defines."""
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = self.annotations
        return out


@dataclass(frozen=True, slots=True)
class Manifest:
    """A parsed manifest: its kind and everything it points at.

    ``blobs`` are the config and layers a registry must hold for an image manifest
    (non-distributable layers excluded); ``manifests`` are the children of an index.
    """

    media_type: str
    blobs: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()
    subject: Descriptor | None = None
    artifact_type: str | None = None
    config_media_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def is_index(self) -> bool:
        """Whether this is an image index or a Docker manifest list."""
        return self.media_type in mt.INDEXES

    @property
    def referrer_artifact_type(self) -> str | None:
        """The ``artifactType`` a referrers listing shows for this manifest.

        Its own ``artifactType``; else, for an image manifest, the config's media type;
        for an index without one, none (spec.md, "Listing Referrers").
        """
        if self.artifact_type:
            return self.artifact_type
        return None if self.is_index else self.config_media_type


def parse_manifest(data: bytes, content_type: str | None) -> Manifest:
    """Parse and validate manifest ``data`` pushed with ``content_type``.

    Raises :class:`InvalidManifest` with a message naming the problem: not JSON, not an
    object, unsupported media type, a ``mediaType`` field that disagrees with the
    ``Content-Type``, or a malformed descriptor.
    """
    try:
        doc = json.loads(data)
    except RecursionError:
        # Deep nesting fits well inside the size limit; it is bad input, not a crash.
        raise InvalidManifest("manifest is not valid JSON: nested too deeply") from None
    except ValueError as e:
        # JSONDecodeError, UnicodeDecodeError, and the int-digits limit (a huge number).
        raise InvalidManifest(f"manifest is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidManifest("manifest must be a JSON object")
    media_type = _media_type(doc, content_type)
    if doc.get("schemaVersion") != 2:
        raise InvalidManifest("schemaVersion must be 2")
    artifact_type = _optional_str(doc, "artifactType")
    annotations = _annotations(doc.get("annotations"), "annotations")
    subject = _descriptor(doc["subject"], "subject") if "subject" in doc else None
    if media_type in mt.INDEXES:
        children = _descriptor_list(doc, "manifests", required=True)
        return Manifest(
            media_type,
            manifests=children,
            subject=subject,
            artifact_type=artifact_type,
            annotations=annotations,
        )
    if "config" not in doc:
        raise InvalidManifest("image manifest has no config descriptor")
    config = _descriptor(doc["config"], "config")
    layers = _descriptor_list(doc, "layers", required=media_type == mt.DOCKER_MANIFEST)
    required = tuple(
        d for d in (config, *layers) if not (d.media_type in mt.NON_DISTRIBUTABLE_LAYERS and d.urls)
    )
    return Manifest(
        media_type,
        blobs=required,
        subject=subject,
        artifact_type=artifact_type,
        config_media_type=config.media_type,
        annotations=annotations,
    )


def _media_type(doc: dict[str, Any], content_type: str | None) -> str:
    declared = doc.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise InvalidManifest("mediaType must be a string")
    header = mt.strip_parameters(content_type) if content_type else ""
    if header in (mt.DOCKER_SCHEMA1, mt.DOCKER_SCHEMA1_SIGNED) or declared in (
        mt.DOCKER_SCHEMA1,
        mt.DOCKER_SCHEMA1_SIGNED,
    ):
        raise InvalidManifest("Docker schema 1 manifests are not supported; push schema 2 or OCI")
    if declared and header in mt.MANIFESTS and declared != header:
        raise InvalidManifest(
            f"Content-Type {header!r} does not match the manifest's mediaType {declared!r}"
        )
    media_type = declared or (header if header in mt.MANIFESTS else "")
    if not media_type:
        raise InvalidManifest(
            f"unsupported manifest media type {header or '(none)'!r}; "
            f"expected one of {', '.join(sorted(mt.MANIFESTS))}"
        )
    if media_type not in mt.MANIFESTS:
        raise InvalidManifest(f"unsupported manifest media type {media_type!r}")
    return media_type


def _optional_str(doc: dict[str, Any], key: str) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidManifest(f"{key} must be a string")
    return value


def _annotations(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidManifest(f"{where} must be an object of strings")
    return value


def _descriptor_list(doc: dict[str, Any], key: str, *, required: bool) -> tuple[Descriptor, ...]:
    value = doc.get(key)
    if value is None:
        if required:
            raise InvalidManifest(f"manifest has no {key} list")
        return ()
    if not isinstance(value, list):
        raise InvalidManifest(f"{key} must be a list")
    return tuple(_descriptor(item, f"{key}[{i}]") for i, item in enumerate(value))


def _descriptor(value: Any, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise InvalidManifest(f"{where} must be a descriptor object")
    media_type = value.get("mediaType")
    if not isinstance(media_type, str) or not media_type:
        raise InvalidManifest(f"{where}.mediaType is missing")
    size = value.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidManifest(f"{where}.size must be a non-negative integer")
    raw_digest = value.get("digest")
    if not isinstance(raw_digest, str):
        raise InvalidManifest(f"{where}.digest is missing")
    try:
        digest = Digest.parse(raw_digest)
    except InvalidDigest as e:
        raise InvalidManifest(f"{where}.digest: {e}") from None
    urls = value.get("urls") or []
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise InvalidManifest(f"{where}.urls must be a list of strings")
    platform = value.get("platform")
    if platform is not None and not isinstance(platform, dict):
        raise InvalidManifest(f"{where}.platform must be an object")
    artifact_type = value.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise InvalidManifest(f"{where}.artifactType must be a string")
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        artifact_type=artifact_type,
        annotations=_annotations(value.get("annotations"), f"{where}.annotations") or None,
        urls=tuple(urls),
        platform=platform,
    )
