"""``python -m bench``: Dockyard against CNCF Distribution, same machine, same run.

Writes ``bench/results/<timestamp>.json`` and ``.md`` and prints the markdown table.
See docs/benchmark.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
from pathlib import Path

from bench import report, runner
from bench.profile import FULL, PROFILES, QUICK, with_rounds

RESULTS = Path(__file__).resolve().parent / "results"


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small and short (under a minute)")
    parser.add_argument("--workers", type=int, default=1, help="Dockyard worker processes [1]")
    parser.add_argument("--rounds", type=int, help="A/B rounds [3]")
    parser.add_argument(
        "--profile", choices=sorted(PROFILES), help="full, quick or tiny (overrides --quick)"
    )
    parser.add_argument(
        "--servers",
        default=",".join(runner.SERVERS),
        help="comma-separated: dockyard,distribution [both]",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    parser.add_argument(
        "--workdir", type=Path, help="where the registries keep their data [a temp dir]"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when it ran (targets missed are in the table, not the status)."""
    args = _arguments(argv)
    profile = PROFILES[args.profile] if args.profile else QUICK if args.quick else FULL
    profile = with_rounds(profile, args.rounds)
    wanted = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = set(wanted) - set(runner.SERVERS)
    if unknown or not wanted:
        print(f"unknown --servers {sorted(unknown)}; choose from {runner.SERVERS}", file=sys.stderr)
        return 2
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="dockyard-bench-"))
    try:
        result = asyncio.run(runner.run(profile, args.workers, workdir, wanted))
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{result['timestamp']}-{profile.name}-w{args.workers}"
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    table = report.markdown(result)
    (args.out / f"{stem}.md").write_text(table)
    print(table)
    print(f"results: {args.out / stem}.json and .md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
