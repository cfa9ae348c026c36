"""One benchmark run: limits, servers, set-up, alternating rounds, streaming, results.

Rounds alternate the order of the registries (A then B, then B then A, ...), phase by
phase, so that slow drifts of this shared machine fall on both. Before each phase the
cores are sampled and the run waits (a bounded while) for them to be quiet; every check
is kept in the result.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import aiohttp

from bench import loadgen, machine, procstat, puller, report, servers, workloads
from bench.client import ACCEPT, Registry, session
from bench.profile import GiB, MiB, Profile
from bench.stats import summarize

SERVERS = ("dockyard", "distribution")


def client_cpu() -> float:
    """CPU seconds of this process and its finished children (wrk), user + system."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class _Run:
    def __init__(self, profile: Profile, workdir: Path, idle: procstat.IdleLog) -> None:
        self.profile = profile
        self.workdir = workdir
        self.idle = idle
        self.values: dict[str, dict[str, list[float]]] = {}
        self.phases: dict[str, list[dict[str, Any]]] = {}

    def add(self, server: str, key: str, value: float) -> None:
        self.values.setdefault(server, {}).setdefault(key, []).append(value)

    async def quiet(self, what: str) -> None:
        p = self.profile
        await asyncio.to_thread(self.idle.wait_quiet, what, p.idle_window, p.idle_patience)

    async def prime(self, size: int) -> None:
        """Before a push of ``size`` bytes: write out what earlier phases left dirty
        (:func:`machine.settle_disk`), then free just-used memory for the push: four
        times as much for a blob-sized push (less left the allocator handing out cold
        pages in some rounds here), a quarter more for the 2 GiB stream."""
        await asyncio.to_thread(machine.settle_disk)
        amount = 4 * size if size <= self.profile.blob_size else size + size // 4
        await asyncio.to_thread(machine.prime_page_cache, self.workdir, amount)

    async def measure(
        self,
        server: servers.Server,
        setup: workloads.Setup,
        name: str,
        phase: workloads.Phase,
        data: workloads.RoundData,
        sample_rss: bool,
    ) -> tuple[workloads.Outcome, dict[str, Any]]:
        await self.quiet(f"round {data.number} {name} {server.name}")
        if name in workloads.WRITING_PHASES:
            await self.prime(self.profile.blob_size)
        client0, server0 = client_cpu(), procstat.cpu_seconds(server.pid)
        start = time.perf_counter()
        sampler = procstat.RssSampler(server.pid) if sample_rss else None
        with sampler or contextlib.nullcontext():
            outcome = await phase(setup, data)
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} died during {name}; see {server.log_path}")
        record: dict[str, Any] = {
            "round": data.number,
            "phase": name,
            "wall_s": round(time.perf_counter() - start, 4),
            "client_cpu_s": round(client_cpu() - client0, 4),
            "server_cpu_s": round(procstat.cpu_seconds(server.pid) - server0, 4),
            "pushed": outcome.pushed,
            "pulled": outcome.pulled,
            **outcome.notes,
        }
        if sampler is not None:
            record["rss_max_process"] = sampler.peak.max_process
            record["rss_max_total"] = sampler.peak.max_total
        self.phases.setdefault(server.name, []).append(record)
        return outcome, record


async def _choose_tools(run: _Run, setups: list[workloads.Setup]) -> list[dict[str, Any]]:
    """Drive each manifest method with every load generator and keep, for the run, the
    one that costs the client least CPU per request, unless another gets over 10% more
    requests through (summed over the registries): on 2 cores, a client's CPU is taken
    from the server, so a dearer client must earn its place with a clear win."""
    p = run.profile
    seconds = min(p.manifest_seconds, 3.0)
    probes = []
    for method in ("HEAD", "GET"):
        rps: dict[str, float] = {}
        cpu: dict[str, float] = {}
        for tool in loadgen.tools_for(method):
            for setup in setups:
                await run.quiet(f"probe {method} {tool} {setup.name}")
                url = f"{setup.registry.url}/v2/{workloads.MANIFEST_REPO}/manifests/latest"
                cpu0 = client_cpu()
                result = await loadgen.LOADERS[tool](
                    url, method, {"Accept": ACCEPT}, p.manifest_concurrency, seconds
                )
                used = client_cpu() - cpu0
                rps[tool] = rps.get(tool, 0.0) + result.rps
                cpu[tool] = cpu.get(tool, 0.0) + used / max(result.requests, 1)
                probes.append(
                    {
                        "method": method,
                        "tool": tool,
                        "server": setup.name,
                        "rps": round(result.rps, 1),
                        "p99_ms": round(result.p99_ms, 2),
                        "client_cpu_share": round(used / result.seconds, 3),
                    }
                )
        cheapest = min(cpu, key=lambda t: cpu[t])
        fastest = max(rps, key=lambda t: rps[t])
        best = fastest if rps[fastest] > 1.1 * rps[cheapest] else cheapest
        for setup in setups:
            setup.tools[method] = best
    return probes


async def _stream(run: _Run, server: servers.Server, setup: workloads.Setup) -> None:
    """Push a ``stream_size`` blob produced on the fly, then pull it, sampling RSS."""
    size = run.profile.stream_size
    block = os.urandom(4 * MiB)
    digest = await asyncio.to_thread(workloads.stream_digest, block, size)
    reg = setup.registry
    await run.quiet(f"stream push {server.name}")
    await run.prime(size)
    async with session() as s:
        start = time.perf_counter()
        with procstat.RssSampler(server.pid) as push_rss:
            await reg.push_blob_stream(
                s, "bench/stream", workloads.stream_body(block, size), size, digest
            )
        seconds = time.perf_counter() - start
    await run.quiet(f"stream pull {server.name}")
    with procstat.RssSampler(server.pid) as pull_rss:
        url = f"{reg.url}/v2/bench/stream/blobs/{digest}"
        pulled = (await asyncio.to_thread(puller.pull, url, 1)).received
    if pulled != size:
        raise RuntimeError(f"{server.name}: streamed pull gave {pulled} of {size} bytes")
    run.add(server.name, "stream_push_mb_s", size / seconds / 1e6)
    for key, peak in (("push", push_rss.peak), ("pull", pull_rss.peak)):
        run.add(
            server.name, f"rss_{key}_stream_delta_mib", (peak.max_total - peak.first_total) / MiB
        )


def _derive(run: _Run, name: str) -> None:
    """Per round: server CPU per GiB pushed and pulled, RSS under load."""
    by_round: dict[int, list[dict[str, Any]]] = {}
    for record in run.phases.get(name, []):
        by_round.setdefault(record["round"], []).append(record)
    for records in by_round.values():
        for direction, key in (("pushed", "cpu_push_s_per_gib"), ("pulled", "cpu_pull_s_per_gib")):
            moved = [r for r in records if r[direction]]
            if moved:
                cpu = sum(r["server_cpu_s"] for r in moved)
                run.add(name, key, cpu / (sum(r[direction] for r in moved) / GiB))
        loaded = [r for r in records if "rss_max_total" in r]
        if loaded:
            run.add(name, "rss_load_process_mib", max(r["rss_max_process"] for r in loaded) / MiB)
            run.add(name, "rss_load_total_mib", max(r["rss_max_total"] for r in loaded) / MiB)


async def _start(name: str, workdir: Path, workers: int) -> servers.Server:
    if name == "dockyard":
        return await servers.start_dockyard(workdir / "dockyard", workers)
    return await servers.start_distribution(workdir / "distribution")


async def run(
    profile: Profile,
    workers: int,
    workdir: Path,
    wanted: Sequence[str] = SERVERS,
) -> dict[str, Any]:
    """The whole benchmark; returns the result document (see docs/benchmark.md)."""
    began = time.perf_counter()
    idle = procstat.IdleLog()
    bench = _Run(profile, workdir, idle)
    await bench.quiet("machine limits")
    limits = await asyncio.to_thread(machine.measure_limits, workdir / "limits", profile.limit_size)
    names = [n for n in wanted if n != "distribution" or servers.distribution_available()]
    started: list[servers.Server] = []
    setups: list[workloads.Setup] = []
    probes: list[dict[str, Any]] = []
    rss_idle: dict[str, dict[int, int]] = {}
    try:
        for name in names:
            started.append(await _start(name, workdir, workers))
        setups = [workloads.Setup(s.name, Registry(s.url), profile) for s in started]
        for setup in setups:
            await workloads.prepare(setup)
        await bench.quiet("idle RSS")
        rss_idle = {s.name: procstat.rss_bytes(s.pid) for s in started}
        for s in started:
            bench.add(s.name, "rss_idle_mib", sum(rss_idle[s.name].values()) / MiB)
        probes = await _choose_tools(bench, setups) if profile.compare_clients else []
        pairs = list(zip(started, setups, strict=True))
        for number in range(profile.rounds):
            data = await asyncio.to_thread(workloads.RoundData.make, number, profile.blob_size)
            order = pairs if number % 2 == 0 else pairs[::-1]
            for phase_name, phase, sample in workloads.PHASES:
                for server, setup in order:
                    outcome, _ = await bench.measure(server, setup, phase_name, phase, data, sample)
                    for key, value in outcome.figures.items():
                        bench.add(server.name, key, value)
            del data
        for server, setup in pairs if profile.rounds % 2 == 0 else pairs[::-1]:
            await _stream(bench, server, setup)
        for server in started:
            _derive(bench, server.name)
    finally:
        for server in started:
            server.stop()
    result: dict[str, Any] = {
        "timestamp": time.strftime("%Y%m%dT%H%M%S"),
        "profile": asdict(profile),
        "workers": workers,
        "environment": _environment(),
        "limits": limits.to_json(),
        "tools": dict(setups[0].tools),
        "tool_probe": probes,
        "servers": {
            s.name: {
                "label": s.label,
                "workers": s.workers,
                "figures": {k: summarize(v).to_json() for k, v in bench.values[s.name].items()},
                "phases": bench.phases.get(s.name, []),
                "rss_idle_bytes": {str(pid): b for pid, b in rss_idle[s.name].items()},
            }
            for s in started
        },
        "idle_checks": idle.checks,
        "noisy_phases": idle.noisy_phases,
        "duration_s": round(time.perf_counter() - began, 1),
    }
    result["comparison"] = report.compare(result)
    return result


def _environment() -> dict[str, str]:
    root = Path(__file__).resolve().parent.parent
    git = subprocess.run(
        ["git", "-C", str(root), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    env = {
        "python": sys.version.split()[0],
        "aiohttp": aiohttp.__version__,
        "kernel": platform.release(),
        "cpus": str(os.cpu_count()),
        "dockyard_git": git.stdout.strip() or "?",
        "distribution": servers.distribution_version()
        if servers.distribution_available()
        else "not installed",
        "wrk": "installed" if loadgen.wrk_available() else "not installed",
    }
    return env
