"""What the cycle benchmarks share: a clock of stages and emulator calls, and a recorder
that serves a cycle's row reads from memory once they were recorded.

moto's DynamoDB is far slower than the service (a projected query of one receipt takes a
quarter of a second and the server takes most of a core), and its speed swings with
whatever else runs on the machine. A timed pass whose row reads come from memory measures
the compactor, not the emulator: same requests, same answers, in the same order.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import statistics
import threading
import time
from collections import defaultdict
from typing import Any

import boto3

from receipt_chroma.compaction.lease import HEARTBEAT_THREAD_PREFIX
from receipt_dynamo import ChromaDBCollection, DynamoClient, SnapshotPointer
from receipt_dynamo.schema import table_definition
from receipt_dynamo.testing import LOCAL_CREDENTIALS
from receipt_dynamo.timestamps import now_iso


def use_local_credentials() -> None:
    """Throw-away credentials for the local moto server, unless the caller set its own."""
    for name, value in LOCAL_CREDENTIALS.items():
        os.environ.setdefault(name, value)


def create_bench_table(name: str) -> None:
    """The table as deployed, without its stream: these benchmarks build their messages
    themselves, and moto keeps every stream record in memory and copies it (with the
    whole table) on every ``TransactWriteItems``, so a stream nobody reads would only
    make the pointer transaction slower with every write the benchmark makes."""
    definition = table_definition(name)
    definition.pop("StreamSpecification", None)
    client = boto3.client("dynamodb")
    client.create_table(**definition)
    client.get_waiter("table_exists").wait(TableName=name)


def set_words_pointer(dynamo: DynamoClient, version: str) -> None:
    """Point the words collection at a benchmark's own base version, without a lease (no
    compactor runs yet)."""
    pointer = SnapshotPointer(
        collection=ChromaDBCollection.WORDS,
        version=version,
        history=(version,),
        fencing_token=0,
        updated_at=now_iso(),
    )
    dynamo.put_entities([pointer])


@dataclasses.dataclass
class Clock:
    """Stage times of a cycle, the intervals of the cycle's DynamoDB calls — on its own
    thread and on the plan's read pool, not the lease heartbeat's (on its own thread, it
    overlaps the work) — and the intervals of S3 calls on any thread (uploads and delta
    fetches run on pools the cycle waits for)."""

    stages: dict[str, float] = dataclasses.field(default_factory=dict)
    calls: list[tuple[float, float]] = dataclasses.field(default_factory=list)
    s3_calls: list[tuple[float, float]] = dataclasses.field(default_factory=list)
    _open: dict[tuple[str, int], float] = dataclasses.field(default_factory=dict)
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def install(self, dynamo: DynamoClient) -> None:
        dynamo.client.meta.events.register("before-call.dynamodb", self._before)
        dynamo.client.meta.events.register("after-call.dynamodb", self._after)

    def install_s3(self, s3: Any) -> None:
        s3.meta.events.register("before-call.s3", self._before_s3)
        s3.meta.events.register("after-call.s3", self._after_s3)

    def _before(self, **_: Any) -> None:
        self._open[("dynamodb", threading.get_ident())] = time.perf_counter()

    def _after(self, **_: Any) -> None:
        started = self._open.pop(("dynamodb", threading.get_ident()))
        if not threading.current_thread().name.startswith(HEARTBEAT_THREAD_PREFIX):
            with self._lock:
                self.calls.append((started, time.perf_counter()))

    def _before_s3(self, **_: Any) -> None:
        self._open[("s3", threading.get_ident())] = time.perf_counter()

    def _after_s3(self, **_: Any) -> None:
        started = self._open.pop(("s3", threading.get_ident()))
        with self._lock:
            self.s3_calls.append((started, time.perf_counter()))

    def on_stage(self, stage: str) -> None:
        self.stages[stage] = time.perf_counter()

    def clear(self) -> None:
        self.stages.clear()
        with self._lock:
            self.calls.clear()
            self.s3_calls.clear()

    def dynamo_seconds(self, start: float, end: float) -> float:
        """Time in [start, end] with a DynamoDB call of the cycle in flight (concurrent
        plan reads counted once)."""
        with self._lock:
            return _covered(self.calls, start, end)

    def emulator_seconds(self, start: float, end: float) -> float:
        """Time in [start, end] during which the emulator answered the cycle: the union of
        its own DynamoDB calls and every S3 call (overlapping calls counted once)."""
        with self._lock:
            return _covered([*self.calls, *self.s3_calls], start, end)


def _covered(calls: list[tuple[float, float]], start: float, end: float) -> float:
    """How much of [start, end] the intervals cover, overlaps counted once."""
    intervals = sorted((max(a, start), min(b, end)) for a, b in calls if b > start and a < end)
    total, reach = 0.0, start
    for a, b in intervals:
        if b > reach:
            total += b - max(a, reach)
            reach = b
    return total


@dataclasses.dataclass
class _Answered:
    status_code: int = 200
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


class DynamoReplay:
    """Row reads (requests naming an ``IMAGE#`` partition) recorded in one pass and served
    from memory in later passes.

    Each request keeps the list of answers it got, in order, so a cycle that reads the
    same rows twice (before and after it marks a run) is answered as it was when recorded;
    ``rewind`` starts every list again for the next pass. A request never recorded, or
    asked more often than it was, goes to the emulator and is counted as a miss. Writes,
    the lease and the pointer always go to the emulator. Install after the ``Clock``, so
    a served read still opens and closes its interval.
    """

    READS = frozenset({"Query", "GetItem", "BatchGetItem"})

    def __init__(self, dynamo: DynamoClient) -> None:
        self.mode = "off"
        self.recorded: defaultdict[tuple[str, str], list[Any]] = defaultdict(list)
        self._served: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.hits = 0
        self.misses = 0
        dynamo.client.meta.events.register("before-call.dynamodb", self._before)
        dynamo.client.meta.events.register("after-call.dynamodb", self._after)

    def rewind(self) -> None:
        self._served.clear()

    def _key(self, model: Any, params: dict[str, Any]) -> tuple[str, str] | None:
        body = params.get("body", b"")
        text = body.decode() if isinstance(body, bytes) else str(body)
        if model.name not in self.READS or "IMAGE#" not in text:
            return None
        return model.name, text

    def _before(self, model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any) -> Any:
        key = self._key(model, params)
        if key is None or self.mode == "off":
            return None
        if self.mode == "replay":
            answers, index = self.recorded.get(key, []), self._served[key]
            if index < len(answers):
                self._served[key] += 1
                self.hits += 1
                return _Answered(), copy.deepcopy(answers[index])
            self.misses += 1
            return None
        context["replay_key"] = key
        return None

    def _after(self, http_response: Any, parsed: Any, context: dict[str, Any], **_: Any) -> None:
        key = context.get("replay_key")
        if self.mode == "record" and key is not None and http_response.status_code < 300:
            self.recorded[key].append(copy.deepcopy(parsed))


def spread(values: list[float]) -> dict[str, Any]:
    """Every round, the median and the spread (max / min)."""
    return {
        "rounds": [round(v, 3) for v in values],
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        "spread_max_over_min": round(max(values) / min(values), 3) if min(values) else None,
    }
