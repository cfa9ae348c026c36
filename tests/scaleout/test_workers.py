"""Several worker processes (``dockyard serve --workers 2``) on one SQLite file.

Each worker writes on its own event loop while the database is free and queues on
SQLite's lock, on its writer thread, while the other worker holds it. Real clients
push at once through both workers; every image, blob and tag must land, and a tag
moved from both at once must keep an unbroken history.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.clients.commands import require
from tests.clients.server import Dockyard
from tests.scaleout.replicas import (
    OCI_MANIFEST,
    make_image,
    push_blob,
    skopeo_copy,
    write_layout,
)

IMAGES = 8
# Request ids start with a prefix of their worker process (20 hex digits).
_MANIFEST_PUT = re.compile(r'"PUT /v2/workers/\S+/manifests/\S+" 201 .* ([0-9a-f]{20})[0-9a-f]{12}')


@pytest.fixture
def server(tmp_path: Path) -> Dockyard:
    return Dockyard.start(tmp_path / "data", tmp_path / "serve.log", args=["--workers", "2"])


def test_concurrent_pushes_through_two_workers_land_whole(server: Dockyard, tmp_path: Path) -> None:
    require("skopeo")
    try:
        images = [make_image(seed=300 + i, layer_size=64 << 10) for i in range(IMAGES)]
        layouts = [write_layout(im, tmp_path / f"layout{i}", "v1") for i, im in enumerate(images)]

        def copy(i: int) -> None:
            skopeo_copy(layouts[i], f"docker://{server.host}/workers/app{i % 2}:t{i}")

        def move_shared_tag(i: int) -> int:
            image = images[i]
            for data in image.blobs.values():
                push_blob(server, "workers/shared", data)
            r = server.request(
                "PUT",
                "/v2/workers/shared/manifests/latest",
                headers={"Content-Type": OCI_MANIFEST},
                body=image.manifest,
            )
            return r.status

        with ThreadPoolExecutor(2 * IMAGES) as pool:
            copies = [pool.submit(copy, i) for i in range(IMAGES)]
            moves = [pool.submit(move_shared_tag, i) for i in range(IMAGES)]
            for done in copies:
                done.result()
            assert [m.result() for m in moves] == [201] * IMAGES

        for i, image in enumerate(images):
            served = server.manifest(f"workers/app{i % 2}", f"t{i}")
            assert served.digest == image.digest
            assert served.content == image.manifest
            for digest, data in image.blobs.items():
                assert server.blob(f"workers/app{i % 2}", digest) == data
                assert server.blob("workers/shared", digest) == data
        for n in (0, 1):
            tags = server.request("GET", f"/v2/workers/app{n}/tags/list").json()["tags"]
            assert sorted(tags) == sorted(f"t{i}" for i in range(n, IMAGES, 2))
        latest = server.manifest_digest("workers/shared", "latest")
        assert latest in {image.digest for image in images}

        # Both workers took writes.
        lines = server.wait_for_log(0, r"PUT /v2/workers/\S+/manifests/")
        workers = {m.group(1) for line in lines if (m := _MANIFEST_PUT.search(line))}
        assert len(lines) >= 2 * IMAGES
        assert len(workers) == 2, lines
    finally:
        assert server.stop() == 0
        errors = Dockyard.server_errors(server.log_since(0))
        assert not errors, "the server failed requests:\n" + "\n".join(errors)
