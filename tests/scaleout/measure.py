"""Figures for scale-out, embedded vs PostgreSQL+S3 (moto), in one run (not a test).

    .venv/bin/python -m tests.scaleout.measure [--size-mib 256]

Starts a PostgreSQL cluster and moto (in a child process, so it does not share this
process's GIL), then for each stack a ``dockyard serve`` (two for the replica-switch
figure) and measures: a monolithic push and a pull of one blob, a chunked push kept on
one replica (running hash) vs alternating between two (one re-read at commit), and the
manifest GET rate of 32 concurrent clients. Machines here are shared: read the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from tests.clients.server import Dockyard
from tests.scaleout.replicas import OCI_MANIFEST, SharedState, make_image, start_replica
from tests.services import BUCKET, TEMPLATE, PostgresCluster

MiB = 1 << 20
_MOTO = (
    "import sys; from moto.server import ThreadedMotoServer; "
    "s = ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False); s.start(); "
    "print(s.get_host_and_port()[1], flush=True); sys.stdin.read()"
)


async def _body(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), MiB):
        yield data[i : i + MiB]


async def push_pull(session: aiohttp.ClientSession, base: str, data: bytes) -> tuple[float, float]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    started = time.perf_counter()
    async with session.post(f"{base}/v2/bench/blob/blobs/uploads/") as r:
        location = r.headers["Location"]
    async with session.patch(f"{base}{location}", data=_body(data)) as r:
        assert r.status == 202, await r.text()
        location = r.headers["Location"]
    async with session.put(f"{base}{location}?digest={digest}") as r:
        assert r.status == 201, await r.text()
    push = time.perf_counter() - started
    started = time.perf_counter()
    h = hashlib.sha256()
    async with session.get(f"{base}/v2/bench/blob/blobs/{digest}") as r:
        async for chunk in r.content.iter_chunked(MiB):
            h.update(chunk)
    assert "sha256:" + h.hexdigest() == digest
    return push, time.perf_counter() - started


async def chunked(session: aiohttp.ClientSession, bases: list[str], data: bytes) -> float:
    """Push ``data`` in 8 MiB PATCHes round-robin over ``bases``; the commit's seconds."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    async with session.post(f"{bases[0]}/v2/bench/chunked/blobs/uploads/") as r:
        location = r.headers["Location"]
    step = 8 * MiB
    for n, offset in enumerate(range(0, len(data), step)):
        chunk = data[offset : offset + step]
        headers = {"Content-Range": f"{offset}-{offset + len(chunk) - 1}"}
        base = bases[n % len(bases)]
        async with session.patch(f"{base}{location}", data=chunk, headers=headers) as r:
            assert r.status == 202, await r.text()
            location = r.headers["Location"]
    started = time.perf_counter()
    async with session.put(f"{bases[-1]}{location}?digest={digest}") as r:
        assert r.status == 201, await r.text()
    return time.perf_counter() - started


async def manifest_rate(session: aiohttp.ClientSession, base: str, seconds: float = 5.0) -> float:
    image = make_image(seed=1, layer_size=1024)
    for blob in image.blobs.values():
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        await session.post(f"{base}/v2/bench/m/blobs/uploads/?digest={digest}", data=blob)
    headers = {"Content-Type": OCI_MANIFEST}
    async with session.put(f"{base}/v2/bench/m/manifests/v1", data=image.manifest, headers=headers):
        pass
    count = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal count
        while time.perf_counter() < deadline:
            async with session.get(
                f"{base}/v2/bench/m/manifests/v1", headers={"Accept": OCI_MANIFEST}
            ) as r:
                await r.read()
                assert r.status == 200
            count += 1

    await asyncio.gather(*(client() for _ in range(32)))
    return count / seconds


async def measure(label: str, replicas: list[Dockyard], size: int) -> None:
    data = os.urandom(size)
    bases = [f"http://{r.host}" for r in replicas]
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:
        push, pull = await push_pull(session, bases[0], data)
        chunk_data = data[: min(size, 64 * MiB)]
        one = await chunked(session, bases[:1], chunk_data)
        two = await chunked(session, bases, chunk_data[::-1]) if len(bases) > 1 else None
        rate = await manifest_rate(session, bases[0])
    mib = size / MiB
    print(f"{label}: push {mib / push:.0f} MiB/s ({push:.1f}s), pull {mib / pull:.0f} MiB/s")
    print(
        f"{label}: commit of a {len(chunk_data) // MiB} MiB chunked upload: one replica "
        f"{one:.2f}s" + (f", alternating replicas {two:.2f}s" if two is not None else "")
    )
    print(f"{label}: manifest GET {rate:.0f} req/s (32 clients, one replica)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=256)
    size = parser.parse_args().size_mib * MiB
    work = Path(tempfile.mkdtemp(prefix="dockyard-measure-"))
    cluster = PostgresCluster(Path(tempfile.mkdtemp(prefix="dockyard-pg-")))
    cluster.start()
    moto = subprocess.Popen(
        [sys.executable, "-c", _MOTO], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert moto.stdout is not None
    endpoint = f"http://127.0.0.1:{int(moto.stdout.readline())}"
    subprocess.run(["curl", "-sfX", "PUT", f"{endpoint}/{BUCKET}"], check=True)
    cluster.sql(f"CREATE DATABASE {TEMPLATE}")
    url = cluster.url(TEMPLATE)
    dockyard = str(Path(sys.executable).with_name("dockyard"))
    env = {**os.environ, "DOCKYARD_METADATA__URL": url}
    subprocess.run([dockyard, "migrate"], env=env, check=True, capture_output=True)
    started: list[Dockyard] = []
    try:
        embedded = Dockyard.start(work / "embedded", work / "embedded.log")
        started.append(embedded)
        asyncio.run(measure("embedded (filesystem + SQLite)", [embedded], size))
        shared = SharedState(
            url,
            {"kind": "s3", "bucket": BUCKET, "prefix": "measure", "endpoint": endpoint,
             "path_style": True, "region": "us-east-1", "access_key_id": "testing",
             "secret_access_key": "testing"},
        )  # fmt: skip
        a = start_replica(shared, work, "a")
        started.append(a)
        b = start_replica(shared, work, "b")
        started.append(b)
        asyncio.run(measure("PostgreSQL + S3 (moto)", [a, b], size))
    finally:
        for server in started:
            server.stop()
        moto.kill()
        cluster.stop()


if __name__ == "__main__":
    main()
