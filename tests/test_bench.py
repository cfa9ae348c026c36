"""The benchmark's machinery, on a tiny workload against Dockyard alone: it must keep
producing a well-formed result. No timing is asserted; the speed is `make bench`'s job."""

from __future__ import annotations

import json
from pathlib import Path

from bench.__main__ import main
from bench.report import FIGURES


def test_tiny_benchmark_writes_a_well_formed_result(tmp_path: Path) -> None:
    out = tmp_path / "results"
    code = main(
        ["--profile", "tiny", "--servers", "dockyard", "--out", str(out), "--workdir",
         str(tmp_path / "work")]
    )  # fmt: skip
    assert code == 0
    [result_file] = out.glob("*-tiny-w1.json")
    assert result_file.with_suffix(".md").exists()
    result = json.loads(result_file.read_text())

    assert result["workers"] == 1
    assert result["profile"]["name"] == "tiny"
    limits = result["limits"]
    for key in ("sha256_mb_s", "loopback_sendfile_mb_s", "disk_fsync_write_mb_s"):
        assert limits[key] > 0, key
    assert list(result["servers"]) == ["dockyard"]
    dockyard = result["servers"]["dockyard"]
    assert dockyard["label"].startswith("Dockyard")
    for figure in FIGURES:
        summary = dockyard["figures"][figure.key]
        assert summary["median"] is not None, figure.key
        assert summary["median"] >= 0, figure.key
        assert summary["min"] <= summary["median"] <= summary["max"], figure.key
    phases = {p["phase"] for p in dockyard["phases"]}
    assert {"push_mono", "pull_8", "manifest_head", "small_c8", "listings"} <= phases
    assert all(p["client_cpu_s"] >= 0 and p["wall_s"] > 0 for p in dockyard["phases"])
    assert result["idle_checks"], "each phase checks that the machine is quiet"

    rows = {row["figure"]: row for row in result["comparison"]}
    assert set(rows) == {f.key for f in FIGURES}
    # Without Distribution there is no ratio; absolute targets are still judged.
    assert rows["push_mono_mb_s"]["ratio"] is None
    assert rows["push_mono_mb_s"]["verdict"] == "n/a"
    assert rows["rss_push_stream_delta_mib"]["verdict"] in ("pass", "FAIL")
    table = result_file.with_suffix(".md").read_text()
    assert "| figure | unit | Dockyard | Distribution | ratio | target | result |" in table
