"""Running schedules in worker processes (each with its own Chroma client state and
threads), all against the run's one moto server and one Chroma server."""

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
from receipt_compaction_tools.testing.explorer.models import Schedule, ScheduleOutcome
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
_state: dict[str, Any] = {}


def _init_worker(env: dict[str, str], chroma_port: int | None, timing: Timing) -> None:
    """Each worker: the run's environment, its own deltas and scratch directory."""
    os.environ.update(env)
    logging.basicConfig(level=logging.CRITICAL)
    root = Path(tempfile.mkdtemp(prefix="explore-worker-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    server = None
    if chroma_port is not None:  # the parent's server, addressed by its port (not started here)
        server = LocalChromaServer(root / "chroma-of-the-parent", port=chroma_port)
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
    server, ``chroma_port`` at its Chroma server (needed for the server sink)."""

    def __init__(
        self,
        aws_env: dict[str, str],
        *,
        chroma_port: int | None,
        timing: Timing,
        workers: int,
        progress: Progress | None = None,
    ) -> None:
        self.env = {**aws_env, **CLIENT_ENV}
        self.chroma_port = chroma_port
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
            initargs=(self.env, self.chroma_port, self.timing),
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

    def discover(self, sinks: Sequence[Any]) -> tuple[Catalog, dict[Schedule, dict[str, Any]]]:
        """The catalog of points, from clean runs (themselves checked schedules)."""
        clean = discovery_schedules(sinks)
        found = self.run(clean)
        return catalog_from({s: found[s]["reached"]["actor-0"] for s in clean}), found
