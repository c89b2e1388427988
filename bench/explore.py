"""The interleaving explorer of issue 21 (``receipt_compaction_tools.testing.explorer``).

Full run (``make reliability``): every applicable schedule of two compactors in both sinks
(triples of point x fault x competitor, a competitor interrupted while the first resumes,
bootstrap races) plus ``--random`` seeded three-compactor schedules, on ``--workers``
processes sharing one moto server and one Chroma server. Writes a JSON report
(``--output``, default bench/results/explorer.json); exits 1 if any schedule broke an
invariant. ``--replay '<schedule>'`` runs one schedule (as printed with a violation) and
prints what it found; ``--sample N`` runs the fixed sample ``make test`` runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from receipt_compaction_tools.aws.local_aws import LocalAwsServer
from receipt_compaction_tools.testing.explorer import Explorer, Schedule, Sink, Timing, space
from receipt_compaction_tools.testing.explorer.report import build_report

RESULTS = Path(__file__).resolve().parent / "results"
# Most of a schedule's time is spent waiting for leases to run out, not computing: more
# workers than cores keep both cores busy.
WORKERS = 4


def _commit() -> str:
    found = subprocess.run(
        ["git", "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parent,
    )
    return found.stdout.strip() or "unknown"


def _progress(done: int, total: int, text: str, outcome: dict[str, Any]) -> None:
    mark = "E" if outcome["error"] else "!" if outcome["violations"] else "."
    print(f"{mark} {done}/{total} {outcome['seconds']:.1f}s {text}", file=sys.stderr, flush=True)
    if outcome["error"]:
        print(outcome["error"], file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--replay", help="one schedule, as printed")
    parser.add_argument("--sample", type=int, help="the fixed sample of this many schedules")
    parser.add_argument("--random", type=int, default=100, help="three-compactor schedules")
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--workers", type=int, default=WORKERS)
    parser.add_argument("--sinks", default="snapshot,server")
    parser.add_argument("--limit", type=int, help="run only the first N schedules")
    parser.add_argument("--output", type=Path, default=RESULTS / "explorer.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    sinks = [Sink(name) for name in args.sinks.split(",")]
    timing = Timing()
    started = time.perf_counter()
    commit = _commit()  # the code explored: as checked out when the run starts
    replay = None if args.replay is None else Schedule.parse(args.replay)
    with ExitStack() as stack:
        aws = stack.enter_context(LocalAwsServer(own_process=True))
        explorer = Explorer(
            aws.environment(),
            chroma=Sink.SERVER in sinks or (replay is not None and replay.sink is Sink.SERVER),
            timing=timing,
            workers=args.workers,
            progress=_progress,
        )
        if replay is not None:
            outcome = explorer.run([replay])[replay]
            print(json.dumps(outcome, indent=2))
            return 1 if outcome["violations"] or outcome["error"] else 0
        catalog, clean = explorer.discover(sinks)
        families: dict[str, Sequence[Schedule]] = {
            "triples": list(space.triples(catalog)),
            "competitor_interrupted": list(space.interrupted_competitors(catalog)),
            "bootstrap_races": list(space.bootstrap_races(catalog)),
            "random_three": space.random_schedules(catalog, args.random, args.seed),
        }
        if args.sample is not None:
            families = {"sample": space.sample(catalog, args.sample, args.seed)}
        families = {
            name: [s for s in schedules if s.sink in sinks] for name, schedules in families.items()
        }
        families["clean"] = list(clean)
        schedules = list(dict.fromkeys(s for group in families.values() for s in group))
        schedules = schedules[: args.limit] if args.limit else schedules
        outcomes = {**clean, **explorer.run([s for s in schedules if s not in clean])}
    report = build_report(
        families,
        outcomes,
        catalog=catalog,
        timing=timing,
        workers=args.workers,
        wall_seconds=time.perf_counter() - started,
        commit=commit,
    )
    text = json.dumps(report, indent=2)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text + "\n")
    print(json.dumps({k: report[k] for k in ("schedules", "seconds")}, indent=2))
    for found_violation in report["violations"]["schedules"]:
        print(
            f"VIOLATION {found_violation['violations'][0]['invariant']}: "
            f"{found_violation['replay']}"
        )
    for failed in report["errors"]["schedules"]:
        print(f"EXPLORER ERROR in {failed['schedule']}:\n{failed['error']}")
    return 1 if report["violations"]["count"] or report["errors"]["count"] else 0


if __name__ == "__main__":
    sys.exit(main())
