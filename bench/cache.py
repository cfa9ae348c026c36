"""Pull-through cache figures: a cold and a warm pull through Dockyard vs a direct pull.

    .venv/bin/python -m bench.cache [--size-mib 256]

Distribution (Debian's ``docker-registry``) holds a one-layer image of ``--size-mib``
random bytes; Dockyard caches it under ``dist/``. A pull is the manifest GET and the
layer GET, read to the end and hashed, as a client verifies it. Reported: the best of
three direct pulls, the one cold pull through the cache (fetch + tee + store), and the
best of three warm pulls from the cache, with the ratios to the direct pull (targets:
cold <= 1.2x, warm <= 1.0x). Ratios only: this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.servers import distribution_available, start_distribution, start_dockyard

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def _push(session: aiohttp.ClientSession, base: str, layer: bytes) -> None:
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    for blob in (config, layer):
        async with session.post(f"{base}/v2/bench/big/blobs/uploads/") as r:
            location = r.headers["Location"]
        sep = "&" if "?" in location else "?"
        async with session.put(f"{location}{sep}digest={_digest(blob)}", data=blob) as r:
            assert r.status == 201, await r.text()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _digest(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": _digest(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    async with session.put(
        f"{base}/v2/bench/big/manifests/v1", data=manifest, headers={"Content-Type": OCI_MANIFEST}
    ) as r:
        assert r.status == 201, await r.text()


async def _pull(session: aiohttp.ClientSession, base: str, repo: str) -> float:
    start = time.perf_counter()
    async with session.get(f"{base}/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST}) as r:
        doc = await r.json(content_type=None)
    layer = doc["layers"][0]
    hasher = hashlib.sha256()
    async with session.get(f"{base}/v2/{repo}/blobs/{layer['digest']}") as r:
        assert r.status == 200, await r.text()
        async for chunk in r.content.iter_chunked(1 << 20):
            hasher.update(chunk)
    assert "sha256:" + hasher.hexdigest() == layer["digest"]
    return time.perf_counter() - start


async def main(size_mib: int) -> None:
    if not distribution_available():
        raise SystemExit("docker-registry (Debian package) is not installed")
    work = Path(tempfile.mkdtemp(prefix="dockyard-cache-bench-"))
    upstream = await start_distribution(work / "distribution")
    os.environ["DOCKYARD_UPSTREAMS"] = json.dumps(
        [{"name": "dist", "url": upstream.url, "prefix": "dist/"}]
    )
    dockyard = await start_dockyard(work / "dockyard", 1)
    try:
        seed = random.Random(1).randbytes(1 << 20)
        layer = b"".join(bytes([i % 251]) + seed[1:] for i in range(size_mib))
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
            await _push(session, upstream.url, layer)
            await _pull(session, upstream.url, "bench/big")  # page cache warm-up
            direct = min([await _pull(session, upstream.url, "bench/big") for _ in range(3)])
            cold = await _pull(session, dockyard.url, "dist/bench/big")
            warm = min([await _pull(session, dockyard.url, "dist/bench/big") for _ in range(3)])
    finally:
        dockyard.stop()
        upstream.stop()
    print(f"layer: {size_mib} MiB")
    print(f"direct from Distribution: {direct:.3f} s")
    print(f"cold through the cache:   {cold:.3f} s  ratio {cold / direct:.2f} (target <= 1.2)")
    print(f"warm from the cache:      {warm:.3f} s  ratio {warm / direct:.2f} (target <= 1.0)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    asyncio.run(main(parser.parse_args().size_mib))
