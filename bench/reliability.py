"""``make reliability``: the reliability suite at full scale (``--scale ci`` for the
CI-sized subset). Prints the report and writes bench/results/reliability.json
(``--sink server``: the compactor writes to a local ``chroma run`` (contract §12), the
report goes to bench/results/reliability_server.json)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from receipt_compaction_tools.local.reliability import SCENARIOS, run_suite
from receipt_compaction_tools.local.reliability_world import SCALES

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument("--only", nargs="*", choices=sorted(SCENARIOS))
    parser.add_argument("--output", type=Path, help="where to write the report")
    parser.add_argument(
        "--sink",
        choices=["snapshot", "server"],
        default="snapshot",
        help="where the compactor writes: published snapshots, or a local Chroma server",
    )
    parser.add_argument(
        "--jobs", type=int, default=2, help="scenarios run at once, each in its own process"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="reliability-") as tmp:
        report = run_suite(args.scale, Path(tmp), args.only, jobs=args.jobs, sink=args.sink)
    text = json.dumps(report, indent=2)
    print(text)
    name = "reliability.json" if args.sink == "snapshot" else f"reliability_{args.sink}.json"
    output: Path = args.output or RESULTS / name
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text + "\n")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
