"""Run every benchmark of ``make bench`` one after another and time each.

Full mode (``make bench``) runs each at the size its figures are quoted at and writes its
JSON into ``bench/results/``; the budget for the whole run is 45 minutes on a quiet 2-core
machine. ``--quick`` (``make bench-quick``, budget 10 minutes) runs the same scripts at
development sizes into ``build/bench-quick/``, never over the committed figures: it shows
that every benchmark still runs and roughly where it stands, not a figure to quote.

Each benchmark runs in its own process (they start their own moto and Chroma servers).
The run's record — per benchmark its seconds, exit status and the load average before and
after, then the total against the budget — is printed and written as ``bench_run.json``
beside the results. A benchmark that fails does not stop the others; the run then exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
FULL_BUDGET_SECONDS = 45 * 60
QUICK_BUDGET_SECONDS = 10 * 60


@dataclass(frozen=True)
class Benchmark:
    """One script, with the arguments and environment of each mode."""

    name: str
    quick_args: str = ""  # split on whitespace
    quick_env: dict[str, str] = field(default_factory=dict)


BENCHMARKS = (
    Benchmark("stream_throughput", quick_args="--records 2000 --rounds 5"),
    Benchmark("compaction_ops", quick_args="--quick"),
    Benchmark(
        "compaction_cycle",
        quick_env={
            "BENCH_RECEIPTS": "10",
            "BENCH_DIMENSION": "64",
            "BENCH_ROUNDS": "1",
            "BENCH_MERGE_RECEIPTS": "3",
            "BENCH_SIZE_NOTE": "bench/run.py --quick (development size)",
        },
    ),
    Benchmark(
        "snapshot_cycles",
        quick_args="--receipts 55 --cycles 3 --rounds 1 --query-rounds 1 --large-receipts 0",
    ),
    Benchmark(
        "reader_latency",
        quick_args="--records 2000 --dimension 64 --switches 2 --queries 20 --interval 0.1 "
        "--poll 0.5 --rounds 1",
    ),
)


def _load() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def run_one(benchmark: Benchmark, *, quick: bool, results: Path) -> dict[str, Any]:
    """Run one benchmark; its JSON (stdout) goes to ``results/<name>.json`` only when it
    succeeded, so a failed run never replaces a committed figure."""
    command = [sys.executable, str(BENCH / f"{benchmark.name}.py")]
    command += benchmark.quick_args.split() if quick else []
    env = {**os.environ, **(benchmark.quick_env if quick else {})}
    load_before = _load()
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, check=False
    )
    seconds = round(time.perf_counter() - started, 1)
    if done.returncode == 0:
        (results / f"{benchmark.name}.json").write_text(done.stdout)
    return {
        "benchmark": benchmark.name,
        "command": command[1:],
        "seconds": seconds,
        "exit_status": done.returncode,
        "load_before": load_before,
        "load_after": _load(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="development sizes (~10 min)")
    parser.add_argument(
        "--only", action="append", choices=[b.name for b in BENCHMARKS], help="repeatable"
    )
    args = parser.parse_args(argv)
    results = ROOT / "build" / "bench-quick" if args.quick else BENCH / "results"
    results.mkdir(parents=True, exist_ok=True)
    chosen = [b for b in BENCHMARKS if not args.only or b.name in args.only]
    runs = []
    for benchmark in chosen:
        print(f"bench: {benchmark.name} ...", file=sys.stderr, flush=True)
        runs.append(run_one(benchmark, quick=args.quick, results=results))
        print(f"bench: {benchmark.name}: {runs[-1]['seconds']} s", file=sys.stderr, flush=True)
    budget = QUICK_BUDGET_SECONDS if args.quick else FULL_BUDGET_SECONDS
    total = round(sum(run["seconds"] for run in runs), 1)
    record = {
        "mode": "quick" if args.quick else "full",
        "cpus": os.cpu_count(),
        "runs": runs,
        "seconds": total,
        "budget_seconds": budget,
        # The budget is for the whole list; a partial run (--only) is not judged.
        "within_budget": total <= budget if len(chosen) == len(BENCHMARKS) else None,
        "failed": [run["benchmark"] for run in runs if run["exit_status"] != 0],
    }
    text = json.dumps(record, indent=2)
    (results / "bench_run.json").write_text(text + "\n")
    print(text)
    return 1 if record["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
