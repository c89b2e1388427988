"""What happened to every delivery of a compactor queue's messages, observed from outside the
handler — so the reliability suite can tell whether each message the handler reported
failed really came back within the retry window (contract §7 rev 3) or waited for the
queue's visibility timeout, without trusting the handler's own counts.

Every consumer process appends to one file (a single ``write`` per batch on a descriptor
opened with ``O_APPEND``, so lines of concurrent processes never interleave):

- ``r`` a message received: queue, message id, its ``ApproximateReceiveCount`` (which,
  with the id, names the delivery) and when the receive call started;
- ``d`` / ``f`` / ``x`` what became of a delivery: deleted, reported failed by the handler
  (when the handler returned), released at once by the pump (a lost delete);
- ``z`` a receive call of a queue that came back empty (its start and end): no message
  of that queue was visible at that moment.

A failed delivery waited for the visibility timeout when, after the retry window had passed
since its failure, some consumer found its queue empty before anyone received the message
again: a message whose visibility had been shortened would have been visible then.
"""

from __future__ import annotations

import bisect
import json
import math
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Between the handler's return and the moment the shortened visibility must have ended:
# the window's upper end plus this much for clocks and the emulator.
SLACK_SECONDS = 1.0
# Per (message id, receive count): (queue or outcome, when).
DeliveryEvents = dict[tuple[str, int], tuple[str, float]]


class DeliveryLedger:
    """The append side, one per consumer process."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _append(self, events: Iterable[Mapping[str, Any]]) -> None:
        text = "".join(json.dumps(event, separators=(",", ":")) + "\n" for event in events)
        if not text:
            return
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, text.encode())
        finally:
            os.close(descriptor)

    def received(self, queue: str, messages: Sequence[Mapping[str, Any]], started: float) -> None:
        self._append(
            {"e": "r", "q": queue, "m": m["MessageId"], "k": _receive_count(m), "t": started}
            for m in messages
        )

    def found_empty(self, queue: str, started: float, ended: float) -> None:
        self._append([{"e": "z", "q": queue, "s": started, "t": ended}])

    def settled(self, outcome: str, messages: Sequence[Mapping[str, Any]], at: float) -> None:
        """``outcome``: ``d`` deleted, ``f`` reported failed, ``x`` released at once."""
        self._append(
            {"e": outcome, "m": m["MessageId"], "k": _receive_count(m), "t": at} for m in messages
        )


def _receive_count(message: Mapping[str, Any]) -> int:
    return int(message["Attributes"]["ApproximateReceiveCount"])


@dataclass(frozen=True)
class QueueTiming:
    """What the queues promise: their visibility timeout, the handler's retry window's
    upper end, and the receive count after which a message goes to the DLQ."""

    visibility_timeout: float
    retry_window_max: float
    max_receive_count: int


def summarise(path: Path, timing: QueueTiming) -> dict[str, int]:
    """Per-delivery verdicts over everything ``path`` recorded.

    - ``reported_failed``: deliveries the handler reported failed;
    - ``waited_for_visibility_timeout``: of those, the ones still invisible after the retry
      window (see the module's docstring);
    - ``back_within_retry_window``: the ones seen visible again in time;
    - ``failed_into_dead_letter_queue``: failures of a message's last allowed receive — its
      next receive moves it to the DLQ, so its return cannot be observed here;
    - ``reported_after_visibility_timeout``: failures reported after the message's
      visibility timeout had already run out (a compactor stalled or slower than the
      timeout): it was visible again before the handler could act;
    - ``held_by_killed_compactors``: deliveries with no outcome — received by a process
      that was killed before it settled them; they come back after the timeout;
    - ``unreadable_ledger_lines``: lines cut short by a kill.
    """
    received, outcomes, empty, unreadable = _read_ledger(path)
    receives_of: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for (message_id, count), (_, at) in received.items():
        receives_of[message_id].append((count, at))
    polls = {queue: _EmptyPolls(spans) for queue, spans in empty.items()}

    verdicts = dict.fromkeys(
        (
            "reported_failed",
            "waited_for_visibility_timeout",
            "back_within_retry_window",
            "failed_into_dead_letter_queue",
            "reported_after_visibility_timeout",
        ),
        0,
    )
    for (message_id, count), (outcome, at) in outcomes.items():
        if outcome != "f" or (message_id, count) not in received:
            continue
        verdicts["reported_failed"] += 1
        queue, received_at = received[(message_id, count)]
        if count >= timing.max_receive_count:
            verdicts["failed_into_dead_letter_queue"] += 1
        elif at >= received_at + timing.visibility_timeout:
            verdicts["reported_after_visibility_timeout"] += 1
        else:
            again = min((t for c, t in receives_of[message_id] if c > count), default=math.inf)
            due = at + timing.retry_window_max + SLACK_SECONDS
            waited = queue in polls and polls[queue].any_between(due, again)
            verdicts["waited_for_visibility_timeout" if waited else "back_within_retry_window"] += 1
    return {
        **verdicts,
        "held_by_killed_compactors": len(received.keys() - outcomes.keys()),
        "unreadable_ledger_lines": unreadable,
    }


def _read_ledger(
    path: Path,
) -> tuple[DeliveryEvents, DeliveryEvents, dict[str, list[tuple[float, float]]], int]:
    """The ledger's lines by kind: per (message, receive count) its queue and receive time,
    and its outcome and when; per queue its empty polls; and how many lines were cut short."""
    received: DeliveryEvents = {}
    outcomes: DeliveryEvents = {}
    empty: dict[str, list[tuple[float, float]]] = defaultdict(list)
    unreadable = 0
    for line in (path.read_text() if path.exists() else "").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            unreadable += 1
            continue
        if event["e"] == "r":
            received[(event["m"], event["k"])] = (event["q"], event["t"])
        elif event["e"] == "z":
            empty[event["q"]].append((event["s"], event["t"]))
        else:
            outcomes[(event["m"], event["k"])] = (event["e"], event["t"])
    return received, outcomes, empty, unreadable


class _EmptyPolls:
    """A queue's empty receive calls, to ask: did one start after ``after`` and end before
    ``before``?"""

    def __init__(self, spans: list[tuple[float, float]]) -> None:
        spans.sort()
        self.starts = [start for start, _ in spans]
        # The earliest end among the calls from each index on.
        self.earliest_end = [end for _, end in spans]
        for index in range(len(spans) - 2, -1, -1):
            self.earliest_end[index] = min(self.earliest_end[index], self.earliest_end[index + 1])

    def any_between(self, after: float, before: float) -> bool:
        index = bisect.bisect_right(self.starts, after)
        return index < len(self.starts) and self.earliest_end[index] < before
