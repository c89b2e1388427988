"""Running one schedule: the world, the actors advanced in the schedule's order, then the
system left to settle (restarts, redelivery of what was not acknowledged, one last change
so that the last cycle publishes and runs retention) and the invariants checked.

Waits, so that each fault means what it says:
- after an actor stalls, the explorer waits until its lease has run out (a stall *past*
  the lease);
- before a stalled actor resumes, it waits until twice the lease has passed since any
  other actor last moved the pointer (whatever was published meanwhile is then older than
  the orphan horizon — the stale holder's retention could delete it);
- a killed actor's lease runs out while the next one waits for it (``lock_wait_seconds``).
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from receipt_chroma.compaction import CycleResult
from receipt_compaction_tools.testing.explorer.actors import Actor, ActorState, Container
from receipt_compaction_tools.testing.explorer.actors import new_container as make_container
from receipt_compaction_tools.testing.explorer.exceptions import Killed
from receipt_compaction_tools.testing.explorer.invariants import Checks
from receipt_compaction_tools.testing.explorer.messages import QueuedMessage
from receipt_compaction_tools.testing.explorer.models import (
    ActorKind,
    FaultKind,
    Schedule,
    ScheduleOutcome,
    Sink,
    Stop,
    Violation,
    WorldKind,
)
from receipt_compaction_tools.testing.explorer.observers import History
from receipt_compaction_tools.testing.explorer.origin import capture, plant
from receipt_compaction_tools.testing.explorer.scenario import Scenario, build_scenario
from receipt_compaction_tools.testing.explorer.world import ExplorerWorld, Services, Timing
from receipt_compaction_tools.testing.spec_oracle import TableModel

# Longer than a cycle can legitimately wait: a delta reader helper left stuck by an earlier
# schedule is killed after its answer timeout (90 s) and the actor's read then fails.
ADVANCE_TIMEOUT_SECONDS = 240
# Rounds of redelivery before messages still failing are a violation (a loaded machine may
# time a call out now and then; a stuck collection fails every round).
SETTLE_ROUNDS = 6
ORIGIN_ATTEMPTS = 3


@contextmanager
def killed_threads_quiet() -> Iterator[None]:
    """A killed process's heartbeat thread ends with ``Killed``: expected, not reported."""
    previous = threading.excepthook

    def hook(args: Any) -> None:
        if args.exc_type is not None and issubclass(args.exc_type, Killed):
            return
        previous(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = previous


def waiting_threads(frames_per_thread: int = 12) -> str:
    """Every other thread's innermost frames: where a hung actor (and whatever it waits
    for) is stuck."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    me = threading.get_ident()
    stacks = []
    for ident, frame in sys._current_frames().items():
        if ident == me:
            continue
        lines = traceback.format_stack(frame)[-frames_per_thread:]
        stacks.append(f"--- thread {names.get(ident, ident)}\n{''.join(lines)}")
    return "\n".join(stacks)


def _no_block(_: Stop) -> None:
    return None


@dataclass(frozen=True)
class Publish:
    """A publish while settling: when its cycle started, S3 just before, and whether its
    retention was skipped or failed."""

    started: float
    before: dict[str, datetime]
    retention_skipped: bool


class ScheduleRun:
    def __init__(self, schedule: Schedule, services: Services, timing: Timing) -> None:
        self.schedule = schedule
        self.timing = timing
        self.scenario: Scenario = build_scenario(schedule.world)
        self.world = ExplorerWorld(services, self.scenario, schedule.sink, timing)
        self.history = History(self.world.efs_root)
        self.checks = Checks(self.world, self.scenario, self.history)
        self.outcome = ScheduleOutcome(schedule)
        self.actors: list[Actor] = []
        self.pending: dict[str, QueuedMessage] = {}
        self.reasons: dict[str, str] = {}

    # --- the whole run ----------------------------------------------------------------------

    def run(self) -> ScheduleOutcome:
        started = time.perf_counter()
        with killed_threads_quiet():
            try:
                self._run()
            finally:
                for actor in self.actors:
                    actor.stop()
                    self.outcome.reached[actor.name] = [str(p) for p in actor.process.stoppable]
                self.world.close()
        self.outcome.violations = [
            *self.checks.violations,
            *self.history.violations,
            *self.outcome.violations,
        ]
        self.outcome.seconds = time.perf_counter() - started
        return self.outcome

    def _run(self) -> None:
        self.world.create()
        if self.schedule.world is WorldKind.BASE:
            self._publish_origin()
        else:
            self.world.write_rows(TableModel(), self.scenario.origin)
        self.world.write_rows(self.scenario.origin, self.scenario.table)
        # Every batch is on the queue; a batch no actor of the schedule takes is delivered
        # while the system settles.
        self.pending = {m.message_id: m for batch in self.scenario.batches for m in batch}
        batches = iter(self.scenario.batches)
        for index, spec in enumerate(self.schedule.actors):
            batch = next(batches) if spec.kind is ActorKind.CYCLE else ()
            self.actors.append(
                Actor(index, spec.kind, spec.stops, batch, world=self.world, history=self.history)
            )
        for index in self.schedule.order:
            if not self._advance(self.actors[index]):
                return
        for actor in self.actors:
            self.outcome.unreached += [
                f"{actor.name} {stop.point} {stop.fault.value}" for stop in actor.process.pending
            ]
            if actor.kind is ActorKind.CYCLE:
                result = actor.result
                failed = len(result.failures) if isinstance(result, CycleResult) else None
                self.outcome.failures[actor.name] = failed
        self._settle()

    def _publish_origin(self) -> None:
        """The base world's first version: published by a real cycle the first time, then
        copied (snapshot sink; a server collection is cheap to fill by a cycle)."""
        services = self.world.services
        if self.schedule.sink is Sink.SNAPSHOT and services.origin is not None:
            plant(services.origin, self.world)
            pointer = self.checks.pointer()
            assert pointer is not None, "the copied origin has no pointer"
            self.history.seed(pointer.version)
            return
        container = self._container("origin", ActorKind.CYCLE)
        table = TableModel()
        for model, batch in self.scenario.origin_steps:
            self.world.write_rows(table, model)
            table = model
            self._publish_origin_step(container, batch)
        if self.schedule.sink is Sink.SNAPSHOT:
            services.origin = capture(self.world, services.root)

    def _publish_origin_step(self, container: Container, batch: tuple[QueuedMessage, ...]) -> None:
        """One step of the origin, redelivered while it fails (a loaded machine may time a
        call out): the world must be what the scenario says before the schedule starts."""
        why = ""
        for _ in range(ORIGIN_ATTEMPTS):
            result = container.run(batch)
            assert isinstance(result, CycleResult), "the origin is published by cycles"
            if not result.failures and (
                self.world.sink is Sink.SERVER or result.published_version is not None
            ):
                return
            why = f"{result.cause} {result.failures}"
        raise RuntimeError(
            f"the base world's origin step {[m.message_id for m in batch]} was not published "
            f"in {ORIGIN_ATTEMPTS} attempts; last: {why}"
        )

    def _container(self, name: str, kind: ActorKind) -> Container:
        """A process with no stops, driven from this thread."""
        return make_container(
            self.world,
            self.history,
            name,
            kind,
            (),
            main_thread=threading.current_thread(),
            on_block=_no_block,
        )

    # --- the schedule's order ---------------------------------------------------------------

    def _advance(self, actor: Actor) -> bool:
        stalled = actor.blocked_at is not None and actor.blocked_at.fault is FaultKind.STALL
        if actor.state is ActorState.BLOCKED and stalled:
            self._let_stale_versions_age(actor)
        state = actor.advance(ADVANCE_TIMEOUT_SECONDS)
        if state is ActorState.BLOCKED and actor.blocked_at is not None:
            if actor.blocked_at.fault is FaultKind.STALL:
                self.world.wait_for_lease_expiry()
            return True
        if state is ActorState.HUNG:
            self.outcome.violations.append(
                Violation(
                    "HUNG",
                    f"{actor.name} neither stopped nor ended in {ADVANCE_TIMEOUT_SECONDS} s; "
                    f"where its threads wait:\n{waiting_threads()}",
                )
            )
            return False
        if state is ActorState.RAISED:
            self._raised(actor)
        if state is ActorState.DONE:
            self._acknowledge(actor.name, actor.batch, actor.result)
        return True

    def _let_stale_versions_age(self, actor: Actor) -> None:
        published = self.history.last_commit_by_other(actor.name, actor.blocked_since)
        if published is not None:
            resume_at = published + self.timing.orphan_age_seconds + 0.1
            time.sleep(max(0.0, resume_at - time.time()))

    def _raised(self, actor: Actor) -> None:
        """A flush that raises was refused (the operator sees why). A cycle that raises
        fails all its messages, as the handler reports it; the invariants judge the rest."""
        error = actor.error
        what = "flush refused" if actor.kind is ActorKind.FLUSH else "cycle raised"
        self.outcome.notes.append(f"{actor.name} {what}: {type(error).__name__}: {error}")
        for message in actor.batch:
            self.reasons[message.message_id] = f"the cycle raised {type(error).__name__}"

    def _acknowledge(
        self,
        actor: str,
        batch: tuple[QueuedMessage, ...] | list[QueuedMessage],
        result: CycleResult | dict[str, Any] | None,
        model: TableModel | None = None,
    ) -> None:
        if not isinstance(result, CycleResult):
            return
        failed = {failure.message_id: failure.reason for failure in result.failures}
        acked = [m for m in batch if m.message_id not in failed]
        self.reasons |= failed
        for message in acked:
            self.pending.pop(message.message_id, None)
        self.checks.acknowledged(actor, acked, model or self.scenario.table)

    # --- settling ---------------------------------------------------------------------------

    def _settle(self) -> None:
        """What was not acknowledged is redelivered, with one more change, until none is
        left: a surviving container keeps its warm copy (its process restarted, faults
        gone); a killed one is replaced. I6 judges the retention of the last publish; when
        that retention was skipped (the deadline came too close) or failed, another change
        gives the next holder its turn."""
        containers: list[Container] = []
        for actor in self.actors:
            if actor.kind is not ActorKind.CYCLE:
                continue
            if actor.state is ActorState.DEAD:
                containers.append(self._container(f"{actor.name}-restarted", ActorKind.CYCLE))
            else:
                actor.process.restart(threading.current_thread())
                containers.append(actor.container)
        if not containers:
            containers.append(self._container("settler", ActorKind.CYCLE))
        table = self.scenario.table
        publish: Publish | None = None
        for model, message in self.scenario.final_changes:
            self.world.write_rows(table, model)
            table = model
            self.pending[message.message_id] = message
            publish = self._deliver(containers, model)
            if self.pending or publish is None or not publish.retention_skipped:
                break
            self.outcome.notes.append("the last publish did not finish retention: one more change")
        self._judge(table, publish)

    def _deliver(self, containers: list[Container], model: TableModel) -> Publish | None:
        """Cycles until nothing is pending (at most ``SETTLE_ROUNDS``); the last publish."""
        publish = None
        for round_number in range(SETTLE_ROUNDS):
            if not self.pending:
                break
            container = containers[round_number % len(containers)]
            batch = sorted(self.pending.values(), key=lambda m: m.message_id)
            before = self.checks.listing() if self.world.sink is Sink.SNAPSHOT else {}
            started = time.time()
            try:
                result = container.run(batch)
            except Exception as error:  # as the handler reports it: every message failed
                self.outcome.notes.append(f"{container.name} cycle raised: {error!r}")
                self.reasons |= {m.message_id: f"the cycle raised {error!r}" for m in batch}
                continue
            self._acknowledge(container.name, batch, result, model)
            if isinstance(result, CycleResult) and result.published_version is not None:
                publish = Publish(started, before, _retention_not_done(result))
                if publish.retention_skipped:
                    why = [e for e in result.derived_cache_errors if e.startswith("retention")]
                    self.outcome.notes.append(f"{container.name} retention not done: {why}")
        return publish

    def _judge(self, table: TableModel, publish: Publish | None) -> None:
        if self.pending:
            stuck = "; ".join(
                f"{mid}: {self.reasons.get(mid, '?')}" for mid in sorted(self.pending)
            )
            self.outcome.violations.append(
                Violation("SETTLE", f"still failing after {SETTLE_ROUNDS} rounds: {stuck}")
            )
        self.checks.settled(table, converged=not self.pending)
        if self.world.sink is not Sink.SNAPSHOT or self.pending:
            return
        if publish is None:
            self.outcome.notes.append("nothing was published while settling: I6 not judged")
            return
        if publish.retention_skipped:
            self.outcome.violations.append(
                Violation(
                    "I6",
                    f"retention skipped or failed in the last publish of each of "
                    f"{len(self.scenario.final_changes)} changes in a row",
                )
            )
        self.outcome.retention_exercised = self.checks.retention(publish.before, publish.started)


def _retention_not_done(result: CycleResult) -> bool:
    """Skipped (RetentionSkipped, contract §9 rev 3; absent before revision 3) or failed
    (an S3 call of it timed out on a loaded machine: the cycle names it among its derived
    cache errors); either way I6 waits for the next holder's retention."""
    skipped = bool(getattr(result, "retention_skipped", 0))
    return skipped or any(error.startswith("retention") for error in result.derived_cache_errors)


def run_schedule(
    schedule: Schedule, services: Services, timing: Timing | None = None
) -> ScheduleOutcome:
    return ScheduleRun(schedule, services, timing or Timing()).run()
