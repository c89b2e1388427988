"""One compactor process (a container) as the explorer drives it: the stops of its schedule
at its stage callbacks and inside its AWS calls, and what each fault does to it.

- killed: from then on every AWS call of any of its threads raises ``Killed`` (including
  the ones in ``finally`` blocks and the heartbeat thread's), so it never releases its lease;
- stalled: every thread freezes — the one at the stop at once, the others (the heartbeat,
  upload workers) at their next AWS call — until the explorer thaws it;
- paused: only the thread at the stop waits; the heartbeat thread keeps the lease alive;
- failing heartbeats, an S3 error, a DynamoDB error: armed at the stop; the calls they hit
  raise the ``ClientError`` AWS would answer with.

Points are numbered per process: ``stage:<name>#n`` for the n-th time the cycle announced
that stage, ``before|after:<service>.<Operation>#n`` for the n-th such call within the
*scope* (the snapshot sink: from the pointer swap to the end of the cycle — the swap,
derived caches, marks, retention and release; the server sink: from its first stage on).
Background heartbeats are left out of the numbering (their count depends on timing).
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from receipt_compaction_tools.testing.explorer.calls import Call, hook
from receipt_compaction_tools.testing.explorer.exceptions import Killed
from receipt_compaction_tools.testing.explorer.models import FaultKind, Point, Stop, Where

SWAP = "dynamodb.TransactWriteItems"
OCCURRENCE = "explorer.occurrence"
ERROR_CODES = {"s3": "InternalError", "dynamodb": "InternalServerError"}
_FAULT_SERVICE = {FaultKind.S3_ERROR: "s3", FaultKind.DYNAMO_ERROR: "dynamodb"}


class Scope(StrEnum):
    FROM_SWAP = "from_swap"  # numbering starts at the pointer transaction
    FROM_FIRST_STAGE = "from_first_stage"  # numbering starts at the first stage


def injected_error(call: Call, what: str) -> ClientError:
    response: Any = {
        "Error": {
            "Code": ERROR_CODES[call.service],
            "Message": f"injected by the explorer: {what}",
        },
        "ResponseMetadata": {"HTTPStatusCode": 500},
    }
    return ClientError(response, call.operation)


class SimulatedProcess:
    def __init__(
        self,
        name: str,
        stops: Sequence[Stop],
        scope: Scope,
        *,
        on_block: Callable[[Stop], None],
    ) -> None:
        self.name = name
        self.scope = scope
        self.pending: deque[Stop] = deque(stops)
        self.reached: list[Point] = []  # every numbered point, in order (discovery)
        # The points reached before the first restart: only those can be stops (a restart
        # clears them), so only those make the catalog.
        self.reached_as_scheduled: list[Point] | None = None
        self._on_block = on_block
        self._counts: Counter[tuple[Where, str]] = Counter()
        self._in_scope = False
        self.main_thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._running = threading.Event()  # cleared while stalled
        self._running.set()
        self._paused: threading.Event | None = None
        self.killed = False
        self._heartbeats_fail = False
        self._next_error: set[str] = set()  # services whose next call errors

    # --- wiring -------------------------------------------------------------------------

    def attach(self, client: Any) -> None:
        """Drive every call of ``client`` (register after any observer of the same client,
        so that observers see a call's effect even when the process dies right after)."""
        hook(client, before=self._before, after=self._after)

    def on_stage(self, stage: str) -> None:
        """The cycle's ``on_stage`` callback."""
        self._check_alive()
        with self._lock:
            if self.scope is Scope.FROM_FIRST_STAGE:
                self._in_scope = True
            point = self._number(Where.STAGE, stage)
        self._arrive(point)

    # --- the explorer's side ------------------------------------------------------------

    def resume(self) -> None:
        """Thaw a stalled process or release a paused thread."""
        self._running.set()
        with self._lock:
            paused, self._paused = self._paused, None
        if paused is not None:
            paused.set()

    def restart(self, main_thread: threading.Thread) -> None:
        """The same container's next invocation: no stops, no faults, run from
        ``main_thread`` (its working copy stays on disk). Never for a killed process."""
        with self._lock:
            if self.reached_as_scheduled is None:
                self.reached_as_scheduled = list(self.reached)
            self.pending.clear()
            self._heartbeats_fail = False
            self._next_error.clear()
            self.main_thread = main_thread
        self.resume()

    @property
    def stoppable(self) -> list[Point]:
        """The points a stop of this process's schedule could have been at."""
        if self.reached_as_scheduled is None:
            return list(self.reached)
        return self.reached_as_scheduled

    def kill(self) -> None:
        self.killed = True
        self.resume()

    # --- hooks --------------------------------------------------------------------------

    def _before(self, call: Call, context: dict[str, Any]) -> None:
        self._check_alive()
        self._wait_while_stalled()
        background = call.is_heartbeat and threading.current_thread() is not self.main_thread
        point = None
        with self._lock:
            if self.scope is Scope.FROM_SWAP and call.name == SWAP:
                self._in_scope = True
            if self._in_scope and not background:
                point = self._number(Where.BEFORE, call.name)
                context[OCCURRENCE] = point.occurrence
        if point is not None:
            self._arrive(point)
        self._inject(call, background)

    def _after(self, call: Call, context: dict[str, Any], status: int, parsed: Any) -> None:
        self._check_alive()
        occurrence = context.get(OCCURRENCE)
        if occurrence is not None:
            point = Point(Where.AFTER, call.name, int(occurrence))
            with self._lock:
                self.reached.append(point)
            self._arrive(point)
        self._wait_while_stalled()

    def _number(self, where: Where, name: str) -> Point:
        self._counts[(where, name)] += 1
        point = Point(where, name, self._counts[(where, name)])
        self.reached.append(point)
        return point

    # --- stops and faults -----------------------------------------------------------------

    def _arrive(self, point: Point) -> None:
        with self._lock:
            if not self.pending or self.pending[0].point != point:
                return
            stop = self.pending.popleft()
        fault = stop.fault
        if fault is FaultKind.KILL:
            self.kill()
            raise Killed(f"{self.name} killed at {point}")
        if fault is FaultKind.HEARTBEAT_FAILS:
            self._heartbeats_fail = True
        elif fault in _FAULT_SERVICE:
            self._next_error.add(_FAULT_SERVICE[fault])
        elif fault is FaultKind.STALL:
            self._running.clear()
            self._on_block(stop)
            self._wait_while_stalled()
        elif fault is FaultKind.PAUSE:
            paused = threading.Event()
            with self._lock:
                self._paused = paused
            self._on_block(stop)
            paused.wait()
            self._check_alive()

    def _inject(self, call: Call, background: bool) -> None:
        if self._heartbeats_fail and call.is_heartbeat:
            raise injected_error(call, "heartbeat fails")
        if background:
            return  # "the next call" is the cycle's, never a heartbeat's timing
        with self._lock:
            hit = call.service in self._next_error
            self._next_error.discard(call.service)
        if hit:
            raise injected_error(call, f"{call.service} error on the next call")

    def _wait_while_stalled(self) -> None:
        self._running.wait()
        self._check_alive()

    def _check_alive(self) -> None:
        if self.killed:
            raise Killed(f"{self.name} is dead")
