"""Manifest parsing: media types, what a manifest references, malformed input."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.oci import Digest, InvalidManifest, Manifest, parse_manifest
from dockyard.oci import mediatypes as mt

CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
SIGNATURE = "application/vnd.example.signature.v1"


def descriptor(data: bytes, media_type: str = LAYER, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": str(Digest.of(data)), "size": len(data), **extra}


def image(media_type: str | None = mt.OCI_MANIFEST, **extra: Any) -> dict[str, Any]:
    config_type = DOCKER_CONFIG if media_type == mt.DOCKER_MANIFEST else CONFIG
    layer_type = DOCKER_LAYER if media_type == mt.DOCKER_MANIFEST else LAYER
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "config": descriptor(b"config", config_type),
        "layers": [descriptor(b"layer-1", layer_type), descriptor(b"layer-2", layer_type)],
    }
    if media_type is not None:
        doc["mediaType"] = media_type
    doc.update(extra)
    return doc


def index(media_type: str | None = mt.OCI_INDEX, **extra: Any) -> dict[str, Any]:
    child_type = mt.DOCKER_MANIFEST if media_type == mt.DOCKER_MANIFEST_LIST else mt.OCI_MANIFEST
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "manifests": [
            descriptor(b"amd64", child_type, platform={"architecture": "amd64", "os": "linux"}),
            descriptor(b"arm64", child_type, platform={"architecture": "arm64", "os": "linux"}),
        ],
    }
    if media_type is not None:
        doc["mediaType"] = media_type
    doc.update(extra)
    return doc


def parse(doc: Any, content_type: str | None) -> Manifest:
    return parse_manifest(json.dumps(doc).encode(), content_type)


def digests(manifest_descriptors: Any) -> list[str]:
    return [str(d.digest) for d in manifest_descriptors]


# -- supported media types ----------------------------------------------------------


@pytest.mark.parametrize("media_type", [mt.OCI_MANIFEST, mt.DOCKER_MANIFEST])
def test_image_manifests_reference_config_and_layers(media_type: str) -> None:
    doc = image(media_type)
    manifest = parse(doc, media_type)
    assert manifest.media_type == media_type
    assert not manifest.is_index
    assert digests(manifest.blobs) == [
        doc["config"]["digest"],
        doc["layers"][0]["digest"],
        doc["layers"][1]["digest"],
    ]
    assert [d.size for d in manifest.blobs] == [6, 7, 7]
    assert manifest.manifests == ()
    assert manifest.config_media_type == doc["config"]["mediaType"]
    assert manifest.subject is None


@pytest.mark.parametrize("media_type", [mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST])
def test_indexes_reference_child_manifests(media_type: str) -> None:
    doc = index(media_type)
    manifest = parse(doc, media_type)
    assert manifest.media_type == media_type
    assert manifest.is_index
    assert manifest.blobs == ()
    assert digests(manifest.manifests) == [m["digest"] for m in doc["manifests"]]
    assert manifest.manifests[1].platform == {"architecture": "arm64", "os": "linux"}


@pytest.mark.parametrize(
    "media_type", [mt.OCI_MANIFEST, mt.DOCKER_MANIFEST, mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST]
)
def test_media_type_from_the_body_alone(media_type: str) -> None:
    doc = index(media_type) if media_type in mt.INDEXES else image(media_type)
    assert parse(doc, None).media_type == media_type
    assert parse(doc, "application/octet-stream").media_type == media_type


@pytest.mark.parametrize("media_type", [mt.OCI_MANIFEST, mt.OCI_INDEX])
def test_media_type_from_the_header_alone(media_type: str) -> None:
    # OCI manifests may leave mediaType out; the Content-Type then says what they are.
    doc = index(None) if media_type == mt.OCI_INDEX else image(None)
    assert parse(doc, media_type).media_type == media_type


def test_content_type_parameters_and_case_are_ignored() -> None:
    manifest = parse(image(), mt.OCI_MANIFEST.upper() + "; charset=utf-8")
    assert manifest.media_type == mt.OCI_MANIFEST


def test_no_media_type_anywhere_is_rejected() -> None:
    with pytest.raises(InvalidManifest, match=r"unsupported manifest media type '\(none\)'"):
        parse(image(None), None)


@pytest.mark.parametrize(
    ("declared", "header"),
    [
        (mt.OCI_MANIFEST, mt.OCI_INDEX),
        (mt.OCI_INDEX, mt.OCI_MANIFEST),
        (mt.DOCKER_MANIFEST, mt.OCI_MANIFEST),
        (mt.OCI_MANIFEST, mt.DOCKER_MANIFEST),
    ],
)
def test_media_type_disagreeing_with_content_type_is_rejected(declared: str, header: str) -> None:
    doc = index(declared) if declared in mt.INDEXES else image(declared)
    with pytest.raises(InvalidManifest) as e:
        parse(doc, header)
    assert declared in str(e.value)
    assert header in str(e.value)


@pytest.mark.parametrize(
    ("declared", "header"),
    [
        (mt.DOCKER_SCHEMA1, mt.DOCKER_SCHEMA1),
        (None, mt.DOCKER_SCHEMA1_SIGNED),
        (mt.DOCKER_SCHEMA1_SIGNED, None),
        (mt.DOCKER_SCHEMA1, mt.OCI_MANIFEST),
    ],
)
def test_schema1_is_rejected(declared: str | None, header: str | None) -> None:
    doc: dict[str, Any] = {"schemaVersion": 1, "name": "x", "tag": "latest", "fsLayers": []}
    if declared:
        doc["mediaType"] = declared
    with pytest.raises(InvalidManifest, match="schema 1"):
        parse(doc, header)


@pytest.mark.parametrize(
    "media_type",
    ["application/json", "application/vnd.oci.image.config.v1+json", "text/plain"],
)
def test_unsupported_media_types_are_rejected(media_type: str) -> None:
    with pytest.raises(InvalidManifest, match="unsupported manifest media type"):
        parse(image(media_type), media_type)


def test_schema_version_must_be_2() -> None:
    with pytest.raises(InvalidManifest, match="schemaVersion"):
        parse(image(schemaVersion=3), mt.OCI_MANIFEST)
    doc = image()
    del doc["schemaVersion"]
    with pytest.raises(InvalidManifest, match="schemaVersion"):
        parse(doc, mt.OCI_MANIFEST)


# -- what a manifest references -----------------------------------------------------


@pytest.mark.parametrize("layer_type", sorted(mt.NON_DISTRIBUTABLE_LAYERS))
def test_non_distributable_layers_with_urls_are_not_required(layer_type: str) -> None:
    foreign = descriptor(b"foreign", layer_type, urls=["https://example.com/layer.tar"])
    doc = image(layers=[descriptor(b"own"), foreign])
    manifest = parse(doc, mt.OCI_MANIFEST)
    assert digests(manifest.blobs) == [doc["config"]["digest"], doc["layers"][0]["digest"]]


def test_non_distributable_layer_without_urls_is_required() -> None:
    foreign = descriptor(b"foreign", "application/vnd.oci.image.layer.nondistributable.v1.tar")
    manifest = parse(image(layers=[foreign]), mt.OCI_MANIFEST)
    assert foreign["digest"] in digests(manifest.blobs)


def test_ordinary_layer_with_urls_is_still_required() -> None:
    layer = descriptor(b"layer", urls=["https://example.com/layer.tar"])
    manifest = parse(image(layers=[layer]), mt.OCI_MANIFEST)
    assert layer["digest"] in digests(manifest.blobs)
    assert manifest.blobs[1].urls == ("https://example.com/layer.tar",)


def test_oci_image_manifest_may_have_no_layers() -> None:
    # Artifacts (image-spec 1.1) may carry only a config; Docker v2 always has layers.
    doc = image()
    del doc["layers"]
    assert digests(parse(doc, mt.OCI_MANIFEST).blobs) == [doc["config"]["digest"]]
    docker = image(mt.DOCKER_MANIFEST)
    del docker["layers"]
    with pytest.raises(InvalidManifest, match="layers"):
        parse(docker, mt.DOCKER_MANIFEST)


def test_the_same_blob_twice_is_listed_as_given() -> None:
    layer = descriptor(b"same")
    manifest = parse(image(layers=[layer, layer]), mt.OCI_MANIFEST)
    assert digests(manifest.blobs)[1:] == [layer["digest"], layer["digest"]]


def test_subject_artifact_type_and_annotations_are_extracted() -> None:
    subject = descriptor(b"the image", mt.OCI_MANIFEST)
    doc = image(
        artifactType=SIGNATURE,
        subject=subject,
        annotations={"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
        config=descriptor(b"{}", mt.OCI_EMPTY),
    )
    manifest = parse(doc, mt.OCI_MANIFEST)
    assert manifest.subject is not None
    assert str(manifest.subject.digest) == subject["digest"]
    assert manifest.subject.size == subject["size"]
    assert manifest.subject.media_type == mt.OCI_MANIFEST
    assert manifest.artifact_type == SIGNATURE
    assert manifest.referrer_artifact_type == SIGNATURE
    assert manifest.annotations == {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}
    # The subject is not something the manifest needs in the repository.
    assert subject["digest"] not in digests(manifest.blobs)


def test_referrer_artifact_type_falls_back_to_the_config_media_type() -> None:
    manifest = parse(image(config=descriptor(b"sig", SIGNATURE)), mt.OCI_MANIFEST)
    assert manifest.artifact_type is None
    assert manifest.referrer_artifact_type == SIGNATURE


def test_index_artifact_type_does_not_fall_back() -> None:
    plain = parse(index(subject=descriptor(b"x", mt.OCI_MANIFEST)), mt.OCI_INDEX)
    assert plain.referrer_artifact_type is None
    typed = parse(index(artifactType=SIGNATURE), mt.OCI_INDEX)
    assert typed.referrer_artifact_type == SIGNATURE


def test_descriptor_details_are_kept() -> None:
    layer = descriptor(
        b"layer", artifactType="application/x-thing", annotations={"a": "b"}, urls=["u"]
    )
    manifest = parse(image(layers=[layer]), mt.OCI_MANIFEST)
    parsed = manifest.blobs[1]
    assert parsed.artifact_type == "application/x-thing"
    assert parsed.annotations == {"a": "b"}
    assert parsed.urls == ("u",)
    assert parsed.to_json() == {
        "mediaType": LAYER,
        "digest": layer["digest"],
        "size": layer["size"],
        "artifactType": "application/x-thing",
        "annotations": {"a": "b"},
    }


def test_sha512_descriptors_are_accepted() -> None:
    layer = descriptor(b"layer")
    layer["digest"] = str(Digest.of(b"layer", "sha512"))
    manifest = parse(image(layers=[layer]), mt.OCI_MANIFEST)
    assert manifest.blobs[1].digest.algorithm == "sha512"


# -- malformed input ----------------------------------------------------------------


def _replace(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``doc`` with the value at ``path`` (``layers.1.size``) replaced; ``...`` deletes."""
    target: Any = doc
    *parents, last = path.split(".")
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if isinstance(target, list):
        target[int(last)] = value
    elif value is ...:
        del target[last]
    else:
        target[last] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        ("config", "sha256:abc", "config"),
        ("config.mediaType", ..., "config.mediaType"),
        ("config.mediaType", "", "config.mediaType"),
        ("config.mediaType", 7, "config.mediaType"),
        ("config.size", ..., "config.size"),
        ("config.size", -1, "config.size"),
        ("config.size", "12", "config.size"),
        ("config.size", 1.5, "config.size"),
        ("config.size", True, "config.size"),
        ("config.digest", ..., "config.digest"),
        ("layers.1.digest", "sha256:abc", "layers[1].digest"),
        ("layers.1.digest", "md5:" + "0" * 32, "layers[1].digest"),
        ("layers.0.digest", 42, "layers[0].digest"),
        ("layers.0.urls", "https://example.com", "layers[0].urls"),
        ("layers.0.urls", [1], "layers[0].urls"),
        ("layers.0.annotations", {"a": 1}, "layers[0].annotations"),
        ("layers.0.annotations", ["a"], "layers[0].annotations"),
        ("layers.0.platform", "linux", "layers[0].platform"),
        ("layers.0.artifactType", 1, "layers[0].artifactType"),
        ("layers.1", "not a descriptor", "layers[1]"),
        ("layers", {"0": {}}, "layers"),
        ("subject", [], "subject"),
        ("subject", {"mediaType": mt.OCI_MANIFEST, "size": 1}, "subject.digest"),
        ("annotations", {"a": None}, "annotations"),
        ("artifactType", 1, "artifactType"),
        ("mediaType", 1, "mediaType"),
        ("config", ..., "config"),
    ],
)
def test_malformed_image_manifests_name_the_field(path: str, value: Any, named: str) -> None:
    doc = _replace(image(subject=descriptor(b"s", mt.OCI_MANIFEST)), path, value)
    with pytest.raises(InvalidManifest) as e:
        parse(doc, mt.OCI_MANIFEST)
    assert named in str(e.value)


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        ("manifests", ..., "manifests"),
        ("manifests", "x", "manifests"),
        ("manifests.0", None, "manifests[0]"),
        ("manifests.1.digest", "sha256:" + "A" * 64, "manifests[1].digest"),
        ("manifests.1.size", -5, "manifests[1].size"),
        ("manifests.0.platform", [], "manifests[0].platform"),
    ],
)
def test_malformed_indexes_name_the_field(path: str, value: Any, named: str) -> None:
    doc = _replace(index(), path, value)
    with pytest.raises(InvalidManifest) as e:
        parse(doc, mt.OCI_INDEX)
    assert named in str(e.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
        (b"[]", "JSON object"),
        (b'"manifest"', "JSON object"),
        (b"null", "JSON object"),
    ],
)
def test_not_a_json_object(data: bytes, message: str) -> None:
    with pytest.raises(InvalidManifest, match=message):
        parse_manifest(data, mt.OCI_MANIFEST)


def test_deeply_nested_json_is_invalid_not_a_crash() -> None:
    # Well under the 4 MiB manifest limit, far over the parser's recursion limit.
    data = b'{"schemaVersion": 2, "annotations": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(InvalidManifest):
        parse_manifest(data, mt.OCI_MANIFEST)


def test_huge_integer_is_invalid_not_a_crash() -> None:
    data = b'{"schemaVersion": 2, "config": {"size": ' + b"9" * 10_000 + b"}}"
    with pytest.raises(InvalidManifest):
        parse_manifest(data, mt.OCI_MANIFEST)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
manifest_keys = st.sampled_from(
    [
        "schemaVersion",
        "mediaType",
        "config",
        "layers",
        "manifests",
        "subject",
        "artifactType",
        "annotations",
        "mediaType",
        "digest",
        "size",
        "urls",
        "platform",
    ]
)


@st.composite
def manifest_like(draw: st.DrawFn) -> dict[str, Any]:
    """Documents shaped enough like manifests to reach deep into the parser."""
    kind = draw(st.sampled_from(["image", "index", "empty"]))
    doc = image() if kind == "image" else index() if kind == "index" else {}
    for _ in range(draw(st.integers(0, 4))):
        key = draw(manifest_keys)
        target: Any = doc
        layers = doc.get("layers")
        if (
            draw(st.booleans())
            and isinstance(layers, list)
            and layers
            and isinstance(layers[0], dict)
        ):
            target = layers[0]
        target[key] = draw(json_values)
    return doc


@given(
    manifest_like(),
    st.sampled_from([None, *sorted(mt.MANIFESTS), mt.DOCKER_SCHEMA1, "application/json"]),
)
def test_any_document_parses_or_raises_invalid_manifest(
    doc: dict[str, Any], content_type: str | None
) -> None:
    try:
        manifest = parse(doc, content_type)
    except InvalidManifest as e:
        message = str(e)
    else:
        assert manifest.media_type in mt.MANIFESTS
        assert doc["schemaVersion"] == 2
        return
    assert message


@given(st.binary(max_size=256), st.sampled_from([None, mt.OCI_MANIFEST]))
def test_any_bytes_parse_or_raise_invalid_manifest(data: bytes, content_type: str | None) -> None:
    # Anything but InvalidManifest escaping would be a 500 for bad input.
    with contextlib.suppress(InvalidManifest):
        parse_manifest(data, content_type)
