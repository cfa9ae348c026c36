"""What the kernel says about the servers and the machine: CPU time, RSS, idle cores.

Everything is read from ``/proc``: ``/proc/<pid>/stat`` for a process's user and system
time, ``/proc/<pid>/status`` for its resident set, ``/proc/stat`` for each core's busy time.
A server is a process tree (Dockyard with ``--workers N`` forks N workers), so CPU and RSS
are summed over the tree, and RSS is also kept per process.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants."""
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        children = ""
        for task in _tasks(p):
            children += " " + (_read(f"/proc/{p}/task/{task}/children") or "")
        todo.extend(int(c) for c in children.split())
    return tree


def _tasks(pid: int) -> list[str]:
    try:
        return [task.name for task in Path(f"/proc/{pid}/task").iterdir()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid`` and its live descendants."""
    total = 0
    for p in process_tree(pid):
        stat = _read(f"/proc/{p}/stat")
        if stat is None:
            continue
        # The command name (field 2) may hold spaces; fields after ')' are fixed.
        fields = stat.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / _TICK


def rss_bytes(pid: int) -> dict[int, int]:
    """Resident set size (VmRSS) of ``pid`` and each live descendant, in bytes."""
    sizes = {}
    for p in process_tree(pid):
        status = _read(f"/proc/{p}/status")
        for line in (status or "").splitlines():
            if line.startswith("VmRSS:"):
                sizes[p] = int(line.split()[1]) * 1024
    return sizes


@dataclass(slots=True)
class RssPeak:
    """The largest RSS seen while sampling: per process and summed over the tree."""

    first_total: int = 0
    max_total: int = 0
    max_process: int = 0
    samples: int = 0


class RssSampler:
    """Samples a process tree's RSS in a thread every ``interval`` seconds until stopped."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self._pid = pid
        self._interval = interval
        self._stop = threading.Event()
        self.peak = RssPeak()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._sample()
        self.peak.first_total = self.peak.max_total
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def _sample(self) -> None:
        sizes = rss_bytes(self._pid)
        if not sizes:
            return
        self.peak.samples += 1
        self.peak.max_total = max(self.peak.max_total, sum(sizes.values()))
        self.peak.max_process = max(self.peak.max_process, *sizes.values())


@dataclass(frozen=True, slots=True)
class CoreLoad:
    """How busy each core was over a short window (0.0 idle .. 1.0 saturated)."""

    busy: tuple[float, ...]
    window: float

    @property
    def busiest(self) -> float:
        return max(self.busy, default=0.0)


def _core_ticks() -> list[tuple[int, int]]:
    """(busy, total) jiffies per core from /proc/stat."""
    ticks = []
    for line in (_read("/proc/stat") or "").splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            values = [int(v) for v in line.split()[1:9]]
            idle = values[3] + values[4]  # idle + iowait
            ticks.append((sum(values) - idle, sum(values)))
    return ticks


def core_load(window: float) -> CoreLoad:
    """Each core's busy fraction over the next ``window`` seconds (blocks that long)."""
    before = _core_ticks()
    time.sleep(window)
    after = _core_ticks()
    busy = []
    for (b0, t0), (b1, t1) in zip(before, after, strict=True):
        busy.append((b1 - b0) / (t1 - t0) if t1 > t0 else 0.0)
    return CoreLoad(tuple(busy), window)


@dataclass(slots=True)
class IdleLog:
    """Each phase's pre-flight core load, and how often the machine was not quiet."""

    threshold: float = 0.25
    checks: list[dict[str, object]] = field(default_factory=list)

    def wait_quiet(self, phase: str, window: float, patience: float = 5.0) -> CoreLoad:
        """Sample the cores until every one is below ``threshold`` busy, for at most
        ``patience`` seconds; record the last sample and whether it was quiet."""
        deadline = time.monotonic() + patience
        waited = 0.0
        while True:
            load = core_load(window)
            if load.busiest < self.threshold or time.monotonic() >= deadline:
                break
            waited += window
        self.checks.append(
            {
                "phase": phase,
                "busy": [round(b, 3) for b in load.busy],
                "quiet": load.busiest < self.threshold,
                "waited_s": round(waited, 2),
            }
        )
        return load

    @property
    def noisy_phases(self) -> int:
        return sum(1 for c in self.checks if not c["quiet"])
