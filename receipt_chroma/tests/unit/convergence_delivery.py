"""The convergence model's delivery and check (``test_convergence_model``): messages
built by the real stream code from the table's stream records, queued, duplicated,
redelivered and delivered in batches to real ``CompactionCycle``s with faults; the final
drain; and, at teardown, the published collections against the independent oracle."""

from __future__ import annotations

import dataclasses
import random
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from convergence_world import (
    BUCKET,
    CLEAN_ROUNDS_MAX,
    DIMENSION,
    FAULTS,
    Aws,
    ChromaWriteFaults,
    Delivery,
    Fault,
    Shape,
    World,
    count,
    describe_message,
    describe_runs,
)
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from receipt_chroma.compaction import CompactionCycle
from receipt_compaction_tools.testing import spec_oracle as oracle
from receipt_dynamo_stream import StreamMessage, build_messages


class ConvergenceDelivery(RuleBasedStateMachine):
    """The state machine's queues, cycles and check; ``ConvergenceMachine`` adds the
    rules that edit the table."""

    def __init__(self, aws: Aws, root: Path, faults: ChromaWriteFaults) -> None:
        super().__init__()
        self.faults = faults
        self.world = self.new_world(aws, root)
        self.model = oracle.TableModel()
        self.written: dict[tuple[str, str], dict[str, Any]] = {}
        self.shapes: dict[tuple[str, int], Shape] = {}
        self.all_runs: dict[tuple[str, int], list[oracle.RunRow]] = {}
        self.run_floor: dict[tuple[str, int], datetime] = {}
        self.missing_deltas: list[tuple[str, bytes]] = []
        self.queues: dict[str, dict[str, StreamMessage]] = {c: {} for c in oracle.COLLECTIONS}
        self.acked: dict[str, list[StreamMessage]] = {c: [] for c in oracle.COLLECTIONS}
        self.reasons: dict[str, str] = {}
        self.cycles: dict[tuple[str, int], CompactionCycle] = {}
        self.fault: Fault = Fault()
        self.deliveries: list[Delivery] = []
        self.message_count = 0
        self.edit_count = 0
        self.rng = random.Random(0)
        self.drain_faults: list[Fault] = []

    def new_world(self, aws: Aws, root: Path) -> World:
        """The example's world (the server-sink variant puts the compactor's sink there)."""
        return World(aws, root)

    # --- rules: delivery -----------------------------------------------------------------

    @precondition(lambda self: bool(self.missing_deltas))
    @rule()
    def upload_missing_deltas(self) -> None:
        for key, body in self.missing_deltas:
            self.world.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        self.missing_deltas = []

    @rule(
        collection=st.sampled_from(oracle.COLLECTIONS),
        container=st.sampled_from([0, 0, 1]),
        fault=st.one_of(st.just(Fault()), FAULTS),
    )
    def deliver(self, collection: str, container: int, fault: Fault) -> None:
        """Some of the queued messages (and an old one again) in one cycle."""
        self.pump()
        queue = list(self.queues[collection].items())
        if not queue:
            return
        batch = self.rng.sample(queue, self.rng.randint(1, len(queue)))
        batch += self.redeliveries(collection)
        self.rng.shuffle(batch)
        self.run_cycle(collection, container, batch, fault)

    def pump(self) -> None:
        """Messages from the stream records appended since the last pump, via SQS bodies;
        about one in four is sent twice (at-least-once delivery)."""
        built = build_messages(self.world.stream_records())
        assert not built.unparseable, [str(error) for _, error in built.unparseable]
        for _, message in built.messages:
            copies = 2 if self.rng.random() < 0.25 else 1
            for _ in range(copies):
                self.enqueue(StreamMessage.from_json(message.to_json()))

    def enqueue(self, message: StreamMessage) -> str:
        self.message_count += 1
        message_id = f"m{self.message_count}"
        self.queues[message.collection.value][message_id] = message
        return message_id

    def redeliveries(self, collection: str) -> list[tuple[str, StreamMessage]]:
        """Now and then an already processed message comes back (new message id)."""
        acked = self.acked[collection]
        if not acked or self.rng.random() < 0.6:
            return []
        message = self.rng.choice(acked)
        return [(self.enqueue(message), message)]

    def cycle(self, collection: str, container: int) -> CompactionCycle:
        key = (collection, container)
        if key not in self.cycles:
            config = dataclasses.replace(
                self.world.config, work_dir=self.world.root / f"work-{container}"
            )
            self.cycles[key] = CompactionCycle(
                config,
                collection,
                dynamo=self.world.dynamo,
                s3_client=self.world.s3,
                on_stage=lambda stage: self.on_stage(collection, stage),
            )
        return self.cycles[key]

    def on_stage(self, collection: str, stage: str) -> None:
        if stage == "applied" and self.fault.kind == "lease":
            self.world.steal_lease(collection)

    def run_cycle(
        self,
        collection: str,
        container: int,
        batch: list[tuple[str, StreamMessage]],
        fault: Fault,
    ) -> None:
        self.fault = fault
        self.faults.arm(fault)
        started = time.perf_counter()
        try:
            result = self.cycle(collection, container).run(batch)
        finally:
            count("ms cycle total", int((time.perf_counter() - started) * 1000))
            self.faults.disarm()
            self.fault = Fault()
        count("cycles")
        for stage, ms in result.timings_ms.items():
            count(f"ms {stage}", int(ms))
        count(f"fault {fault.kind}")
        count("chroma faults fired", int(self.faults.fired))
        count("messages delivered", len(batch))
        count("messages failed", len(result.failures))
        count("versions published", int(result.published_version is not None))
        batch_ids = {message_id for message_id, _ in batch}
        failed = {f.message_id: f.reason for f in result.failures}
        assert set(failed) <= batch_ids, f"failures name ids not in the batch: {failed}"
        queue = self.queues[collection]
        for message_id, message in batch:
            if message_id in failed:
                self.reasons[message_id] = failed[message_id]
            else:
                queue.pop(message_id, None)
                self.reasons.pop(message_id, None)
                self.acked[collection].append(message)
        self.deliveries.append(
            Delivery(
                collection,
                container,
                [f"{message_id} {describe_message(message)}" for message_id, message in batch],
                str(fault),
                sorted(set(failed.values())),
                None if result.cause is None else str(result.cause),
                result.published_version,
                describe_runs(result),
            )
        )

    def drain(self) -> None:
        """Every queued message until the queues are empty. The first round's cycles may
        still see faults (``drain_faults``) and deltas not yet uploaded; later rounds see
        neither. Each round shuffles the queue, adds redeliveries and may split it across
        two cycles."""
        self.pump()  # the table does not change while draining
        faults = list(self.drain_faults)
        for round_number in range(1 + CLEAN_ROUNDS_MAX):
            if round_number == 1:
                self.upload_missing_deltas()
            if round_number > 0 and not any(self.queues.values()):
                break
            collections = list(oracle.COLLECTIONS)
            self.rng.shuffle(collections)
            for collection in collections:
                batch = list(self.queues[collection].items()) + self.redeliveries(collection)
                if not batch:
                    continue
                self.rng.shuffle(batch)
                cut = self.rng.randint(1, len(batch)) if self.rng.random() < 0.15 else len(batch)
                for part in (batch[:cut], batch[cut:]):
                    if part:
                        fault = faults.pop(0) if faults and round_number == 0 else Fault()
                        self.run_cycle(collection, self.rng.choice([0, 0, 1]), part, fault)
        self.pump()
        stuck = {
            message_id: (message.entity_type.value, message.event_name.value, reason)
            for queue in self.queues.values()
            for message_id, message in queue.items()
            for reason in [self.reasons.get(message_id, "never delivered")]
        }
        assert not stuck, (
            f"messages still failing after {CLEAN_ROUNDS_MAX} rounds without faults: "
            f"{stuck}\n{self.describe()}"
        )

    # --- the check -----------------------------------------------------------------------

    def describe(self) -> str:
        lines = ["model:"]
        for receipt in self.model.receipts.values():
            lines.append(
                f"  {receipt.key} exists={receipt.exists} lines={sorted(receipt.lines)} "
                f"words={sorted(receipt.words)} metadata={receipt.metadata}"
            )
            lines += [f"    label {row}" for row in receipt.labels.values()]
            lines += [
                f"    run {run.run_id[:8]} created_at={run.created_at} "
                f"lines={sorted(run.line_ids)} words={sorted(run.word_ids)}"
                for run in receipt.runs.values()
            ]
        lines.append(
            "cycles (collection, container, fault, failures, cause, version; batch; runs):"
        )
        for d in self.deliveries[-40:]:
            lines.append(
                f"  {d.collection} c{d.container} fault={d.fault} failed={d.failed} "
                f"cause={d.cause} published={d.published}"
            )
            lines.append(f"    batch: {d.batch}")
            lines.append(f"    runs: {d.runs}")
        return "\n".join(lines)

    def run_name(self, key: tuple[str, int], run_id: str) -> str:
        for run in self.all_runs.get(key, []):
            if run.run_id == run_id:
                return f"{run_id[:8]}({run.created_at})"
        return run_id

    def nearest_run(self, record_id: str, vector: list[float]) -> tuple[str | None, float]:
        """Which run's vector for ``record_id`` the record holds (by distance)."""
        _, image_id, receipt_id, _, _ = oracle.parse_record_id(record_id)
        best: tuple[str | None, float] = (None, float("inf"))
        for run in self.all_runs.get((image_id, receipt_id), []):
            expected = oracle.embedding(run.run_id, record_id, DIMENSION)
            distance = max(abs(a - b) for a, b in zip(expected, vector, strict=True))
            if distance < best[1]:
                best = (run.run_id, distance)
        return best

    def compare(self, collection: str) -> list[str]:
        expected = oracle.expected_collection(self.model, collection)
        actual = self.world.published(collection)
        if actual is None:
            return [] if not expected else [f"{collection}: never published; expected {expected}"]
        count(f"{collection} records compared", len(expected))
        count(f"examples without {collection} records", int(not expected))
        if collection == "words":
            for receipt in self.model.receipts.values():
                for line_id, word_id in receipt.words:
                    record_id = oracle.word_record_id(*receipt.key, line_id, word_id)
                    stamps = [
                        row.timestamp_added
                        for (label_line, label_word, _), row in receipt.labels.items()
                        if (label_line, label_word) == (line_id, word_id) and row.valid
                    ]
                    if record_id in expected and len(stamps) > 1:
                        count("words with competing labels")
                        if max(stamps) != oracle.greatest_timestamp(stamps):
                            count("words where string order != instant order")
        count(
            f"{collection} label/merchant keys compared",
            sum(len(r.metadata) for r in expected.values()),
        )
        problems = []
        for record_id in sorted(set(expected) - set(actual)):
            want = expected[record_id]
            problems.append(f"missing {record_id} (expected from run {want.run_id[:8]})")
        for record_id in sorted(set(actual) - set(expected)):
            held, _ = self.nearest_run(record_id, actual[record_id].embedding)
            problems.append(f"unexpected {record_id} (holds run {held and held[:8]})")
        for record_id in sorted(set(expected) & set(actual)):
            want, got = expected[record_id], actual[record_id]
            _, image_id, receipt_id, _, _ = oracle.parse_record_id(record_id)
            key = (image_id, receipt_id)
            held, distance = self.nearest_run(record_id, got.embedding)
            if held != want.run_id or distance > 1e-6:
                problems.append(
                    f"{record_id}: vector of run {held and self.run_name(key, held)} "
                    f"(distance {distance:.2g}), expected run {self.run_name(key, want.run_id)}"
                )
            if got.document != want.document:
                problems.append(
                    f"{record_id}: document {got.document!r}, expected {want.document!r}"
                )
            if got.metadata != want.metadata:
                differing = sorted(
                    k
                    for k in set(got.metadata) | set(want.metadata)
                    if got.metadata.get(k, "<absent>") != want.metadata.get(k, "<absent>")
                )
                detail = ", ".join(
                    f"{k}: {got.metadata.get(k, '<absent>')!r} != "
                    f"{want.metadata.get(k, '<absent>')!r}"
                    for k in differing
                )
                problems.append(f"{record_id}: metadata (published != expected) {detail}")
        return [f"{collection}: {p}" for p in problems]

    def check_table(self) -> list[str]:
        """The compactor changes no row but the runs' state, and completes every run."""
        problems = []
        items = self.world.image_items()
        expected = self.model.items()
        for key in sorted(set(items) ^ set(expected)):
            where = "in the table only" if key in items else "missing from the table"
            problems.append(f"row {key} {where}")
        for key, item in items.items():
            if item["TYPE"]["S"] != "COMPACTION_RUN":
                if key in expected and item != expected[key]:
                    problems.append(f"row {key} changed by the compactor")
                continue
            for collection in oracle.COLLECTIONS:
                state = item.get(f"{collection}_state", {}).get("S")
                if state != "COMPLETED":
                    problems.append(
                        f"run {key[1]} is {state} for {collection} after the drain (§5.4: "
                        "COMPLETED once a version containing its merge is published)"
                    )
        return problems

    def teardown(self) -> None:
        try:
            self.drain()
            problems = self.compare("lines") + self.compare("words") + self.check_table()
            count("examples")
            assert not problems, "\n".join(
                [
                    "published collections differ from the oracle (SPEC §5.4):",
                    *problems,
                    self.describe(),
                ]
            )
        finally:
            self.world.close()
