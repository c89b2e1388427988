"""A fixed, deterministic sample of the interleaving explorer's schedules (issue 21):
real cycles and flushes against the session's moto server and Chroma server, stopped at
stage boundaries and inside AWS calls, killed, stalled past their lease, paused, failing
heartbeats, S3 and DynamoDB errors, with competitors; then settled and checked against
I1-I6. It includes the schedules that found defects 1 and 2. The full exploration is
``bench/explore.py`` (``make reliability``).

Select with ``-m explorer``. A failure prints each violating schedule with the command
that replays it.
"""

from __future__ import annotations

import time

import pytest

from receipt_compaction_tools.aws.local_aws import LocalAwsServer
from receipt_compaction_tools.testing.explorer import Explorer, Sink, Timing, space

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.explorer]

SAMPLE_SIZE = 30  # the clean runs that find the points are schedules too
SEED = 21
WORKERS = 3


@pytest.mark.timeout(900)
def test_a_fixed_sample_of_interleavings_breaks_no_invariant(
    moto_server: LocalAwsServer,
) -> None:
    # Each worker runs a Chroma server of its own (testing/explorer/pool.py says why).
    started = time.perf_counter()
    explorer = Explorer(
        moto_server.environment(),
        chroma=True,
        timing=Timing(),
        workers=WORKERS,
    )
    catalog, clean = explorer.discover(list(Sink))
    for schedule in space.REGRESSIONS:
        assert not space.missing_points(schedule, catalog), (
            f"a stage of a regression schedule is gone; update it: {schedule.text}"
        )
    outcomes = {**clean, **explorer.run(space.sample(catalog, SAMPLE_SIZE - len(clean), SEED))}

    assert len(outcomes) >= SAMPLE_SIZE
    seconds = sorted(outcome["seconds"] for outcome in outcomes.values())
    print(
        f"explorer sample: {len(outcomes)} schedules in {time.perf_counter() - started:.0f} s "
        f"on {WORKERS} workers; per schedule median {seconds[len(seconds) // 2]:.1f} s, "
        f"max {seconds[-1]:.1f} s"
    )
    errors = [f"{s.text}\n{o['error']}" for s, o in outcomes.items() if o["error"]]
    assert not errors, "the explorer could not run:\n" + "\n".join(errors)
    broken = [
        f"{schedule.replay_command}\n    "
        + "\n    ".join(f"{v['invariant']}: {v['detail']}" for v in outcome["violations"])
        for schedule, outcome in outcomes.items()
        if outcome["violations"]
    ]
    assert not broken, "schedules that broke an invariant:\n" + "\n".join(broken)
