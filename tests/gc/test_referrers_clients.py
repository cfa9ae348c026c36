"""Retention and GC with referrers, against a registry filled by real clients: skopeo
pushes an image and a multi-platform index, oras-py attaches referrers to them (and to an
image that retention deletes); ``dockyard retention apply`` and ``dockyard gc`` run; the
referrers of live images stay, those of the deleted image go, and skopeo and oras-py pull
everything that stays back with the same digests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import oras.client
import oras.oci
import pytest

from tests.clients.commands import require, run
from tests.clients.layout import OciLayout, child_digests
from tests.clients.server import Dockyard, sha256
from tests.gc.cli import write_config
from tests.gc.test_clients import TLS, dockyard_cli, make_layout
from tests.services import PostgresCluster, S3Server

SIGNATURE = "application/vnd.dockyard.test.signature"
SBOM = "application/vnd.dockyard.test.sbom"

# v* tags stay; tmp-* tags go at once, and so do untagged manifests nothing live needs.
# The referrers are pushed under tmp-* tags: once those go, only their subject keeps them.
RETENTION = """\
[[retention]]
repositories = "gcref/**"
name = "ci"
keep_tags = ["v*"]
delete_tags = { pattern = "tmp-*", older_than = "0s" }
delete_untagged_older_than = "0s"
"""


@pytest.fixture(params=["embedded", "postgres-s3"])
def config(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """The server's and the commands' configuration, on either stack."""
    if request.param == "embedded":
        yield write_config(tmp_path / "dockyard.toml", tmp_path / "data", RETENTION)
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    s3: S3Server = request.getfixturevalue("s3")
    database = cluster.fresh_database()
    storage = "".join(f"{key} = {json.dumps(value)}\n" for key, value in s3.storage().items())
    stack = f'[metadata]\nurl = "{cluster.url(database)}"\n\n[storage]\n{storage}\n'
    yield write_config(tmp_path / "dockyard.toml", tmp_path / "data", stack + RETENTION)
    cluster.drop_database(database)


@pytest.fixture
def server(tmp_path: Path, config: Path) -> Iterator[Dockyard]:
    require("skopeo")
    server = Dockyard.start(tmp_path / "data", tmp_path / "server.log", args=["-c", str(config)])
    yield server
    assert server.stop() == 0
    assert not Dockyard.server_errors(server.log_since(0)), server.log_since(0)[-3000:]


@pytest.fixture
def oras_client(server: Dockyard) -> Iterator[Any]:
    """An oras-py client over plain HTTP (oras-py ships no type information)."""
    client = oras.client.OrasClient(hostname=server.host, insecure=True)
    yield client
    client.session.close()


def attach(
    client: Any, server: Dockyard, target: str, subject: str, kind: str, content: bytes, tmp: Path
) -> tuple[str, str]:
    """Push a one-file artifact of ``kind`` to ``target`` (``repo:tag``) with ``subject``
    (a manifest digest in the same repository); its manifest digest and file's digest."""
    repository = target.split(":", 1)[0]
    tmp.mkdir(parents=True)
    (tmp / "payload").write_bytes(content)
    (tmp / "config.json").write_bytes(b"{}")
    manifest = server.manifest(repository, subject)
    response = client.push(
        target=f"{server.host}/{target}",
        files=[str(tmp / "payload")],
        disable_path_validation=True,
        manifest_config=f"{tmp / 'config.json'}:{kind}",
        subject=oras.oci.Subject(
            mediaType=manifest.media_type, digest=manifest.digest, size=len(manifest.content)
        ),
        quiet=True,
    )
    assert response.status_code == 201, response.text
    assert response.headers["OCI-Subject"] == subject
    return response.headers["Docker-Content-Digest"], sha256(content)


def referrer_digests(server: Dockyard, repository: str, subject: str) -> list[str]:
    listing = server.referrers(repository, subject)
    assert listing.status == 200
    return sorted(entry["digest"] for entry in listing.json()["manifests"])


def test_referrers_of_live_images_stay_those_of_a_deleted_image_go(
    server: Dockyard, oras_client: Any, config: Path, tmp_path: Path
) -> None:
    layout = make_layout(tmp_path / "layout")
    host = server.host
    for source, target, flags in (
        ("single", "gcref/app:v1", []),
        ("multi", "gcref/app:v2", ["--all"]),
        ("single", "gcref/pr:tmp-1", []),  # the image retention deletes
    ):
        run(["skopeo", "copy", "--quiet", *flags, *TLS, f"oci:{layout.path}:{source}",
             f"docker://{host}/{target}"])  # fmt: skip
    single = layout.manifest_digest("single")
    multi = layout.manifest_digest("multi")
    arm64 = child_digests(layout.blob(multi))[1]

    def push(target: str, subject: str, kind: str, content: bytes) -> tuple[str, str]:
        work = tmp_path / target.replace("/", "-").replace(":", "-")
        return attach(oras_client, server, target, subject, kind, content, work)

    signed, signed_blob = push("gcref/app:tmp-sig-v1", single, SIGNATURE, b"signature of v1\n")
    sbom, sbom_blob = push("gcref/app:tmp-sbom-v2", multi, SBOM, b'{"sbom": "of the index"}\n')
    child_sig, child_sig_blob = push(
        "gcref/app:tmp-sig-arm64", arm64, SIGNATURE, b"signature of arm64\n"
    )
    doomed, doomed_blob = push("gcref/pr:tmp-sig-1", single, SIGNATURE, b"signature of pr-1\n")

    retention = json.loads(dockyard_cli("retention", "apply", "--json", "-c", config))
    deleted = {(d["repository"], d["tag"] or d["digest"]) for d in retention["deletions"]}
    assert deleted == {
        ("gcref/app", "tmp-sig-v1"),
        ("gcref/app", "tmp-sbom-v2"),
        ("gcref/app", "tmp-sig-arm64"),
        ("gcref/pr", "tmp-1"),
        ("gcref/pr", "tmp-sig-1"),
        # Untagged now, and with no live subject: the image and its referrer.
        ("gcref/pr", single),
        ("gcref/pr", doomed),
    }
    assert {d["rule"] for d in retention["deletions"]} == {"ci"}

    report = json.loads(dockyard_cli("gc", "--json", "-c", config))
    # Only the deleted image's referrer had bytes of its own; the image's blobs are
    # shared with gcref/app:v1, and the referrers' empty config with the live ones.
    assert [b["digest"] for b in report["deleted_blobs"]] == [doomed_blob]
    assert {link["repository"] for link in report["dropped_links"]} == {"gcref/pr"}
    for kept in (signed_blob, sbom_blob, child_sig_blob):
        assert kept not in {link["digest"] for link in report["dropped_links"]}
    assert report["untagged_manifests"] == 0

    # The live images' referrers are still found through their subjects...
    assert referrer_digests(server, "gcref/app", single) == [signed]
    assert referrer_digests(server, "gcref/app", multi) == [sbom]
    assert referrer_digests(server, "gcref/app", arm64) == [child_sig]
    assert server.tags("gcref/app") == ["v1", "v2"]
    # ...and the deleted image's referrer is gone, with its bytes.
    assert not server.has_manifest("gcref/pr", doomed)
    assert not server.has_manifest("gcref/pr", single)
    assert server.request("GET", f"/v2/gcref/pr/blobs/{doomed_blob}").status == 404

    # Pulled back by real clients: the same digests, the same bytes.
    for tag, reference, flags in (("v1", "single", []), ("v2", "multi", ["--all"])):
        out = tmp_path / f"pulled-{tag}"
        run(["skopeo", "copy", "--quiet", *flags, *TLS, f"docker://{host}/gcref/app:{tag}",
             f"oci:{out}:{reference}"])  # fmt: skip
        pulled = OciLayout(out)
        assert pulled.manifest_digest(reference) == layout.manifest_digest(reference)
        for child in child_digests(layout.blob(multi)) if reference == "multi" else []:
            assert pulled.blob(child) == layout.blob(child)
    for referrer, content in (
        (signed, b"signature of v1\n"),
        (sbom, b'{"sbom": "of the index"}\n'),
        (child_sig, b"signature of arm64\n"),
    ):
        out = tmp_path / f"oras-{referrer[7:19]}"
        oras_client.pull(target=f"{host}/gcref/app@{referrer}", outdir=str(out))
        assert (out / "payload").read_bytes() == content
    fsck = json.loads(dockyard_cli("fsck", "--json", "-c", config))
    assert fsck["ok"], fsck
