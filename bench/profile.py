"""How big and how long each figure's workload is: full (the issue's numbers), quick, tiny."""

from __future__ import annotations

from dataclasses import dataclass, replace

MiB = 1 << 20
GiB = 1 << 30


@dataclass(frozen=True, slots=True)
class Profile:
    """Sizes, counts and durations of one benchmark run."""

    name: str
    rounds: int
    blob_size: int  # the pushed and pulled blob (issue: 256 MiB)
    chunk_size: int  # chunked push (issue: 8 MiB)
    pull_repeats: int  # sequential whole-blob pulls per round, 1 client
    pull_clients: int  # concurrent whole-blob pulls (issue: 8)
    range_size: int  # one Range read (issue: 1 MiB)
    range_seconds: float
    manifest_concurrency: int  # issue: 32
    manifest_seconds: float  # issue: 10 s
    small_images: int  # issue: 200
    small_concurrency: int  # issue: 8
    tags: int  # issue: 2,000
    tag_page: int  # issue: 100
    repositories: int  # issue: 500
    list_requests: int  # sequential requests per listing, for the latency median
    stream_size: int  # the RSS-while-streaming blob (issue: 2 GiB)
    limit_size: int  # bytes per machine-limit measurement
    idle_window: float  # seconds of /proc/stat sampled before each phase
    idle_patience: float  # how long to wait for the cores to calm down before a phase
    compare_clients: bool  # also run the Python client for manifests, to pick the faster tool


FULL = Profile(
    name="full",
    rounds=3,
    blob_size=256 * MiB,
    chunk_size=8 * MiB,
    pull_repeats=4,
    pull_clients=8,
    range_size=1 * MiB,
    range_seconds=3.0,
    manifest_concurrency=32,
    manifest_seconds=10.0,
    small_images=200,
    small_concurrency=8,
    tags=2000,
    tag_page=100,
    repositories=500,
    list_requests=100,
    stream_size=2 * GiB,
    limit_size=512 * MiB,
    idle_window=0.5,
    idle_patience=5.0,
    compare_clients=True,
)

# The quick and tiny profiles say only how they differ from the full one.
QUICK = replace(
    FULL,
    name="quick",
    blob_size=32 * MiB,
    pull_repeats=2,
    range_seconds=0.3,
    manifest_seconds=0.6,
    small_images=10,
    tags=100,
    repositories=25,
    list_requests=10,
    stream_size=128 * MiB,
    limit_size=64 * MiB,
    idle_window=0.1,
    idle_patience=0.0,
    compare_clients=False,
)

# For the smoke test: every phase runs, in seconds, proving the machinery and not the speed.
TINY = replace(
    QUICK,
    name="tiny",
    rounds=1,
    blob_size=2 * MiB,
    chunk_size=1 * MiB,
    pull_repeats=1,
    pull_clients=2,
    range_size=256 << 10,
    range_seconds=0.2,
    manifest_concurrency=4,
    manifest_seconds=0.3,
    small_images=4,
    small_concurrency=2,
    tags=12,
    tag_page=5,
    repositories=6,
    list_requests=3,
    stream_size=4 * MiB,
    limit_size=4 * MiB,
    idle_window=0.05,
)

PROFILES = {p.name: p for p in (FULL, QUICK, TINY)}


def with_rounds(profile: Profile, rounds: int | None) -> Profile:
    """``profile`` with its round count overridden when ``rounds`` is given."""
    return profile if rounds is None else replace(profile, rounds=rounds)
