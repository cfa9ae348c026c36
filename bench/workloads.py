"""The workload of issue 3, one phase at a time, against one registry.

A phase is an async function ``(Setup, RoundData) -> Outcome``: it runs the same requests
whichever registry it is given and returns the figures it measured (named as in
report.FIGURES) and the blob bytes it moved, from which the runner derives server CPU
seconds per GiB. Set-up that is not measured (the repository with 2,000 tags, the 500
repositories of the catalog, the manifest the load hits) is done once per registry by
:func:`prepare`.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from bench import loadgen, puller
from bench.client import ACCEPT, Registry, session, sha256, small_image
from bench.profile import Profile

MANIFEST_REPO = "bench/app"
TAGS_REPO = "bench/tags"
CATALOG_PREFIX = "bench/catalog-"
_SETUP_CONCURRENCY = 8


@dataclass(slots=True)
class Setup:
    """One registry under test and the choices shared by both registries in the run."""

    name: str
    registry: Registry
    profile: Profile
    tools: dict[str, str] = field(default_factory=lambda: {"HEAD": "asyncio", "GET": "asyncio"})


@dataclass(frozen=True, slots=True)
class RoundData:
    """This round's blobs, pushed to both registries: unique per round, same for both."""

    number: int
    blob: bytes
    blob_digest: str
    chunked_blob: bytes
    chunked_digest: str

    @classmethod
    def make(cls, number: int, size: int) -> RoundData:
        """Two ``size``-byte blobs, unique per round: a random block repeated, headed by
        the round and a nonce (so no registry can skip the bytes as already stored)."""
        block = os.urandom(4 << 20)
        blobs = []
        for kind in ("mono", "chunked"):
            head = f"round {number} {kind} {os.urandom(8).hex()}\n".encode()
            body = (block * (size // len(block) + 1))[: size - len(head)]
            blobs.append(head + body)
        return cls(number, blobs[0], sha256(blobs[0]), blobs[1], sha256(blobs[1]))


@dataclass(slots=True)
class Outcome:
    """What a phase measured: figures by name, and blob bytes pushed or pulled."""

    figures: dict[str, float]
    pushed: int = 0
    pulled: int = 0
    notes: dict[str, object] = field(default_factory=dict)


def _mb_s(size: int, seconds: float) -> float:
    return size / seconds / 1e6


async def _slots(count: int, concurrency: int, job: Callable[[int], Awaitable[None]]) -> None:
    """Run ``job(i)`` for every i < count, ``concurrency`` at a time: slot k runs jobs
    k, k + concurrency, ... in turn, so a slot's session is never shared."""

    async def slot(k: int) -> None:
        for i in range(k, count, concurrency):
            await job(i)

    await asyncio.gather(*(slot(k) for k in range(concurrency)))


async def prepare(setup: Setup) -> None:
    """Unmeasured set-up: the manifest under load, 2,000 tags, 500 repositories."""
    reg, p = setup.registry, setup.profile
    config, layer, manifest = small_image("bench-base")
    async with session() as s:
        for blob in (config, layer):
            await reg.push_blob(s, MANIFEST_REPO, blob, sha256(blob))
        await reg.put_manifest(s, MANIFEST_REPO, "latest", manifest)
        for blob in (config, layer):
            await reg.mount_blob(s, TAGS_REPO, sha256(blob), MANIFEST_REPO)

    sessions = [session() for _ in range(_SETUP_CONCURRENCY)]
    try:
        # Job i runs in slot i % 8, so each session serves one slot only.
        async def tag(i: int) -> None:
            s = sessions[i % len(sessions)]
            await reg.put_manifest(s, TAGS_REPO, f"v{i:05d}", manifest)

        async def repository(i: int) -> None:
            s, repo = sessions[i % len(sessions)], f"{CATALOG_PREFIX}{i:04d}"
            for blob in (config, layer):
                await reg.mount_blob(s, repo, sha256(blob), MANIFEST_REPO)
            await reg.put_manifest(s, repo, "latest", manifest)

        await _slots(p.tags, _SETUP_CONCURRENCY, tag)
        await _slots(p.repositories, _SETUP_CONCURRENCY, repository)
    finally:
        for s in sessions:
            await s.close()


async def push_mono(setup: Setup, data: RoundData) -> Outcome:
    """One blob, monolithic (``POST`` + ``PUT`` with the body)."""
    async with session() as s:
        start = time.perf_counter()
        await setup.registry.push_blob(s, "bench/push", data.blob, data.blob_digest)
        seconds = time.perf_counter() - start
    return Outcome({"push_mono_mb_s": _mb_s(len(data.blob), seconds)}, pushed=len(data.blob))


async def push_chunked(setup: Setup, data: RoundData) -> Outcome:
    """One blob in ``chunk_size`` PATCHes."""
    blob, chunk = data.chunked_blob, setup.profile.chunk_size
    async with session() as s:
        start = time.perf_counter()
        await setup.registry.push_blob_chunked(s, "bench/push", blob, data.chunked_digest, chunk)
        seconds = time.perf_counter() - start
    return Outcome({"push_chunked_mb_s": _mb_s(len(blob), seconds)}, pushed=len(blob))


async def pull_one(setup: Setup, data: RoundData) -> Outcome:
    """The round's blob, whole, ``pull_repeats`` times in a row by one client."""
    repeats = setup.profile.pull_repeats
    url = f"{setup.registry.url}/v2/bench/push/blobs/{data.blob_digest}"
    result = await asyncio.to_thread(puller.pull, url, 1, repeats)
    _check_size(result.received, len(data.blob) * repeats, url)
    return Outcome({"pull_1_mb_s": _mb_s(result.received, result.seconds)}, pulled=result.received)


async def pull_many(setup: Setup, data: RoundData) -> Outcome:
    """The round's blob, whole, by ``pull_clients`` clients at once (aggregate MB/s)."""
    clients = setup.profile.pull_clients
    url = f"{setup.registry.url}/v2/bench/push/blobs/{data.blob_digest}"
    result = await asyncio.to_thread(puller.pull, url, clients)
    _check_size(result.received, len(data.blob) * clients, url)
    return Outcome({"pull_8_mb_s": _mb_s(result.received, result.seconds)}, pulled=result.received)


def _check_size(got: int, expected: int, path: str) -> None:
    if got != expected:
        raise RuntimeError(f"GET {path}: {got} bytes, expected {expected}")


async def range_reads(setup: Setup, data: RoundData) -> Outcome:
    """``range_size`` Range reads at random aligned offsets, one client, for a while."""
    p = setup.profile
    path = f"/v2/bench/push/blobs/{data.blob_digest}"
    slots = max(len(data.blob) // p.range_size, 1)
    rng = random.Random(data.number)
    requests = 0
    async with session() as s:
        start = time.perf_counter()
        deadline = start + p.range_seconds
        while time.perf_counter() < deadline:
            offset = rng.randrange(slots) * p.range_size
            headers = {"Range": f"bytes={offset}-{offset + p.range_size - 1}"}
            got = await setup.registry.pull(s, path, headers)
            _check_size(got, min(p.range_size, len(data.blob) - offset), path)
            requests += 1
        seconds = time.perf_counter() - start
    return Outcome({"range_rps": requests / seconds})


async def _manifest_load(setup: Setup, method: str) -> Outcome:
    p, tool = setup.profile, setup.tools[method]
    url = f"{setup.registry.url}/v2/{MANIFEST_REPO}/manifests/latest"
    result = await loadgen.LOADERS[tool](
        url, method, {"Accept": ACCEPT}, p.manifest_concurrency, p.manifest_seconds
    )
    if result.errors:
        raise RuntimeError(f"{method} {url}: {result.errors} errors under load ({tool})")
    key = method.lower()
    return Outcome(
        {f"{key}_rps": result.rps, f"{key}_p50_ms": result.p50_ms, f"{key}_p99_ms": result.p99_ms},
        notes={"tool": tool},
    )


async def manifest_head(setup: Setup, _data: RoundData) -> Outcome:
    """``HEAD`` of a manifest by tag at ``manifest_concurrency`` for ``manifest_seconds``."""
    return await _manifest_load(setup, "HEAD")


async def manifest_get(setup: Setup, _data: RoundData) -> Outcome:
    """``GET`` of a manifest by tag at ``manifest_concurrency`` for ``manifest_seconds``."""
    return await _manifest_load(setup, "GET")


async def _small_pushes(setup: Setup, data: RoundData, concurrency: int) -> tuple[int, float]:
    count = setup.profile.small_images
    repo = f"bench/small-{data.number}-c{concurrency}"
    images = [small_image(f"{repo}:{i}") for i in range(count)]
    sessions = [session() for _ in range(concurrency)]
    try:

        async def push(i: int) -> None:
            s = sessions[i % concurrency]
            config, layer, manifest = images[i]
            await setup.registry.push_blob(s, repo, config, sha256(config))
            await setup.registry.push_blob(s, repo, layer, sha256(layer))
            await setup.registry.put_manifest(s, repo, f"t{i}", manifest)

        start = time.perf_counter()
        await _slots(count, concurrency, push)
        return count, time.perf_counter() - start
    finally:
        for s in sessions:
            await s.close()


async def small_sequential(setup: Setup, data: RoundData) -> Outcome:
    """``small_images`` images (2 small unique blobs + manifest + tag), one after another."""
    count, seconds = await _small_pushes(setup, data, 1)
    return Outcome({"small_seq_ips": count / seconds})


async def small_concurrent(setup: Setup, data: RoundData) -> Outcome:
    """The same, ``small_concurrency`` images at a time."""
    count, seconds = await _small_pushes(setup, data, setup.profile.small_concurrency)
    return Outcome({"small_c8_ips": count / seconds})


async def _latency_ms(setup: Setup, path: str) -> float:
    """Median latency of ``list_requests`` sequential GETs of ``path``, in ms."""
    times = []
    async with session() as s:
        await setup.registry.get_json(s, path)  # warm the connection
        for _ in range(setup.profile.list_requests):
            start = time.perf_counter()
            await setup.registry.get_json(s, path)
            times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2] * 1000


async def _walk_ms(setup: Setup, first: str) -> tuple[float, int, int]:
    """Follow ``Link`` from ``first`` to the end: (ms, pages, entries)."""
    pages = entries = 0
    async with session() as s:
        start = time.perf_counter()
        path: str | None = first
        while path is not None:
            doc, path = await setup.registry.get_json(s, path)
            assert isinstance(doc, dict)
            entries += len(doc.get("tags") or doc.get("repositories") or [])
            pages += 1
        return (time.perf_counter() - start) * 1000, pages, entries


async def listings(setup: Setup, _data: RoundData) -> Outcome:
    """Tag list of the 2,000-tag repository (whole, one page, the walk); the catalog."""
    n = setup.profile.tag_page
    tags = f"/v2/{TAGS_REPO}/tags/list"
    walk_ms, pages, entries = await _walk_ms(setup, f"{tags}?n={n}")
    figures = {
        "tags_whole_ms": await _latency_ms(setup, tags),
        "tags_page_ms": await _latency_ms(setup, f"{tags}?n={n}"),
        "tags_walk_ms": walk_ms,
        "catalog_whole_ms": await _latency_ms(setup, "/v2/_catalog"),
        "catalog_page_ms": await _latency_ms(setup, f"/v2/_catalog?n={n}"),
    }
    return Outcome(figures, notes={"tag_walk_pages": pages, "tag_walk_entries": entries})


async def stream_body(block: bytes, size: int) -> AsyncIterator[bytes]:
    """``size`` bytes of ``block`` repeated, produced as sent (never whole in memory)."""
    sent = 0
    while sent < size:
        piece = block[: size - sent]
        sent += len(piece)
        yield piece


def stream_digest(block: bytes, size: int) -> str:
    """The digest of what :func:`stream_body` sends."""
    h = hashlib.sha256()
    sent = 0
    while sent < size:
        piece = block[: size - sent]
        h.update(piece)
        sent += len(piece)
    return "sha256:" + h.hexdigest()


Phase = Callable[[Setup, RoundData], Awaitable[Outcome]]

# The phases that write a blob-sized file on the server: the page cache is primed
# before them (machine.prime_page_cache).
WRITING_PHASES = frozenset({"push_mono", "push_chunked"})

# (name, function, whether RSS "under load" is sampled during it)
PHASES: list[tuple[str, Phase, bool]] = [
    ("push_mono", push_mono, False),
    ("push_chunked", push_chunked, False),
    ("pull_1", pull_one, False),
    ("pull_8", pull_many, True),
    ("range", range_reads, False),
    ("manifest_head", manifest_head, True),
    ("manifest_get", manifest_get, True),
    ("small_seq", small_sequential, False),
    ("small_c8", small_concurrent, True),
    ("listings", listings, False),
]
