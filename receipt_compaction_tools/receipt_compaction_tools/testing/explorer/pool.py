"""Running schedules in worker processes (each with its own Chroma client state and
threads), all against the run's one moto server; for the server sink each worker runs a
Chroma server of its own.

One ``chroma run`` shared by the workers broke worlds that never touched each other: with
four workers creating, writing and dropping databases at once, chroma 1.5.9 served a
fresh world's collection label keys its own writes had removed (I2 on clean discovery
runs, measured this way: 2 of 3 runs with four workers, none in 2 runs of the same
schedules with one). A worker runs one schedule at a time, so its server sees one world.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import shutil
import tempfile
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from receipt_compaction_tools.local.chroma_server import LocalChromaServer
from receipt_compaction_tools.testing.explorer.deltas import DeltaStore
from receipt_compaction_tools.testing.explorer.exceptions import DiscoveryError
from receipt_compaction_tools.testing.explorer.models import Schedule, ScheduleOutcome, Sink
from receipt_compaction_tools.testing.explorer.report import outcome_json
from receipt_compaction_tools.testing.explorer.runner import run_schedule
from receipt_compaction_tools.testing.explorer.scenario import DIMENSION
from receipt_compaction_tools.testing.explorer.space import (
    Catalog,
    catalog_from,
    discovery_schedules,
)
from receipt_compaction_tools.testing.explorer.world import Services, Timing

# moto 5.2 stores a wrong CRC32 for some uploads; integrity is checked by our sha256s.
CLIENT_ENV = {
    "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
    "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
}
Progress = Callable[[int, int, str, dict[str, Any]], None]
DISCOVERY_ATTEMPTS = 3
_state: dict[str, Any] = {}


def _init_worker(env: dict[str, str], chroma: bool, timing: Timing) -> None:
    """Each worker: the run's environment, its own deltas, scratch directory and (with
    ``chroma``) Chroma server."""
    os.environ.update(env)
    logging.basicConfig(level=logging.CRITICAL)
    root = Path(tempfile.mkdtemp(prefix="explore-worker-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    server = None
    if chroma:
        server = LocalChromaServer(root / "chroma").start()
        atexit.register(server.stop)  # registered last, so it runs before the rmtree
    _state["services"] = Services(root, DeltaStore(DIMENSION), server)
    _state["timing"] = timing


def _run_text(text: str) -> dict[str, Any]:
    schedule = Schedule.parse(text)
    try:
        outcome = run_schedule(schedule, _state["services"], _state["timing"])
    except Exception as error:  # the explorer could not run it: reported, never hidden
        outcome = ScheduleOutcome(schedule)
        outcome.error = "".join(traceback.format_exception(error))
    result = outcome_json(outcome)
    result["reached"] = outcome.reached
    return result


class Explorer:
    """Runs schedules on ``workers`` processes; ``aws_env`` points them at the run's moto
    server; with ``chroma`` (needed for the server sink) each starts a Chroma server."""

    def __init__(
        self,
        aws_env: dict[str, str],
        *,
        chroma: bool,
        timing: Timing,
        workers: int,
        progress: Progress | None = None,
    ) -> None:
        self.env = {**aws_env, **CLIENT_ENV}
        self.chroma = chroma
        self.timing = timing
        self.workers = workers
        self.progress = progress

    def run(self, schedules: Sequence[Schedule]) -> dict[Schedule, dict[str, Any]]:
        texts = [schedule.text for schedule in dict.fromkeys(schedules)]
        done: dict[Schedule, dict[str, Any]] = {}
        executor = ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self.env, self.chroma, self.timing),
        )
        try:
            futures = {executor.submit(_run_text, text): text for text in texts}
            for future in as_completed(futures):
                schedule = Schedule.parse(futures[future])
                done[schedule] = future.result()
                if self.progress is not None:
                    self.progress(len(done), len(texts), schedule.text, done[schedule])
        finally:
            executor.shutdown(cancel_futures=True)  # nothing keeps running behind a failure
        return done

    def discover(self, sinks: Sequence[Sink]) -> tuple[Catalog, dict[Schedule, dict[str, Any]]]:
        """The catalog of points, from clean runs (themselves checked schedules). A clean
        run whose cycle failed some of its messages (a call timed out on a loaded machine)
        took another path and is run again; one that never runs clean stops the run."""
        clean = discovery_schedules(sinks)
        found: dict[Schedule, dict[str, Any]] = {}
        for _ in range(DISCOVERY_ATTEMPTS):
            missing = [s for s in clean if not _ran_clean(found.get(s))]
            if not missing:
                break
            found |= self.run(missing)
        unclean = {s.text: found[s] for s in clean if not _ran_clean(found[s])}
        if unclean:
            detail = "\n".join(
                f"{text}: error={o['error']} violations={o['violations']} "
                f"failures={o['failures']} notes={o['notes']}"
                for text, o in unclean.items()
            )
            raise DiscoveryError(
                f"no clean run in {DISCOVERY_ATTEMPTS} attempts, so no points to explore:\n{detail}"
            )
        return catalog_from({s: found[s]["reached"]["actor-0"] for s in clean}), found


def _ran_clean(outcome: dict[str, Any] | None) -> bool:
    """The actor's cycle ran without a failed message (a flush: without raising)."""
    if outcome is None or outcome["error"] or outcome["violations"]:
        return False
    return outcome["failures"].get("actor-0", 0) == 0 and bool(outcome["reached"].get("actor-0"))
