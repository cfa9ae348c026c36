"""ORAS (oras-py) against Dockyard: artifacts pushed as files and pulled back byte for byte,
monolithic and chunked uploads, and a referrer attached to an artifact and discovered
through the referrers API (distribution-spec v1.1, "Listing Referrers")."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import oras.client
import oras.oci
import pytest

from tests.clients.server import Dockyard, sha256

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SIGNATURE_TYPE = "application/vnd.dockyard.test.signature"
TITLE = "org.opencontainers.image.title"
REPO = "oras/artifact"
CHUNK = 256 << 10


@pytest.fixture(scope="module")
def client(dockyard: Dockyard) -> Iterator[Any]:
    """An oras-py client over plain HTTP (oras-py ships no type information)."""
    c = oras.client.OrasClient(hostname=dockyard.host, insecure=True)
    yield c
    c.session.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The artifact's files: a note, and 1 MiB of random bytes (several chunks)."""
    return {
        "notes.txt": b"an artifact that is not an image\n",
        "payload.bin": random.Random(11).randbytes(1 << 20),
    }


def write(directory: Path, files: dict[str, bytes]) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in files.items():
        (directory / name).write_bytes(data)
        paths.append(str(directory / name))
    return paths


@pytest.fixture(scope="module")
def artifact(
    dockyard: Dockyard,
    client: Any,
    files: dict[str, bytes],
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """The artifact pushed to ``oras/artifact:v1`` with chunked uploads; its digest."""
    paths = write(tmp_path_factory.mktemp("oras-push"), files)
    offset = dockyard.log_offset()
    response = client.push(
        target=f"{dockyard.host}/{REPO}:v1",
        files=paths,
        disable_path_validation=True,
        do_chunked=True,
        chunk_size=CHUNK,
        quiet=True,
    )
    assert response.status_code == 201, response.text
    # 1 MiB in 256 KiB chunks: four PATCHes for the payload alone.
    dockyard.wait_for_log(offset, rf'"PUT /v2/{REPO}/manifests/v1" 201 ')
    patches = re.findall(rf'"PATCH /v2/{REPO}/blobs/uploads/\w+" 202 ', dockyard.log_since(offset))
    assert len(patches) >= 1 + (1 << 20) // CHUNK
    digest = response.headers["Docker-Content-Digest"]
    assert isinstance(digest, str)
    return digest


def test_push_stores_each_file_as_a_titled_layer(
    dockyard: Dockyard, artifact: str, files: dict[str, bytes]
) -> None:
    served = dockyard.manifest(REPO, "v1")
    assert served.digest == artifact
    assert served.media_type == OCI_MANIFEST
    layers = served.doc["layers"]
    assert [layer["annotations"][TITLE] for layer in layers] == list(files)
    for layer, data in zip(layers, files.values(), strict=True):
        assert layer["digest"] == sha256(data)
        assert layer["size"] == len(data)
        assert dockyard.blob(REPO, layer["digest"]) == data


def test_pull_gives_back_the_same_bytes(
    client: Any, dockyard: Dockyard, artifact: str, files: dict[str, bytes], tmp_path: Path
) -> None:
    pulled = client.pull(target=f"{dockyard.host}/{REPO}:v1", outdir=str(tmp_path))
    assert sorted(Path(p).name for p in pulled) == sorted(files)
    for name, data in files.items():
        assert (tmp_path / name).read_bytes() == data
    by_digest = tmp_path / "by-digest"
    client.pull(target=f"{dockyard.host}/{REPO}@{artifact}", outdir=str(by_digest))
    assert {p.name: p.read_bytes() for p in by_digest.iterdir()} == files


def test_monolithic_push_and_tags(
    client: Any, dockyard: Dockyard, artifact: str, files: dict[str, bytes], tmp_path: Path
) -> None:
    paths = write(tmp_path / "push", files)
    for tag in ("v2", "stable"):
        response = client.push(
            target=f"{dockyard.host}/{REPO}:{tag}",
            files=paths,
            disable_path_validation=True,
            quiet=True,
        )
        assert response.status_code == 201, response.text
        # Same files, same empty config: the same manifest digest as the chunked push.
        assert response.headers["Docker-Content-Digest"] == artifact
    assert client.get_tags(f"{dockyard.host}/{REPO}") == ["stable", "v1", "v2"]
    assert client.get_tags(f"{dockyard.host}/{REPO}", N=2) == ["stable", "v1"]


def test_delete_tags_removes_the_manifest(
    client: Any, dockyard: Dockyard, files: dict[str, bytes], tmp_path: Path
) -> None:
    paths = write(tmp_path / "push", {"only.txt": b"short-lived\n"})
    target = f"{dockyard.host}/oras/deletable"
    response = client.push(
        target=f"{target}:v1", files=paths, disable_path_validation=True, quiet=True
    )
    digest = response.headers["Docker-Content-Digest"]
    # oras-py deletes a tag by resolving it and deleting the manifest by digest.
    assert client.delete_tags(target, ["v1", "missing"]) == ["v1"]
    assert not dockyard.has_manifest("oras/deletable", digest)
    assert dockyard.tags("oras/deletable") == []


def test_referrer_is_discovered_through_the_referrers_api(
    client: Any, dockyard: Dockyard, artifact: str, tmp_path: Path
) -> None:
    subject = dockyard.manifest(REPO, artifact)
    signature = tmp_path / "signature.txt"
    signature.write_bytes(b"signed: " + artifact.encode())
    config = tmp_path / "config.json"
    config.write_bytes(b"{}")
    response = client.push(
        target=f"{dockyard.host}/{REPO}:signature",
        files=[str(signature)],
        disable_path_validation=True,
        manifest_config=f"{config}:{SIGNATURE_TYPE}",
        manifest_annotations={"org.example.signed-by": "dockyard-tests"},
        subject=oras.oci.Subject(
            mediaType=subject.media_type, digest=subject.digest, size=len(subject.content)
        ),
        quiet=True,
    )
    assert response.status_code == 201, response.text
    assert response.headers["OCI-Subject"] == artifact
    referrer = dockyard.manifest(REPO, response.headers["Docker-Content-Digest"])
    assert referrer.doc["subject"]["digest"] == artifact

    listing = dockyard.referrers(REPO, artifact)
    assert listing.status == 200
    assert listing.headers["Content-Type"] == OCI_INDEX
    index = listing.json()
    assert index["mediaType"] == OCI_INDEX
    assert index["manifests"] == [
        {
            "mediaType": OCI_MANIFEST,
            "digest": referrer.digest,
            "size": len(referrer.content),
            "artifactType": SIGNATURE_TYPE,
            "annotations": {"org.example.signed-by": "dockyard-tests"},
        }
    ]

    filtered = dockyard.referrers(REPO, artifact, SIGNATURE_TYPE)
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    assert filtered.json()["manifests"] == index["manifests"]
    assert dockyard.referrers(REPO, artifact, "application/x-other").json()["manifests"] == []
    # The referrer itself has no referrers, and the subject's own pull is unchanged.
    assert dockyard.referrers(REPO, referrer.digest).json()["manifests"] == []
    assert dockyard.manifest(REPO, "v1").digest == artifact
