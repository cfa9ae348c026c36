"""Test data shaped like the OCI conformance suite's (distribution-spec ``conformance/``
``setup.go`` and ``conformance2/testdata.go``), for ``test_conformance.py``.

Content is random per run, as in the suite, so no test can pass on stale state.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ND = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_ND_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
EXAMPLE = "application/vnd.example.oci.conformance"

# setup.go: a tiny tar.gz holding one text file.
LAYER_BASE64 = (
    "H4sIAAAAAAAAA+3OQQrCMBCF4a49xXgBSUnaHMCTRBptQRNpp6i3t0UEV7oqIv7fYgbmzeJpHHSjVy0"
    "WZCa1c/MufWVe94N3RWlrZ72x3k/30nhbFWKWLPU0Dhp6keJ8im//PuU/6pZH2WVtYx8b0Sz7LjWSR5VLG6YRBumSzOlGtjkd+qD"
    "jMWiX07Befbs7AAAAAAAAAAAAAAAAAPyzO34MnqoAKAAA"
)


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def marshal_indent(doc: Any) -> bytes:
    """``json.MarshalIndent(v, "", "\\t")``."""
    return json.dumps(doc, indent="\t").encode()


def desc(
    media_type: str, content: bytes, algorithm: str = "sha256", **extra: Any
) -> dict[str, Any]:
    return {
        "mediaType": media_type,
        "digest": digest_of(content, algorithm),
        "size": len(content),
        **extra,
    }


@dataclass(frozen=True)
class Blob:
    content: bytes
    digest: str

    @classmethod
    def of(cls, content: bytes) -> Blob:
        return cls(content, digest_of(content))

    @property
    def length(self) -> str:
        return str(len(self.content))


# -- conformance/setup.go ----------------------------------------------------------------


@dataclass(frozen=True)
class Legacy:
    """The ginkgo suite's globals: configs, layer, manifests, test blobs, referrers."""

    configs: list[Blob]
    layer: Blob
    manifests: list[Blob]
    empty_layer_manifest: Blob
    blob_a: Blob
    blob_b: Blob
    chunk1: bytes
    chunk2: bytes
    empty_json: Blob
    ref_blob_a: Blob
    ref_blob_b: Blob
    refs_a_config: Blob
    refs_b_config: Blob
    refs_a_layer: Blob
    refs_b_layer: Blob
    refs_c_layer: Blob
    refs_index: Blob
    annotations: dict[str, str]
    dummy_digest: str = digest_of(b"hello world")

    @property
    def chunk1_range(self) -> str:
        return f"0-{len(self.chunk1) - 1}"

    @property
    def chunk2_range(self) -> str:
        return f"{len(self.chunk1)}-{len(self.blob_b.content) - 1}"


TYPE_A = "application/vnd.nhl.peanut.butter.bagel"
TYPE_B = "application/vnd.nba.strawberry.jam.croissant"
TYPE_INDEX = "application/vnd.food.stand"
ANNOTATION_KEY = "org.opencontainers.conformance.test"


def legacy_data() -> Legacy:
    configs = []
    for _ in range(5):
        author = base64.b32encode(os.urandom(10)).decode()
        config = {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []},
            "author": author,
        }
        configs.append(Blob.of(marshal_indent(config)))
    layer = Blob.of(base64.b64decode(LAYER_BASE64))
    layer_desc = {"mediaType": OCI_LAYER_GZIP, "size": len(layer.content), "digest": layer.digest}

    def config_desc(config: Blob) -> dict[str, Any]:
        return {
            "mediaType": OCI_CONFIG,
            "digest": config.digest,
            "size": len(config.content),
            "data": base64.b64encode(config.content).decode(),
            "newUnspecifiedField": base64.b64encode(b"hello world").decode(),
        }

    manifests = [
        Blob.of(
            marshal_indent(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": config_desc(config),
                    "layers": [layer_desc],
                }
            )
        )
        for config in configs
    ]
    empty_layer = Blob.of(
        marshal_indent({"schemaVersion": 2, "config": config_desc(configs[1]), "layers": []})
    )
    blob_b = Blob.of(os.urandom(42))
    empty_json = Blob.of(b"{}")
    empty_desc = desc(OCI_EMPTY, b"{}")
    ref_a = Blob.of(b"NHL Peanut Butter on my NHL bagel")
    ref_b = Blob.of(b"NBA Strawberry Jam on my NBA croissant")
    subject4 = desc(OCI_MANIFEST, manifests[4].content)
    subject3 = desc(OCI_MANIFEST, manifests[3].content)
    annotations: dict[str, str] = {}

    def referrer(doc: dict[str, Any], note: str | None) -> Blob:
        if note is not None:
            doc["annotations"] = {ANNOTATION_KEY: note}
        blob = Blob.of(marshal_indent(doc))
        if note is not None:
            annotations[blob.digest] = note
        return blob

    def config_artifact(ref: Blob, artifact_type: str, note: str) -> Blob:
        return referrer(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": desc(artifact_type, ref.content),
                "subject": subject4,
                "layers": [empty_desc],
            },
            note,
        )

    def layer_artifact(
        ref: Blob, artifact_type: str, subject: dict[str, Any], note: str | None
    ) -> Blob:
        return referrer(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": artifact_type,
                "config": empty_desc,
                "subject": subject,
                "layers": [desc(artifact_type, ref.content)],
            },
            note,
        )

    refs_a_config = config_artifact(ref_a, TYPE_A, "test config a")
    refs_b_config = config_artifact(ref_b, TYPE_B, "test config b")
    refs_a_layer = layer_artifact(ref_a, TYPE_A, subject4, "test layer a")
    refs_b_layer = layer_artifact(ref_b, TYPE_B, subject4, "test layer b")
    refs_c_layer = layer_artifact(ref_b, TYPE_B, subject3, None)
    refs_index = referrer(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "artifactType": TYPE_INDEX,
            "manifests": [
                desc(OCI_MANIFEST, refs_a_config.content),
                desc(OCI_MANIFEST, refs_a_layer.content),
            ],
            "subject": subject4,
        },
        "test index",
    )
    return Legacy(
        configs=configs,
        layer=layer,
        manifests=manifests,
        empty_layer_manifest=empty_layer,
        blob_a=Blob.of(os.urandom(42)),
        blob_b=blob_b,
        chunk1=blob_b.content[:22],
        chunk2=blob_b.content[22:],
        empty_json=empty_json,
        ref_blob_a=ref_a,
        ref_blob_b=ref_b,
        refs_a_config=refs_a_config,
        refs_b_config=refs_b_config,
        refs_a_layer=refs_a_layer,
        refs_b_layer=refs_b_layer,
        refs_c_layer=refs_c_layer,
        refs_index=refs_index,
        annotations=annotations,
    )


# -- conformance2/testdata.go ---------------------------------------------------------------


@dataclass
class DataSet:
    """One conformance2 data set: blobs, manifests in push order, tags, expected referrers."""

    name: str
    algorithm: str = "sha256"
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[str, bytes] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    descriptors: dict[str, dict[str, Any]] = field(default_factory=dict)
    referrers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    extra_fields: bool = False
    set_data: bool = False

    def add_blob(self, content: bytes, media_type: str = "application/octet-stream") -> str:
        digest = digest_of(content, self.algorithm)
        self.blobs[digest] = content
        self.descriptors[digest] = self._desc(media_type, content)
        return digest

    def _desc(self, media_type: str, content: bytes) -> dict[str, Any]:
        d = desc(media_type, content, self.algorithm)
        if self.set_data:
            d["data"] = base64.b64encode(content).decode()
        return d

    def _custom(self, doc: dict[str, Any]) -> dict[str, Any]:
        if self.extra_fields:
            doc[f"org.{base64.b32encode(os.urandom(10)).decode()}"] = os.urandom(8).hex()
        return doc

    def gen_layer(self, number: int, *, gzipped: bool = True) -> tuple[str, str]:
        """A tar layer (gzipped or not); its digest and its uncompressed digest."""
        text = f"Conformance test file contents for file number {number}.\n{os.urandom(8).hex()}\n"
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            info = tarfile.TarInfo(f"./conformance-{number}.txt")
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text.encode()))
        plain = buffer.getvalue()
        body = gzip.compress(plain) if gzipped else plain
        digest = self.add_blob(body, OCI_LAYER_GZIP if gzipped else OCI_LAYER)
        return digest, digest_of(plain, self.algorithm)

    def gen_config(self, platform: dict[str, str], diff_ids: list[str]) -> str:
        doc = {
            "author": "OCI Conformance Test",
            **platform,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
        return self.add_blob(json.dumps(self._custom(doc)).encode(), OCI_CONFIG)

    def gen_manifest(
        self,
        config: str,
        layers: list[str],
        *,
        artifact_type: str | None = None,
        subject: dict[str, Any] | None = None,
        annotations: dict[str, str] | None = None,
        tag: str | None = None,
    ) -> str:
        doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST}
        if artifact_type:
            doc["artifactType"] = artifact_type
        doc["config"] = self.descriptors[config]
        doc["layers"] = [self.descriptors[d] for d in layers]
        if subject:
            doc["subject"] = subject
        if annotations:
            doc["annotations"] = annotations
        body = json.dumps(self._custom(doc)).encode()
        effective = artifact_type or self.descriptors[config]["mediaType"]
        return self._add_manifest(body, OCI_MANIFEST, effective, subject, annotations, tag)

    def gen_index(
        self,
        children: list[str],
        platforms: list[dict[str, str] | None],
        *,
        artifact_type: str | None = None,
        subject: dict[str, Any] | None = None,
        annotations: dict[str, str] | None = None,
        tag: str | None = None,
    ) -> str:
        entries = []
        for child, platform in zip(children, platforms, strict=True):
            entry = dict(self.descriptors[child])
            if platform is not None:
                entry["platform"] = platform
            entries.append(entry)
        doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        if artifact_type:
            doc["artifactType"] = artifact_type
        if subject:
            doc["subject"] = subject
        if annotations:
            doc["annotations"] = annotations
        body = json.dumps(self._custom(doc)).encode()
        return self._add_manifest(body, OCI_INDEX, artifact_type, subject, annotations, tag)

    def _add_manifest(
        self,
        body: bytes,
        media_type: str,
        artifact_type: str | None,
        subject: dict[str, Any] | None,
        annotations: dict[str, str] | None,
        tag: str | None,
    ) -> str:
        digest = digest_of(body, self.algorithm)
        self.manifests[digest] = body
        self.order.append(digest)
        self.descriptors[digest] = self._desc(media_type, body)
        if subject is not None:
            expected: dict[str, Any] = {
                "mediaType": media_type,
                "digest": digest,
                "size": len(body),
            }
            if artifact_type:
                expected["artifactType"] = artifact_type
            if annotations:
                expected["annotations"] = annotations
            self.referrers.setdefault(subject["digest"], []).append(expected)
        if tag is not None:
            self.tags[tag] = digest
        return digest

    def gen_image(
        self,
        *,
        platform: dict[str, str] | None = None,
        gzipped: bool = True,
        artifact_type: str | None = None,
        artifact_layer: bytes | None = None,
        layer_media_type: str | None = None,
        subject: dict[str, Any] | None = None,
        annotations: dict[str, str] | None = None,
        tag: str | None = None,
    ) -> str:
        """genManifestFull: two layers and a config, or an artifact with an empty config."""
        if artifact_type is None:
            pairs = [self.gen_layer(n, gzipped=gzipped) for n in range(2)]
            config = self.gen_config(
                platform or {"architecture": "amd64", "os": "linux"}, [u for _, u in pairs]
            )
            layers = [c for c, _ in pairs]
        else:
            config = self.add_blob(b"{}", OCI_EMPTY)
            payload = artifact_layer if artifact_layer is not None else os.urandom(2048)
            layers = [self.add_blob(payload, layer_media_type or artifact_type)]
        return self.gen_manifest(
            config,
            layers,
            artifact_type=artifact_type,
            subject=subject,
            annotations=annotations,
            tag=tag,
        )

    def gen_multi_platform(self, *, tag: str | None = None, **kw: Any) -> str:
        """genIndexFull over linux/amd64 and linux/arm64."""
        platforms = [{"architecture": a, "os": "linux"} for a in ("amd64", "arm64")]
        images = [self.gen_image(platform=p, **kw) for p in platforms]
        index_kw = {k: v for k, v in kw.items() if k in ("artifact_type", "subject", "annotations")}
        return self.gen_index(images, list(platforms), tag=tag, **index_kw)


def _note() -> dict[str, str]:
    return {
        "org.opencontainers.conformance": "hello conformance test",
        f"org.example.{os.urandom(6).hex()}": os.urandom(6).hex(),
    }


def conformance2_data_sets() -> list[DataSet]:
    """The data sets of conformance2's GenerateData, in its order."""
    sets = []
    ds = DataSet("image")
    ds.gen_image(tag="image")
    sets.append(ds)
    ds = DataSet("image-uncompressed")
    ds.gen_image(tag="image-uncompressed", gzipped=False)
    sets.append(ds)
    ds = DataSet("index")
    ds.gen_multi_platform(tag="index")
    sets.append(ds)
    ds = DataSet("nested-index")
    first, second = ds.gen_multi_platform(), ds.gen_multi_platform()
    ds.gen_index([first, second], [None, None], tag="index-of-index")
    sets.append(ds)
    ds = DataSet("empty-index")
    ds.gen_index([], [], tag="index")
    sets.append(ds)
    ds = DataSet("artifact")
    ds.gen_image(tag="artifact", artifact_type=EXAMPLE)
    sets.append(ds)
    ds = DataSet("artifact-index")
    ds.gen_multi_platform(tag="artifact-index", artifact_type=EXAMPLE)
    sets.append(ds)
    ds = DataSet("artifact-without-layers")
    ds.gen_image(
        tag="artifact-without-layers",
        artifact_type=EXAMPLE,
        artifact_layer=b"{}",
        layer_media_type=OCI_EMPTY,
    )
    sets.append(ds)
    ds = DataSet("artifacts-with-subject")
    subject = ds.descriptors[ds.gen_image(tag="image")]
    ds.gen_image(subject=subject)
    ds.gen_image(artifact_type=EXAMPLE, subject=subject, annotations=_note(), tag="tagged-artifact")
    sets.append(ds)
    ds = DataSet("index-with-subject")
    subject = ds.descriptors[ds.gen_multi_platform(tag="index")]
    ds.gen_multi_platform(
        artifact_type=EXAMPLE, subject=subject, annotations=_note(), tag="tagged-artifact"
    )
    sets.append(ds)
    ds = DataSet("missing-subject")
    missing = {"mediaType": OCI_MANIFEST, "size": 123, "digest": digest_of(b"missing content")}
    ds.gen_image(artifact_type=EXAMPLE, subject=missing, annotations=_note(), tag="tagged-artifact")
    sets.append(ds)
    ds = DataSet("data-field", set_data=True)
    ds.gen_image(tag="data-field")
    sets.append(ds)
    ds = DataSet("non-distributable-layers")
    foreign = []
    for media_type, size in ((OCI_LAYER_ND_GZIP, 123456), (OCI_LAYER_ND, 12345)):
        digest = digest_of(os.urandom(256))
        url = f"https://store.example.com/blobs/sha256/{digest.split(':')[1]}"
        ds.descriptors[digest] = {
            "mediaType": media_type,
            "digest": digest,
            "size": size,
            "urls": [url],
        }
        foreign.append(digest)
    layer, plain = ds.gen_layer(1)
    config = ds.gen_config({"architecture": "amd64", "os": "linux"}, [*foreign, plain])
    ds.gen_manifest(config, [*foreign, layer], tag="non-distributable-image")
    sets.append(ds)
    ds = DataSet("custom-fields", extra_fields=True)
    ds.gen_multi_platform(tag="custom-fields")
    sets.append(ds)
    ds = DataSet("sha512-image", algorithm="sha512")
    subject = ds.descriptors[ds.gen_image()]
    ds.gen_image(artifact_type=EXAMPLE, subject=subject, annotations=_note())
    sets.append(ds)
    return sets


def media_type_of(body: bytes) -> str:
    """conformance2 ``detectMediaType``: the body's mediaType, OCI image manifest if none."""
    try:
        value = json.loads(body).get("mediaType")
    except ValueError:
        return OCI_MANIFEST
    return value if isinstance(value, str) and value else OCI_MANIFEST
