"""GC in a loop while clients push: never a manifest pointing at a deleted blob.

The GC here has no grace period at all, so every blob is collectable from the moment it
is uploaded until a manifest references it: the worst case for a push. A push may then
fail (MANIFEST_BLOB_UNKNOWN, or an upload the sweep overtook) and the client retries, as
real clients do; what must never happen is a stored manifest whose blobs are gone.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass, field

from dockyard.gc import collect_garbage
from tests.gc.conftest import core
from tests.helpers import OCI_MANIFEST, Client, image_manifest, sha256

PUSHERS = 4
ATTEMPTS = 200
IMAGES_PER_PUSHER = 5
MAX_IMAGES_PER_PUSHER = 50
GC_RUNS = 5
# Layers every pusher uses: their links come and go in many repositories at once.
SHARED = [f"shared base layer {i}".encode() * 50 for i in range(3)]


@dataclass
class Tally:
    pushed: dict[tuple[str, str], bytes] = field(default_factory=dict)
    retries: int = 0
    mounts: int = 0
    gc_runs: int = 0
    gc_deleted: int = 0
    # Set by every manifest PUT: the collector paces itself on the pushers' progress.
    progress: asyncio.Event = field(default_factory=asyncio.Event)


async def _upload(client: Client, repo: str, data: bytes, tally: Tally) -> bool:
    """Mount from another repository or upload; False when the sweep overtook it."""
    digest = sha256(data)
    source = f"race/p{random.randrange(PUSHERS)}"
    async with client.post(f"/v2/{repo}/blobs/uploads/?mount={digest}&from={source}") as r:
        body = await r.read()
        if r.status == 201:
            tally.mounts += 1
            return True
        assert r.status == 202, body
        location = r.headers["Location"]
    sep = "&" if "?" in location else "?"
    async with client.put(f"{location}{sep}digest={digest}", data=data) as r:
        body = await r.read()
        if r.status == 400 and b"BLOB_UPLOAD_INVALID" in body:
            return False  # the sweep deleted the bytes as they were published
        assert r.status == 201, body
    return True


async def _push(client: Client, repo: str, tag: str, tally: Tally) -> None:
    config = json.dumps({"architecture": "amd64", "os": "linux", "tag": tag}).encode()
    layers = [random.choice(SHARED), f"{repo}:{tag} own layer".encode() * 20]
    manifest = image_manifest(config, layers)
    for _attempt in range(ATTEMPTS):
        ok = True
        for blob in (config, *layers):
            ok = ok and await _upload(client, repo, blob, tally)
        # A blob nobody will reference: work for the sweep while the push goes on.
        await _upload(client, repo, f"orphan {repo}:{tag} {_attempt}".encode(), tally)
        if not ok:
            tally.retries += 1
            continue
        headers = {"Content-Type": OCI_MANIFEST}
        async with client.put(f"/v2/{repo}/manifests/{tag}", data=manifest, headers=headers) as r:
            body = await r.read()
            tally.progress.set()
            if r.status == 201:
                tally.pushed[(repo, tag)] = manifest
                return
            assert r.status == 404, body
            assert b"MANIFEST_BLOB_UNKNOWN" in body, body
            tally.retries += 1
    raise AssertionError(f"{repo}:{tag} could not be pushed in {ATTEMPTS} attempts")


async def _pusher(client: Client, n: int, tally: Tally) -> None:
    # At least IMAGES_PER_PUSHER, and on until the collectors have run GC_RUNS times:
    # however fast pushes are, collections overlap them throughout.
    i = 0
    while i < IMAGES_PER_PUSHER or (tally.gc_runs < GC_RUNS and i < MAX_IMAGES_PER_PUSHER):
        await _push(client, f"race/p{n}", f"t{i}", tally)
        i += 1


async def _collector(client: Client, stop: asyncio.Event, tally: Tally) -> None:
    while not stop.is_set():
        report = await collect_garbage(core(client), grace=0, upload_expiry=86400)
        tally.gc_runs += 1
        tally.gc_deleted += len(report.deleted_blobs)
        # Run again once some manifest PUT has landed: pushes overlap every run, yet
        # a run cannot follow a run so closely that no push ever completes.
        tally.progress.clear()
        waiter = asyncio.ensure_future(tally.progress.wait())
        await asyncio.wait(
            {waiter, asyncio.ensure_future(stop.wait())}, return_when="FIRST_COMPLETED"
        )


async def test_gc_in_a_loop_while_clients_push_never_loses_a_referenced_blob(
    registry: Client,
) -> None:
    tally = Tally()
    stop = asyncio.Event()
    collectors = [asyncio.create_task(_collector(registry, stop, tally)) for _ in range(2)]
    try:
        await asyncio.gather(*(_pusher(registry, n, tally) for n in range(PUSHERS)))
    finally:
        stop.set()
        await asyncio.gather(*collectors)
    await collect_garbage(core(registry), grace=0, upload_expiry=86400)
    # The race was real: GC ran throughout and deleted blobs while pushes went on.
    print(f"gc runs {tally.gc_runs}, blobs deleted {tally.gc_deleted}, push retries "
          f"{tally.retries}, mounts {tally.mounts}")  # fmt: skip
    assert tally.gc_runs >= GC_RUNS, tally
    assert tally.gc_deleted > 0, tally
    assert len(tally.pushed) >= PUSHERS * IMAGES_PER_PUSHER
    for (repo, tag), manifest in sorted(tally.pushed.items()):
        async with registry.get(
            f"/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST}
        ) as r:
            assert r.status == 200
            served = await r.read()
        assert served == manifest
        doc = json.loads(served)
        for entry in (doc["config"], *doc["layers"]):
            async with registry.get(f"/v2/{repo}/blobs/{entry['digest']}") as r:
                assert r.status == 200, f"{repo}:{tag} lost {entry['digest']}"
                data = await r.read()
            assert sha256(data) == entry["digest"]
            assert len(data) == entry["size"]
