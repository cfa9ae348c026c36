"""Pull-through cache figures: cold and warm pulls through Dockyard vs direct pulls.

    .venv/bin/python -m bench.cache [--size-mib 256] [--rounds 3]

Distribution (Debian's ``docker-registry``) holds one-layer images of ``--size-mib``
random bytes, a fresh image per round and client; Dockyard caches them under ``dist/``.
Each round pulls its image directly from Distribution, then cold through the cache
(fetch, spool, serve, store), then warm from the cache, with two clients:

- ``aiohttp``: the manifest GET and the layer GET, read to the end and hashed with
  hashlib as it arrives. The lightest client there is: on this 2-core machine it keeps
  one core busy, so the cache's own work shows in full.
- ``skopeo``: ``skopeo copy docker://... dir:...``, what a node does: every blob
  fetched, verified and written to disk.

Prints each client's median ratios to the direct pull (targets: cold <= 1.2x, warm
<= 1.0x) with the spread over rounds, and the server CPU seconds of each cold pull.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

import aiohttp

from bench.procstat import cpu_seconds
from bench.servers import Server, distribution_available, start_distribution, start_dockyard

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"

Pull = Callable[[str, str], Awaitable[float]]


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def _push(session: aiohttp.ClientSession, base: str, repo: str, layer: bytes) -> None:
    config = json.dumps({"architecture": "amd64", "os": "linux", "repo": repo}).encode()
    for blob in (config, layer):
        async with session.post(f"{base}/v2/{repo}/blobs/uploads/") as r:
            location = urljoin(f"{base}/", r.headers["Location"])
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
        f"{base}/v2/{repo}/manifests/v1", data=manifest, headers={"Content-Type": OCI_MANIFEST}
    ) as r:
        assert r.status == 201, await r.text()


def aiohttp_puller(session: aiohttp.ClientSession) -> Pull:
    async def pull(base: str, repo: str) -> float:
        start = time.perf_counter()
        async with session.get(
            f"{base}/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST}
        ) as r:
            assert r.status == 200, await r.text()
            doc = await r.json(content_type=None)
        layer = doc["layers"][0]
        hasher = hashlib.sha256()
        async with session.get(f"{base}/v2/{repo}/blobs/{layer['digest']}") as r:
            assert r.status == 200, await r.text()
            async for chunk in r.content.iter_chunked(1 << 20):
                hasher.update(chunk)
        assert "sha256:" + hasher.hexdigest() == layer["digest"]
        return time.perf_counter() - start

    return pull


def skopeo_puller(scratch: Path) -> Pull:
    async def pull(base: str, repo: str) -> float:
        target = scratch / "image"
        await asyncio.to_thread(shutil.rmtree, target, ignore_errors=True)
        host = base.removeprefix("http://")
        start = time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            "skopeo",
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            f"docker://{host}/{repo}:v1",
            f"dir:{target}",
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await process.communicate()
        elapsed = time.perf_counter() - start
        assert process.returncode == 0, stderr.decode()
        return elapsed

    return pull


@dataclass(slots=True)
class Rounds:
    """One client's figures: ratios to the direct pull, and server CPU per cold pull."""

    client: str
    cold: list[float] = field(default_factory=list)
    warm: list[float] = field(default_factory=list)
    cold_server_cpu: list[float] = field(default_factory=list)


async def _rounds(
    name: str, pull: Pull, upstream: Server, dockyard: Server, repos: list[str]
) -> Rounds:
    rounds = Rounds(name)
    for repo in repos:
        await pull(upstream.url, repo)  # the upstream's page cache and connections warm
        direct = min([await pull(upstream.url, repo) for _ in range(2)])
        before = cpu_seconds(dockyard.pid)
        rounds.cold.append(await pull(dockyard.url, f"dist/{repo}") / direct)
        rounds.cold_server_cpu.append(cpu_seconds(dockyard.pid) - before)
        await asyncio.sleep(1.0)  # the spool file moves into the store meanwhile
        warm = min([await pull(dockyard.url, f"dist/{repo}") for _ in range(2)])
        rounds.warm.append(warm / direct)
    return rounds


def _line(values: list[float]) -> str:
    median = statistics.median(values)
    spread = (max(values) - min(values)) / 2 / median * 100
    return f"{median:.2f}x (±{spread:.0f}%)"


async def main(size_mib: int, rounds: int) -> None:
    if not distribution_available():
        raise SystemExit("docker-registry (Debian package) is not installed")
    work = Path(tempfile.mkdtemp(prefix="dockyard-cache-bench-"))
    upstream = await start_distribution(work / "distribution")
    os.environ["DOCKYARD_UPSTREAMS"] = json.dumps(
        [{"name": "dist", "url": upstream.url, "prefix": "dist/"}]
    )
    dockyard = await start_dockyard(work / "dockyard", 1)
    results = []
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
            clients = [("aiohttp", aiohttp_puller(session))]
            if shutil.which("skopeo"):
                clients.append(("skopeo", skopeo_puller(work)))
            for name, pull in clients:
                repos = [f"bench/{name}{i}" for i in range(rounds)]
                for repo in repos:
                    seed = random.Random(repo).randbytes(1 << 20)  # unique per image
                    layer = b"".join(bytes([i % 251]) + seed[1:] for i in range(size_mib))
                    await _push(session, upstream.url, repo, layer)
                results.append(await _rounds(name, pull, upstream, dockyard, repos))
    finally:
        dockyard.stop()
        upstream.stop()
        await asyncio.to_thread(shutil.rmtree, work, ignore_errors=True)
    print(f"layer: {size_mib} MiB, {rounds} rounds; ratios to the direct pull, median (spread)")
    for result in results:
        print(
            f"{result.client:8} cold {_line(result.cold)} (target <= 1.2)  "
            f"warm {_line(result.warm)} (target <= 1.0)  "
            f"server CPU per cold pull {statistics.median(result.cold_server_cpu):.2f} s"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.size_mib, args.rounds))
