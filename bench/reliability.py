"""``make reliability``: the whole proof of issue 21 in one timed run, one report.

Three parts, one after the other (each uses both cores):
- ``explorer``: the interleaving explorer's full space (``bench/explore.py``: every
  applicable triple for two compactors in both sinks, the interrupted competitors, the
  bootstrap races and seeded three-compactor schedules; its own report in
  bench/results/explorer.json);
- ``model``: the convergence model at ``--examples`` examples (fixed seeds, on xdist
  workers);
- ``scenarios``: load, concurrency, crashes, poison input, hostile deltas and lease
  pathologies at ``--scale`` (``ci``: the subset ``make test`` runs).

Writes bench/results/reliability.json (``--sink server``: the scenarios write to a local
``chroma run`` (contract §12), report in bench/results/reliability_server.json) with the
commit, the load average before and after, each part's wall time and result, and whether
the run kept within its budget. Exits 1 when any part failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from receipt_compaction_tools.local.reliability import SCENARIOS, run_suite
from receipt_compaction_tools.local.reliability_scales import SCALES

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
PARTS = ("explorer", "model", "scenarios")
BUDGET_SECONDS = 90 * 60  # issue 21: the whole run on a 2-core machine
MODEL_TEST = "receipt_chroma/tests/unit/test_convergence_model.py"


def _commit() -> str:
    found = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False, cwd=ROOT
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    return found.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def _load() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def run_explorer(args: argparse.Namespace, _: Path) -> dict[str, Any]:
    output = RESULTS / "explorer.json"
    command = [sys.executable, str(BENCH / "explore.py"), "--output", str(output)]
    code = subprocess.run(command, check=False, cwd=ROOT).returncode
    if not output.exists():
        return {"passed": False, "error": f"bench/explore.py exited {code} with no report"}
    report = json.loads(output.read_text())
    return {
        "report": "bench/results/explorer.json",
        "schedules": report["schedules"],
        "violations": report["violations"]["count"],
        "explorer_errors": report["errors"]["count"],
        "workers": report["workers"],
        "per_schedule_seconds": report["seconds"]["per_schedule"],
        "passed": code == 0
        and report["violations"]["count"] == 0
        and report["errors"]["count"] == 0,
    }


def run_model(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    junit = scratch / "model.xml"
    command = [
        str(Path(sys.executable).with_name("pytest")),
        "-n",
        "auto",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--junitxml={junit}",
        MODEL_TEST,
    ]
    env = {**os.environ, "CONVERGENCE_EXAMPLES": str(args.examples)}
    code = subprocess.run(command, check=False, cwd=ROOT, env=env).returncode
    if not junit.exists():
        return {"passed": False, "error": f"pytest exited {code} with no junit report"}
    suite = ElementTree.parse(junit).getroot().find("testsuite")
    assert suite is not None, "pytest's junit report has no testsuite"
    shards = int(suite.get("tests", 0))
    failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    return {
        "examples": args.examples,
        "shards": shards,
        "shards_failed": failed,
        "passed": code == 0 and failed == 0 and shards > 0,
    }


def run_scenarios(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    report = run_suite(args.scale, scratch, args.only, jobs=args.jobs, sink=args.sink)
    scenarios = report["scenarios"]
    report["waited_for_visibility_timeout"] = sum(
        s.get("waited_for_visibility_timeout", 0) for s in scenarios.values()
    )
    return report


RUNNERS: dict[str, Callable[[argparse.Namespace, Path], dict[str, Any]]] = {
    "explorer": run_explorer,
    "model": run_model,
    "scenarios": run_scenarios,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated, in order")
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument("--only", nargs="*", choices=sorted(SCENARIOS))
    parser.add_argument("--examples", type=int, default=500, help="convergence-model examples")
    parser.add_argument("--output", type=Path, help="where to write the report")
    parser.add_argument(
        "--sink",
        choices=["snapshot", "server"],
        default="snapshot",
        help="where the scenarios' compactor writes: snapshots, or a local Chroma server",
    )
    parser.add_argument(
        "--jobs", type=int, default=2, help="scenarios run at once, each in its own process"
    )
    args = parser.parse_args()
    parts = [part for part in args.parts.split(",") if part]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts {unknown}; choose from {list(PARTS)}")
    report: dict[str, Any] = {"commit": _commit(), "cpus": os.cpu_count(), "load_before": _load()}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="reliability-") as tmp:
        for part in parts:
            part_started = time.perf_counter()
            scratch = Path(tmp) / part
            scratch.mkdir()
            result = RUNNERS[part](args, scratch)
            result["seconds"] = round(time.perf_counter() - part_started, 1)
            result["load_after"] = _load()
            report[part] = result
            print(f"{part}: passed={result['passed']} in {result['seconds']} s", flush=True)
    wall = time.perf_counter() - started
    report["seconds"] = round(wall, 1)
    report["load_after"] = _load()
    report["budget_seconds"] = BUDGET_SECONDS
    report["within_budget"] = wall <= BUDGET_SECONDS
    report["passed"] = all(report[part]["passed"] for part in parts)
    text = json.dumps(report, indent=2)
    print(text)
    name = "reliability.json" if args.sink == "snapshot" else f"reliability_{args.sink}.json"
    output: Path = args.output or RESULTS / name
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text + "\n")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
