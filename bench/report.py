"""The figures, their targets from issue 3, and the markdown table of a run.

Every target is a ratio Dockyard / Distribution of medians measured in the same run, or
(RSS, pull vs the loopback limit) a bound on Dockyard's own figure. They are the issue's
numbers: never loosen one here to make a run pass.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

MiB = 1 << 20


@dataclass(frozen=True, slots=True)
class Check:
    """One pass/fail rule on a figure.

    ``kind``: ``ratio_min`` (ratio >= bound), ``ratio_max`` (ratio <= bound),
    ``abs_max`` (Dockyard's value < bound), ``loopback_min`` (Dockyard's value >= bound
    x the loopback sendfile limit).
    """

    kind: str
    bound: float

    def describe(self) -> str:
        return {
            "ratio_min": f"ratio ≥ {self.bound:g}",
            "ratio_max": f"ratio ≤ {self.bound:g}",
            "abs_max": f"< {self.bound:g}",
            "loopback_min": f"≥ {self.bound:.0%} of loopback",
        }[self.kind]

    def passes(self, dockyard: float, ratio: float, loopback: float) -> bool | None:
        """True/False, or None when a number it needs is missing."""
        value = {
            "ratio_min": ratio,
            "ratio_max": ratio,
            "abs_max": dockyard,
            "loopback_min": dockyard / loopback if loopback else math.nan,
        }[self.kind]
        if math.isnan(value):
            return None
        if self.kind == "ratio_min" or self.kind == "loopback_min":
            return value >= self.bound
        if self.kind == "ratio_max":
            return value <= self.bound
        return value < self.bound


@dataclass(frozen=True, slots=True)
class Figure:
    """A number the benchmark reports, with its unit and the issue's targets."""

    key: str
    label: str
    unit: str
    checks: tuple[Check, ...] = ()


def _f(key: str, label: str, unit: str, *checks: Check) -> Figure:
    return Figure(key, label, unit, checks)


_PUSH = Check("ratio_min", 3.0)
_PULL = (Check("ratio_min", 1.0), Check("loopback_min", 0.8))
_TWICE = Check("ratio_min", 2.0)
_NOT_SLOWER = Check("ratio_max", 1.0)

FIGURES: tuple[Figure, ...] = (
    _f("push_mono_mb_s", "push {blob}, monolithic", "MB/s", _PUSH),
    _f("push_chunked_mb_s", "push {blob}, {chunk} chunks", "MB/s", _PUSH),
    _f("pull_1_mb_s", "pull {blob}, 1 client", "MB/s", *_PULL),
    _f("pull_8_mb_s", "pull {blob}, {clients} clients (aggregate)", "MB/s", *_PULL),
    _f("range_rps", "{range} Range reads, 1 client", "req/s", _TWICE),
    _f("head_rps", "manifest HEAD by tag, c={c}", "req/s", _TWICE),
    _f("head_p50_ms", "manifest HEAD p50", "ms"),
    _f("head_p99_ms", "manifest HEAD p99", "ms", _NOT_SLOWER),
    _f("get_rps", "manifest GET by tag, c={c}", "req/s", _TWICE),
    _f("get_p50_ms", "manifest GET p50", "ms"),
    _f("get_p99_ms", "manifest GET p99", "ms", _NOT_SLOWER),
    _f("small_seq_ips", "{images} small image pushes, sequential", "images/s", _TWICE),
    _f("small_c8_ips", "{images} small image pushes, {sc} at a time", "images/s", _TWICE),
    _f("tags_page_ms", "tag list ({tags} tags), page n={page}", "ms", _NOT_SLOWER),
    _f("tags_whole_ms", "tag list ({tags} tags), whole", "ms"),
    _f("tags_walk_ms", "tag list ({tags} tags), walk of n={page} pages", "ms"),
    _f("catalog_page_ms", "catalog ({repos} repos), page n={page}", "ms", _NOT_SLOWER),
    _f("catalog_whole_ms", "catalog ({repos} repos), whole", "ms"),
    _f("cpu_push_s_per_gib", "server CPU per GiB pushed", "s/GiB", _NOT_SLOWER),
    _f("cpu_pull_s_per_gib", "server CPU per GiB pulled", "s/GiB", _NOT_SLOWER),
    _f("rss_idle_mib", "server RSS idle (all processes)", "MiB"),
    _f("rss_load_process_mib", "server RSS under load, largest process", "MiB",
       Check("abs_max", 150)),
    _f("rss_load_total_mib", "server RSS under load, all processes", "MiB"),
    _f("rss_push_stream_delta_mib", "RSS rise while a {stream} blob streams in", "MiB",
       Check("abs_max", 64)),
    _f("rss_pull_stream_delta_mib", "RSS rise while a {stream} blob streams out", "MiB",
       Check("abs_max", 64)),
    _f("stream_push_mb_s", "push {stream}, streamed (no target)", "MB/s"),
)  # fmt: skip


def _size(n: int) -> str:
    return f"{n / (1 << 30):g} GiB" if n >= 1 << 30 else f"{n / MiB:g} MiB"


def label(figure: Figure, profile: dict[str, Any]) -> str:
    """The figure's label with this run's sizes and counts filled in."""
    return figure.label.format(
        blob=_size(profile["blob_size"]),
        chunk=_size(profile["chunk_size"]),
        clients=profile["pull_clients"],
        range=_size(profile["range_size"]),
        c=profile["manifest_concurrency"],
        images=profile["small_images"],
        sc=profile["small_concurrency"],
        tags=profile["tags"],
        page=profile["tag_page"],
        repos=profile["repositories"],
        stream=_size(profile["stream_size"]),
    )


def _median(result: dict[str, Any], server: str, key: str) -> float:
    summary = result["servers"].get(server, {}).get("figures", {}).get(key)
    value = summary.get("median") if summary else None
    return math.nan if value is None else float(value)


def compare(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per figure: medians, spreads, ratio, target and verdict."""
    loopback = float(result["limits"]["loopback_sendfile_mb_s"])
    rows = []
    for figure in FIGURES:
        dockyard = _median(result, "dockyard", figure.key)
        distribution = _median(result, "distribution", figure.key)
        ratio = dockyard / distribution if distribution else math.nan
        verdicts = [c.passes(dockyard, ratio, loopback) for c in figure.checks]
        if not verdicts:
            verdict = "—"
        elif any(v is None for v in verdicts):
            verdict = "n/a"
        else:
            verdict = "pass" if all(verdicts) else "FAIL"
        rows.append(
            {
                "figure": figure.key,
                "label": label(figure, result["profile"]),
                "unit": figure.unit,
                "dockyard": _clean(dockyard),
                "distribution": _clean(distribution),
                "ratio": _clean(ratio),
                "target": "; ".join(c.describe() for c in figure.checks),
                "verdict": verdict,
            }
        )
    return rows


def _clean(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 4)


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def _cell(result: dict[str, Any], server: str, key: str) -> str:
    summary = result["servers"].get(server, {}).get("figures", {}).get(key)
    if not summary or summary.get("median") is None:
        return "—"
    spread = summary.get("spread")
    rounds = len(summary.get("rounds", []))
    if rounds > 1 and spread is not None:
        return f"{_num(summary['median'])} (±{spread * 50:.0f}%)"
    return _num(summary["median"])


def markdown(result: dict[str, Any]) -> str:
    """The run as markdown: header, limits, the comparison table, client and server CPU."""
    servers = result["servers"]
    dy = servers.get("dockyard", {}).get("label", "Dockyard")
    di = servers.get("distribution", {}).get("label", "Distribution (not run)")
    p = result["profile"]
    lines = [
        f"# Benchmark {result['timestamp']} ({p['name']}, {p['rounds']} rounds)",
        "",
        f"{dy} vs {di}; Dockyard git {result['environment'].get('dockyard_git', '?')}.",
        f"Manifest load tools: HEAD={result['tools']['HEAD']}, GET={result['tools']['GET']}.",
        f"Phases that started on a busy machine: {result['noisy_phases']} of "
        f"{len(result['idle_checks'])}. Run took {result['duration_s']:.0f} s.",
        "",
        "## Machine limits (same run, median of tries)",
        "",
        "| limit | MB/s |",
        "| --- | --- |",
    ]
    limits = result["limits"]
    lines += [
        f"| sha256, hashlib, one core | {_num(limits['sha256_mb_s'])} |",
        f"| loopback TCP, os.sendfile | {_num(limits['loopback_sendfile_mb_s'])} |",
        f"| disk write + fsync | {_num(limits['disk_fsync_write_mb_s'])} |",
        "",
        "## Figures (medians over rounds; ± is half the range as % of the median)",
        "",
        "| figure | unit | Dockyard | Distribution | ratio | target | result |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in result["comparison"]:
        lines.append(
            f"| {row['label']} | {row['unit']} | {_cell(result, 'dockyard', row['figure'])} "
            f"| {_cell(result, 'distribution', row['figure'])} | {_num(row['ratio'])} "
            f"| {row['target'] or '—'} | {row['verdict']} |"
        )
    lines += ["", *_phase_table(result)]
    return "\n".join(lines) + "\n"


def _phase_table(result: dict[str, Any]) -> list[str]:
    names = list(result["servers"])
    heads = [f"{n}: wall s / client CPU s (% core) / server CPU s" for n in names]
    lines = [
        "## Time, client CPU and server CPU per phase (medians over rounds)",
        "",
        "| phase | " + " | ".join(heads) + " |",
        "| --- | " + " | ".join("---" for _ in names) + " |",
    ]
    phases = list(dict.fromkeys(p["phase"] for n in names for p in result["servers"][n]["phases"]))
    for phase in phases:
        cells = []
        for n in names:
            records = [p for p in result["servers"][n]["phases"] if p["phase"] == phase]
            if not records:
                cells.append("—")
                continue
            wall = _med([r["wall_s"] for r in records])
            client = _med([r["client_cpu_s"] for r in records])
            server = _med([r["server_cpu_s"] for r in records])
            share = client / wall if wall else math.nan
            cells.append(f"{wall:.2f} / {client:.2f} ({share:.0%}) / {server:.2f}")
        lines.append(f"| {phase} | " + " | ".join(cells) + " |")
    return lines


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan
