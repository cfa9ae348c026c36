"""Two replicas sharing one PostgreSQL and one bucket: any request may land on either."""

from __future__ import annotations

import http.client
import json
import random
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.clients.commands import require
from tests.clients.layout import OciLayout
from tests.clients.server import Dockyard
from tests.scaleout.replicas import (
    OCI_MANIFEST,
    Image,
    SharedState,
    digest_of,
    make_image,
    push_blob,
    skopeo_copy,
    start_replica,
    write_layout,
)

MiB = 1 << 20


def push_image(replica: Dockyard, repository: str, image: Image, tag: str) -> None:
    for data in image.blobs.values():
        push_blob(replica, repository, data)
    r = replica.request(
        "PUT",
        f"/v2/{repository}/manifests/{tag}",
        headers={"Content-Type": OCI_MANIFEST},
        body=image.manifest,
    )
    assert r.status == 201, r.body
    assert r.headers["Docker-Content-Digest"] == image.digest


def test_push_through_a_pull_through_b(replicas: tuple[Dockyard, Dockyard], tmp_path: Path) -> None:
    require("skopeo")
    a, b = replicas
    image = make_image(seed=1)
    source = write_layout(image, tmp_path / "src", "v1")
    skopeo_copy(source, f"docker://{a.host}/scale/app:v1")
    skopeo_copy(f"docker://{b.host}/scale/app:v1", f"oci:{tmp_path / 'out'}:v1")
    pulled = OciLayout(tmp_path / "out")
    assert pulled.manifest_digest("v1") == image.digest
    for digest, data in image.blobs.items():
        assert pulled.blob(digest) == data
        assert b.blob("scale/app", digest) == data
    assert b.manifest("scale/app", "v1").content == image.manifest


def _patch(replica: Dockyard, location: str, offset: int, chunk: bytes) -> str:
    r = replica.request(
        "PATCH",
        location,
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
        },
        body=chunk,
    )
    assert r.status == 202, (r.status, r.body)
    assert r.headers["Range"] == f"0-{offset + len(chunk) - 1}"
    return r.headers["Location"]


def test_chunked_upload_alternating_between_replicas(
    replicas: tuple[Dockyard, Dockyard],
) -> None:
    a, b = replicas
    data = random.Random(3).randbytes(15 * MiB + 5)
    sizes = [6 * MiB, 1, 64 * 1024, 5 * MiB, 2 * MiB]
    r = a.request("POST", "/v2/scale/chunked/blobs/uploads/")
    assert r.status == 202
    location = r.headers["Location"]
    offset = 0
    for i, size in enumerate([*sizes, len(data) - sum(sizes)]):
        location = _patch((a, b)[i % 2], location, offset, data[offset : offset + size])
        offset += size
    assert offset == len(data)
    digest = digest_of(data)
    sep = "&" if "?" in location else "?"
    r = b.request("PUT", f"{location}{sep}digest={digest}")
    assert r.status == 201, r.body
    assert a.blob("scale/chunked", digest) == data
    assert b.blob("scale/chunked", digest) == data


def test_replica_killed_mid_upload_is_resumed_on_another(
    replicas: tuple[Dockyard, Dockyard],
) -> None:
    a, b = replicas
    data = random.Random(4).randbytes(12 * MiB + 3)
    first = 5 * MiB
    r = a.request("POST", "/v2/scale/resumed/blobs/uploads/")
    location = r.headers["Location"]
    location = _patch(a, location, 0, data[:first])
    # A second chunk is half-sent to A when A dies.
    conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=30)
    conn.putrequest("PATCH", location)
    conn.putheader("Content-Type", "application/octet-stream")
    conn.putheader("Content-Range", f"{first}-{len(data) - 1}")
    conn.putheader("Content-Length", str(len(data) - first))
    conn.endheaders()
    conn.send(data[first : first + 4 * MiB])
    a.process.send_signal(signal.SIGKILL)
    assert a.process.wait(timeout=30) == -signal.SIGKILL
    conn.close()
    # The client asks B where the upload stands, and resumes there.
    r = b.request("GET", location)
    assert r.status == 204, r.body
    assert r.headers["Range"] == f"0-{first - 1}"
    location = _patch(b, r.headers["Location"], first, data[first:])
    digest = digest_of(data)
    sep = "&" if "?" in location else "?"
    r = b.request("PUT", f"{location}{sep}digest={digest}")
    assert r.status == 201, r.body
    assert r.headers["Docker-Content-Digest"] == digest
    assert b.blob("scale/resumed", digest) == data


def test_a_tag_moved_on_a_is_seen_on_b_at_once(replicas: tuple[Dockyard, Dockyard]) -> None:
    a, b = replicas
    first, second = make_image(seed=10, layer_size=4096), make_image(seed=20, layer_size=4096)
    push_image(a, "scale/tags", first, "latest")
    assert b.manifest_digest("scale/tags", "latest") == first.digest
    push_image(a, "scale/tags", second, "latest")
    assert b.manifest_digest("scale/tags", "latest") == second.digest
    assert b.manifest("scale/tags", "latest").content == second.manifest
    r = a.request("DELETE", "/v2/scale/tags/manifests/" + second.digest)
    assert r.status == 202
    assert not b.has_manifest("scale/tags", "latest")


def test_concurrent_pushes_of_one_tag_through_both_replicas(
    replicas: tuple[Dockyard, Dockyard],
) -> None:
    a, b = replicas
    images = [make_image(seed=100 + i, layer_size=1024) for i in range(6)]
    for image in images:
        for data in image.blobs.values():
            push_blob(a, "scale/race", data)

    def put(i: int) -> int:
        image, replica = images[i], (a, b)[i % 2]
        r = replica.request(
            "PUT", "/v2/scale/race/manifests/latest",
            headers={"Content-Type": OCI_MANIFEST}, body=image.manifest,
        )  # fmt: skip
        return r.status

    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(put, range(6)))
    assert statuses == [201] * 6
    final = a.manifest_digest("scale/race", "latest")
    assert final == b.manifest_digest("scale/race", "latest")
    assert final in {image.digest for image in images}


def test_blob_get_redirects_to_a_presigned_url(
    shared: SharedState, replicas: tuple[Dockyard, Dockyard], tmp_path: Path
) -> None:
    require("skopeo")
    a, _ = replicas
    image = make_image(seed=30)
    push_image(a, "scale/redirect", image, "v1")
    c = start_replica(shared, tmp_path, "c", redirect=True)
    try:
        layer_digest = json.loads(image.manifest)["layers"][0]["digest"]
        r = c.request("GET", f"/v2/scale/redirect/blobs/{layer_digest}")
        assert r.status == 307
        location = r.headers["Location"]
        assert "X-Amz-Signature=" in location
        assert r.headers["Docker-Content-Digest"] == layer_digest
        # Anyone holding the URL gets the bytes from the store, not from Dockyard.
        host = location.split("/")[2]
        conn = http.client.HTTPConnection(host, timeout=30)
        conn.request("GET", location[location.index("/", 8) :])
        fetched = conn.getresponse().read()
        conn.close()
        assert digest_of(fetched) == layer_digest
        # A real client follows the redirect.
        skopeo_copy(f"docker://{c.host}/scale/redirect:v1", f"oci:{tmp_path / 'out'}:v1")
        assert OciLayout(tmp_path / "out").blob(layer_digest) == image.blobs[layer_digest]
        # HEAD is still answered by the replica.
        assert c.request("HEAD", f"/v2/scale/redirect/blobs/{layer_digest}").status == 200
    finally:
        assert c.stop() == 0
        assert not Dockyard.server_errors(c.log_since(0))


def test_streamed_blob_get_honours_range(replicas: tuple[Dockyard, Dockyard]) -> None:
    a, b = replicas
    data = random.Random(5).randbytes(3 * MiB + 7)
    digest = push_blob(a, "scale/range", data)
    r = b.request("GET", f"/v2/scale/range/blobs/{digest}", headers={"Range": "bytes=1000-2999999"})
    assert r.status == 206
    assert r.body == data[1000:3000000]
    started = time.monotonic()
    assert b.blob("scale/range", digest) == data
    assert time.monotonic() - started < 60
