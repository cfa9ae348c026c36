"""skopeo against Dockyard: copies in and out (docker://, oci:, dir:), inspect, list-tags,
delete, and a registry-to-registry copy that mounts layers across repositories."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.clients.commands import require, run
from tests.clients.images import BuiltImage
from tests.clients.layout import OciLayout, image_blobs
from tests.clients.server import Dockyard

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
REPO = "skopeo/img"


def skopeo(*args: str | Path) -> str:
    return run(["skopeo", *args]).stdout


def copy(source: str, destination: str, *options: str) -> None:
    """``skopeo copy`` with plain HTTP towards the registry on both sides."""
    skopeo("copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false",
           *options, source, destination)  # fmt: skip


def inspect(reference: str, *options: str) -> dict[str, Any]:
    doc = json.loads(skopeo("inspect", "--tls-verify=false", *options, reference))
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(scope="module")
def pushed(dockyard: Dockyard, image: BuiltImage) -> str:
    """The test image copied from its layout into ``skopeo/img:v1``, digests preserved."""
    require("skopeo")
    copy(image.reference, f"docker://{dockyard.host}/{REPO}:v1", "--preserve-digests")
    return f"docker://{dockyard.host}/{REPO}"


def assert_same_blobs(dockyard: Dockyard, repository: str, image: BuiltImage) -> None:
    """Every blob of the image is served by ``repository`` with the layout's bytes."""
    _, manifest = image.layout.manifest(image.tag)
    for digest in image_blobs(manifest):
        assert dockyard.blob(repository, digest) == image.layout.blob(digest), digest


def test_copy_in_stores_the_exact_manifest_and_blobs(
    dockyard: Dockyard, image: BuiltImage, pushed: str
) -> None:
    digest, manifest = image.layout.manifest(image.tag)
    served = dockyard.manifest(REPO, "v1")
    assert served.digest == digest
    assert served.content == manifest
    assert served.media_type == OCI_MANIFEST
    assert dockyard.manifest(REPO, digest).content == manifest
    assert_same_blobs(dockyard, REPO, image)


def test_inspect_reports_the_layout_digest(image: BuiltImage, pushed: str) -> None:
    digest, manifest = image.layout.manifest(image.tag)
    config_digest, *layers = image_blobs(manifest)
    info = inspect(f"{pushed}:v1")
    assert info["Digest"] == digest
    assert info["Layers"] == layers
    assert info["Architecture"] == "amd64"
    assert info["Labels"]["dockyard"] == "test"
    raw = skopeo("inspect", "--tls-verify=false", "--raw", f"{pushed}:v1")
    assert raw.encode() == manifest
    config = skopeo("inspect", "--tls-verify=false", "--config", "--raw", f"{pushed}:v1")
    assert config.encode() == image.layout.blob(config_digest)
    assert inspect(f"{pushed}@{digest}")["Digest"] == digest


def test_copy_out_to_an_oci_layout(image: BuiltImage, pushed: str, tmp_path: Path) -> None:
    out = OciLayout(tmp_path / "pulled")
    copy(f"{pushed}:v1", f"oci:{out.path}:v1", "--preserve-digests")
    digest, manifest = image.layout.manifest(image.tag)
    assert out.manifest("v1") == (digest, manifest)
    for blob in image_blobs(manifest):
        assert out.blob(blob) == image.layout.blob(blob)


def test_copy_out_to_dir_and_back_in(
    dockyard: Dockyard, image: BuiltImage, pushed: str, tmp_path: Path
) -> None:
    directory = tmp_path / "dir"
    copy(f"{pushed}:v1", f"dir:{directory}")
    digest, manifest = image.layout.manifest(image.tag)
    assert (directory / "manifest.json").read_bytes() == manifest
    for blob in image_blobs(manifest):
        assert (directory / blob.removeprefix("sha256:")).read_bytes() == image.layout.blob(blob)

    copy(f"dir:{directory}", f"docker://{dockyard.host}/skopeo/from-dir:v1", "--preserve-digests")
    assert dockyard.manifest("skopeo/from-dir", "v1").digest == digest
    assert_same_blobs(dockyard, "skopeo/from-dir", image)


def test_docker_schema2_conversion_round_trips(
    dockyard: Dockyard, image: BuiltImage, pushed: str, tmp_path: Path
) -> None:
    copy(image.reference, f"docker://{dockyard.host}/skopeo/v2s2:v1", "--format", "v2s2")
    served = dockyard.manifest("skopeo/v2s2", "v1")
    assert served.media_type == DOCKER_MANIFEST
    assert served.doc["mediaType"] == DOCKER_MANIFEST
    assert inspect(f"docker://{dockyard.host}/skopeo/v2s2:v1")["Digest"] == served.digest
    # The conversion rewrites only media types: same config and layer bytes.
    _, manifest = image.layout.manifest(image.tag)
    assert image_blobs(served.content) == image_blobs(manifest)
    directory = tmp_path / "dir"
    copy(f"docker://{dockyard.host}/skopeo/v2s2:v1", f"dir:{directory}")
    assert (directory / "manifest.json").read_bytes() == served.content


def test_list_tags(dockyard: Dockyard, image: BuiltImage, pushed: str) -> None:
    for tag in ("v2", "latest", "1.0.0"):
        copy(f"{pushed}:v1", f"docker://{dockyard.host}/skopeo/tags:{tag}", "--preserve-digests")
    listed = json.loads(
        skopeo("list-tags", "--tls-verify=false", f"docker://{dockyard.host}/skopeo/tags")
    )
    assert listed["Tags"] == ["1.0.0", "latest", "v2"]
    assert dockyard.tags("skopeo/tags") == ["1.0.0", "latest", "v2"]
    digest = image.layout.manifest_digest(image.tag)
    assert {dockyard.manifest_digest("skopeo/tags", t) for t in listed["Tags"]} == {digest}


def test_delete_removes_the_manifest_and_its_tags(
    dockyard: Dockyard, image: BuiltImage, pushed: str
) -> None:
    target = f"docker://{dockyard.host}/skopeo/deleted"
    copy(image.reference, f"{target}:v1", "--preserve-digests")
    copy(image.reference, f"{target}:also", "--preserve-digests")
    digest = image.layout.manifest_digest(image.tag)
    assert dockyard.tags("skopeo/deleted") == ["also", "v1"]

    skopeo("delete", "--tls-verify=false", f"{target}:v1")

    assert not dockyard.has_manifest("skopeo/deleted", digest)
    assert not dockyard.has_manifest("skopeo/deleted", "also")
    assert dockyard.tags("skopeo/deleted") == []
    failed = run(["skopeo", "inspect", "--tls-verify=false", f"{target}:v1"], check=False)
    assert failed.returncode != 0
    assert "manifest unknown" in failed.stderr
    # Other repositories holding the same image are untouched.
    assert dockyard.manifest(REPO, digest).digest == digest
    assert_same_blobs(dockyard, REPO, image)


def test_copy_between_repositories_mounts_the_layers(
    dockyard: Dockyard, image: BuiltImage, pushed: str
) -> None:
    offset = dockyard.log_offset()
    copy(f"{pushed}:v1", f"docker://{dockyard.host}/skopeo/mounted:v1")

    digest, manifest = image.layout.manifest(image.tag)
    assert dockyard.manifest("skopeo/mounted", "v1").digest == digest
    # skopeo mounts each layer it knows is in a repository of the same registry: a POST
    # answered 201 Created at once, with no PATCH/PUT of the bytes.
    dockyard.wait_for_log(offset, r'"PUT /v2/skopeo/mounted/manifests/v1" 201 ')
    log = dockyard.log_since(offset)
    mounts = re.findall(r'"POST /v2/skopeo/mounted/blobs/uploads/" 201 ', log)
    assert len(mounts) == len(image_blobs(manifest)) - 1, log  # every layer
    uploads = re.findall(r'"PUT /v2/skopeo/mounted/blobs/uploads/\w+" 201 ', log)
    assert len(uploads) == 1, f"only the config should be uploaded:\n{log}"
    assert_same_blobs(dockyard, "skopeo/mounted", image)
