"""An actor: one compactor process of a schedule — a cycle of its own batch in its own
container, or an operator's ``snapshot flush`` — running in its own thread, advanced by the
explorer one step at a time (start or resume, then run until its next blocking stop, its
death or its end)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from receipt_chroma.compaction import CompactionCycle, CycleResult
from receipt_chroma.snapshots import admin
from receipt_compaction_tools.testing.explorer.exceptions import Killed
from receipt_compaction_tools.testing.explorer.messages import COLLECTION, QueuedMessage
from receipt_compaction_tools.testing.explorer.models import ActorKind, Sink, Stop
from receipt_compaction_tools.testing.explorer.observers import History
from receipt_compaction_tools.testing.explorer.process import Scope, SimulatedProcess
from receipt_compaction_tools.testing.explorer.world import ExplorerWorld
from receipt_dynamo_stream import StreamMessage


class ActorState(StrEnum):
    NEW = "new"
    RUNNING = "running"
    BLOCKED = "blocked"  # at a stall or a pause
    DONE = "done"
    DEAD = "dead"  # killed
    RAISED = "raised"  # its cycle raised instead of returning a result
    HUNG = "hung"  # did not reach a stop or its end in time


def parsed(messages: Sequence[QueuedMessage]) -> list[tuple[str, StreamMessage]]:
    """The batch as the handler hands it to a cycle (each body parsed)."""
    return [(m.message_id, StreamMessage.from_json(m.body)) for m in messages]


@dataclass
class Container:
    """A compactor process in its container: its own hooked clients and either its cycle
    (which keeps the warm copy between cycles) or an operator's flush."""

    name: str
    process: SimulatedProcess
    cycle: CompactionCycle | None = None
    flush: Callable[[], dict[str, Any]] | None = None

    def run(self, messages: Sequence[QueuedMessage]) -> CycleResult | dict[str, Any]:
        if self.cycle is not None:
            return self.cycle.run(parsed(messages))
        assert self.flush is not None
        return self.flush()


def new_container(
    world: ExplorerWorld,
    history: History,
    name: str,
    kind: ActorKind,
    stops: Sequence[Stop],
    *,
    main_thread: threading.Thread,
    on_block: Callable[[Stop], None],
) -> Container:
    """A new process in a new container (nothing on its local disk)."""
    scope = Scope.FROM_FIRST_STAGE if world.sink is Sink.SERVER else Scope.FROM_SWAP
    process = SimulatedProcess(name, stops, scope, on_block=on_block)
    process.main_thread = main_thread
    work_dir = world.new_container()
    dynamo = world.dynamo()
    s3 = world.s3_client()
    for client in (dynamo.client, s3):
        # Observers first: they see what a call did even when the process dies right after.
        history.attach(client, name, lambda: threading.current_thread() is process.main_thread)
        process.attach(client)

    def on_stage(stage: str) -> None:
        history.look_at_efs(f"{name} at {stage}")
        process.on_stage(stage)

    container = Container(name, process)
    if kind is ActorKind.CYCLE:
        container.cycle = CompactionCycle(
            world.config(work_dir), COLLECTION, dynamo=dynamo, s3_client=s3, on_stage=on_stage
        )
    else:
        container.flush = lambda: admin.flush(
            dynamo,
            world.name,
            COLLECTION,
            lease=lambda: world.lease(dynamo),
            work_dir=work_dir,
            settings=world.snapshot_settings(),
            efs=world.efs(),
            s3_client=s3,
        )
    return container


class Actor:
    def __init__(
        self,
        index: int,
        kind: ActorKind,
        stops: Sequence[Stop],
        batch: Sequence[QueuedMessage],
        *,
        world: ExplorerWorld,
        history: History,
    ) -> None:
        self.index = index
        self.name = f"actor-{index}"
        self.kind = kind
        self.batch = tuple(batch)
        self.thread = threading.Thread(target=self._main, name=self.name, daemon=True)
        self.container = new_container(
            world,
            history,
            self.name,
            kind,
            stops,
            main_thread=self.thread,
            on_block=self._blocked,
        )
        self.state = ActorState.NEW
        self.result: CycleResult | dict[str, Any] | None = None
        self.error: BaseException | None = None
        self.blocked_at: Stop | None = None
        self.blocked_since = 0.0
        self._changed = threading.Condition()

    @property
    def process(self) -> SimulatedProcess:
        return self.container.process

    def advance(self, timeout: float) -> ActorState:
        """Start or resume the actor and wait until it blocks again, ends or dies."""
        with self._changed:
            if self.state is ActorState.NEW:
                self.state = ActorState.RUNNING
                self.thread.start()
            elif self.state is ActorState.BLOCKED:
                self.state = ActorState.RUNNING
                self.blocked_at = None
                self.process.resume()
            else:
                return self.state
            if not self._changed.wait_for(lambda: self.state is not ActorState.RUNNING, timeout):
                self.state = ActorState.HUNG
            return self.state

    def stop(self) -> None:
        """End the actor's threads (a kill; used when a schedule is abandoned or ends)."""
        self.process.kill()
        if self.thread.is_alive():
            self.thread.join(timeout=30)

    def _blocked(self, stop: Stop) -> None:
        with self._changed:
            self.state = ActorState.BLOCKED
            self.blocked_at = stop
            self.blocked_since = time.time()
            self._changed.notify_all()

    def _main(self) -> None:
        state = ActorState.DONE
        try:
            self.result = self.container.run(self.batch)
        except Killed:
            state = ActorState.DEAD
        except BaseException as error:  # reported as a violation: a cycle must return
            self.error = error
            state = ActorState.RAISED
        with self._changed:
            if self.state is not ActorState.HUNG:
                self.state = state
            self._changed.notify_all()
