"""The explorer's JSON report: schedules explored per sink and family, violations with their
schedules and replay commands, and what the run cost."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from receipt_compaction_tools.testing.explorer.models import Schedule, ScheduleOutcome
from receipt_compaction_tools.testing.explorer.space import Catalog
from receipt_compaction_tools.testing.explorer.world import Timing


def outcome_json(outcome: ScheduleOutcome) -> dict[str, Any]:
    return {
        "schedule": outcome.schedule.text,
        "seconds": round(outcome.seconds, 3),
        "violations": [asdict(v) for v in outcome.violations],
        "unreached": outcome.unreached,
        "retention_exercised": outcome.retention_exercised,
        "notes": outcome.notes,
        "error": outcome.error,
        "failures": outcome.failures,
    }


def _seconds(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "total": round(sum(ordered), 1),
        "mean": round(statistics.fmean(ordered), 2),
        "median": round(statistics.median(ordered), 2),
        "p90": round(ordered[int(0.9 * (len(ordered) - 1))], 2),
        "max": round(ordered[-1], 2),
    }


def build_report(
    families: dict[str, Sequence[Schedule]],
    outcomes: dict[Schedule, dict[str, Any]],
    *,
    catalog: Catalog,
    timing: Timing,
    workers: int,
    wall_seconds: float,
    commit: str,
) -> dict[str, Any]:
    family_of = {s: name for name, schedules in families.items() for s in schedules}
    explored: Counter[str] = Counter()
    per_family: dict[str, list[float]] = {}
    violations = []
    errors = []
    unreached = 0
    exercised = 0
    for schedule, outcome in outcomes.items():
        family = family_of.get(schedule, "other")
        explored[f"{schedule.sink.value}/{family}"] += 1
        per_family.setdefault(family, []).append(outcome["seconds"])
        unreached += bool(outcome["unreached"])
        exercised += bool(outcome["retention_exercised"])
        if outcome["error"]:
            errors.append({"schedule": schedule.text, "error": outcome["error"]})
        if outcome["violations"]:
            violations.append(
                {
                    "schedule": schedule.text,
                    "replay": schedule.replay_command,
                    "violations": outcome["violations"],
                }
            )
    all_seconds = [o["seconds"] for o in outcomes.values()]
    return {
        "commit": commit,
        "timing": asdict(timing),
        "workers": workers,
        "catalog": {
            **{
                f"{s.value}/{w.value}": [str(p) for p in points]
                for (s, w), points in sorted(catalog.cycle.items())
            },
            "flush": [str(p) for p in catalog.flush],
        },
        "schedules": {
            "total": len(outcomes),
            "by_sink_and_family": dict(sorted(explored.items())),
            "with_a_stop_never_reached": unreached,
            "whose_final_retention_had_to_delete": exercised,
        },
        "violations": {"count": len(violations), "schedules": violations},
        "errors": {"count": len(errors), "schedules": errors},
        "seconds": {
            "wall": round(wall_seconds, 1),
            "per_schedule": _seconds(all_seconds),
            "per_family": {name: _seconds(v) for name, v in sorted(per_family.items())},
        },
    }
