"""containerd (``ctr``) against Dockyard, through a private containerd: pull and unpack an
image pushed from a layout, compare the content store with the layout, push it back."""

from __future__ import annotations

import re

import pytest

from tests.clients.commands import require, run
from tests.clients.daemons import Ctr
from tests.clients.images import BuiltImage
from tests.clients.layout import image_blobs
from tests.clients.server import Dockyard

pytestmark = pytest.mark.slow

REPO = "ctr/img"


@pytest.fixture(scope="module")
def source(dockyard: Dockyard, image: BuiltImage) -> str:
    """The test image pushed from its layout with skopeo, digests preserved."""
    require("skopeo")
    reference = f"{dockyard.host}/{REPO}:v1"
    run(["skopeo", "copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false",
         image.reference, f"docker://{reference}"])  # fmt: skip
    return reference


def listed_digest(ctr: Ctr, reference: str) -> str:
    """The digest ``ctr images ls`` shows for ``reference``."""
    for line in ctr("images", "ls").splitlines()[1:]:
        name, _media_type, digest, *_ = line.split()
        if name == reference:
            return digest
    raise AssertionError(f"{reference} is not in ctr images ls")


def test_pull_unpacks_the_exact_image(ctr: Ctr, image: BuiltImage, source: str) -> None:
    # The native snapshotter unpacks into plain directories: no overlay mounts to undo,
    # and unpacking checks every layer against the config's diff_ids.
    ctr("images", "pull", "--plain-http", "--snapshotter", "native", source)
    digest, manifest = image.layout.manifest(image.tag)
    assert listed_digest(ctr, source) == digest
    assert ctr.raw("content", "get", digest) == manifest
    for blob in image_blobs(manifest):
        assert ctr.raw("content", "get", blob) == image.layout.blob(blob)


def test_push_mounts_the_layers_from_the_source(
    ctr: Ctr, dockyard: Dockyard, image: BuiltImage, source: str
) -> None:
    ctr("images", "pull", "--plain-http", "--snapshotter", "native", source)
    target = f"{dockyard.host}/ctr/pushed:v1"
    ctr("images", "tag", "--force", source, target)
    offset = dockyard.log_offset()
    ctr("images", "push", "--plain-http", target)

    digest, manifest = image.layout.manifest(image.tag)
    served = dockyard.manifest("ctr/pushed", "v1")
    assert (served.digest, served.content) == (digest, manifest)
    # containerd remembers where it pulled each blob from (its distribution.source
    # label) and asks for a mount of every one: layers and config alike.
    dockyard.wait_for_log(offset, r'"PUT /v2/ctr/pushed/manifests/v1" 201 ')
    mounts = re.findall(r'"POST /v2/ctr/pushed/blobs/uploads/" 201 ', dockyard.log_since(offset))
    assert len(mounts) == len(image_blobs(manifest))
    for blob in image_blobs(manifest):
        assert dockyard.blob("ctr/pushed", blob) == image.layout.blob(blob)
