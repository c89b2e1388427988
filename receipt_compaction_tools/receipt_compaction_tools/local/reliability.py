"""The reliability suite: the pipeline's promises checked at system level.

Every scenario runs the real handlers against a moto server, compares the published
snapshots with the state the table defines (computed independently per receipt) and
reports missing / extra / stale records, which must all be 0.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from receipt_chroma.chroma_client import ChromaClient
from receipt_chroma.compaction.deltas import produce_compaction_run, write_delta
from receipt_chroma.compaction.operations import label_metadata_by_record, merchant_metadata
from receipt_chroma.constants import LABEL_KEYS, MERCHANT_KEYS
from receipt_chroma.ids import line_vector_id, word_vector_id
from receipt_chroma.snapshots.s3_store import S3SnapshotStore
from receipt_compaction_tools.aws.local_aws import LocalAwsServer
from receipt_compaction_tools.local.environment import environment
from receipt_compaction_tools.local.pump import LambdaPump, QueueChaos
from receipt_compaction_tools.local.resources import PipelineResources, create_resources
from receipt_compaction_tools.testing.factories import make_label, make_metadata
from receipt_compaction_tools.testing.synthetic import SyntheticReceipt
from receipt_dynamo import DynamoClient, ValidationStatus
from receipt_dynamo.entities import CompactionRun
from receipt_dynamo.timestamps import now_iso

DIMENSION = 8
LEASE_SECONDS = 4
VISIBILITY_SECONDS = 20  # longer than a cycle; a killed compactor's messages come back
LABELS = ["TOTAL", "TAX", "DATE"]
STREAM_BATCH = 100  # the stream mapping's batch size (infra STREAM_BATCH_SIZE)
STREAM_CHUNK = 1000  # stream records delivered between two drains of the queues
STANDARD_QUEUE = QueueChaos(duplicate_rate=0.1, lost_delete_rate=0.1, seed=5)


@dataclass
class Scale:
    receipts: int
    changes: int
    crash_trials: int
    # Messages per compactor invocation. Full scale uses the deployed mappings' batch size
    # (infra COMPACTOR_BATCH_SIZE); CI scale a smaller one, so a few hundred changes still
    # span many batches.
    queue_batch: int


SCALES = {
    "ci": Scale(receipts=12, changes=600, crash_trials=3, queue_batch=100),
    "full": Scale(receipts=60, changes=10_000, crash_trials=20, queue_batch=1000),
}


@dataclass
class World:
    """Resources, the in-process stream pump, and bookkeeping of what was written."""

    root: Path
    chaos: QueueChaos = STANDARD_QUEUE
    seed: int = 1
    queue_batch: int = 100
    changes: int = 0
    receipts: dict[tuple[str, int], SyntheticReceipt] = field(default_factory=dict)
    excluded: set[tuple[str, int]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.rng = random.Random(self.seed)
        self.resources: PipelineResources = create_resources(
            f"rel-{uuid.uuid4().hex[:6]}", visibility_timeout=VISIBILITY_SECONDS
        )
        self.environment = {
            **self.resources.environment(self.root / "efs", self.root / "work", DIMENSION),
            "LOG_LEVEL": "WARNING",
            "LOCK_DURATION_SECONDS": str(LEASE_SECONDS),
            "HEARTBEAT_INTERVAL_SECONDS": "1",
            "LOCK_WAIT_SECONDS": "30",
        }
        os.environ.update(self.environment)
        self.dynamo = DynamoClient(self.resources.table)
        self.stream_checkpoint = self.root / "stream.checkpoint"
        self.pump = LambdaPump(
            self.resources,
            stream_batch=STREAM_BATCH,
            queue_batch=self.queue_batch,
            chaos=self.chaos,
            checkpoint=self.stream_checkpoint,
        )

    # --- load --------------------------------------------------------------------------

    def add_receipts(self, count: int) -> None:
        for _ in range(count):
            image_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
            receipt = SyntheticReceipt(image_id, 1, lines=4, words_per_line=4, dimension=DIMENSION)
            self.dynamo.put_entities(
                [*receipt.rows, make_metadata(image_id, 1, merchant_name=f"M{self.changes}")]
            )
            produce_compaction_run(
                self.dynamo,
                image_id=image_id,
                receipt_id=1,
                run_id=str(uuid.uuid4()),
                lines=receipt.line_records(),
                words=receipt.word_records(),
                bucket=self.resources.bucket,
            )
            self.receipts[(image_id, 1)] = receipt
            self.changes += len(receipt.rows) + 2

    def churn(self, count: int) -> None:
        """Label churn, merchant corrections and deletions, drawn at random."""
        keys = sorted(self.receipts)
        for _ in range(count):
            image_id, receipt_id = self.rng.choice(keys)
            receipt = self.receipts[(image_id, receipt_id)]
            word = self.rng.choice(receipt.word_rows)
            roll = self.rng.random()
            if roll < 0.55:
                label = make_label(
                    image_id,
                    1,
                    word.line_id,
                    word.word_id,
                    self.rng.choice(["TOTAL", "TAX", "DATE"]),
                    validation_status=self.rng.choice(list(ValidationStatus)),
                    timestamp_added=now_iso(),
                )
                self.dynamo.put_receipt_word_label(label)
            elif roll < 0.65:
                self.dynamo.delete_receipt_word_label(
                    image_id,
                    1,
                    word.line_id,
                    word.word_id,
                    self.rng.choice(["TOTAL", "TAX", "DATE"]),
                )
            elif roll < 0.88:
                self.dynamo.put_receipt_metadata(
                    make_metadata(
                        image_id,
                        1,
                        merchant_name=f"Merchant {self.rng.randrange(50)}",
                        canonical_merchant_name=self.rng.choice([None, "Canon Co"]),
                        timestamp=now_iso(),
                    )
                )
            elif roll < 0.96:
                self.dynamo.delete_entity(word)
            elif roll < 0.99:
                self.dynamo.delete_entity(self.rng.choice(receipt.line_rows))
            else:
                self.dynamo.delete_receipt(image_id, 1)
            self.changes += 1

    # --- oracle --------------------------------------------------------------------------

    def expected(self, collection: str) -> dict[str, dict[str, Any]]:
        """Records and their merchant/label keys as the table defines them, per receipt."""
        state: dict[str, dict[str, Any]] = {}
        for image_id, receipt_id in sorted(self.receipts):
            if (image_id, receipt_id) in self.excluded:
                continue
            rows = self.dynamo.get_receipt_state(image_id, receipt_id)
            if not rows.exists or not rows.runs:
                continue
            keys = dict.fromkeys(MERCHANT_KEYS)
            keys.update(merchant_metadata(rows.metadata))
            labels = label_metadata_by_record(rows.labels)
            if collection == "words":
                for line_id, word_id in rows.word_ids:
                    vector_id = word_vector_id(image_id, receipt_id, line_id, word_id)
                    state[vector_id] = {
                        **keys,
                        **dict.fromkeys(LABEL_KEYS),
                        **labels.get(vector_id, {}),
                    }
            else:
                for line_id in rows.line_ids:
                    state[line_vector_id(image_id, receipt_id, line_id)] = dict(keys)
        return state

    def published(self, collection: str) -> dict[str, dict[str, Any]]:
        pointer = self.dynamo.get_snapshot_pointer(collection)
        if pointer is None:
            return {}
        with tempfile.TemporaryDirectory(dir=self.root) as tmp:
            S3SnapshotStore(boto3.client("s3"), self.resources.bucket, collection).download(
                pointer.version, Path(tmp) / "s"
            )
            with ChromaClient(Path(tmp) / "s", mode="read") as client:
                found = client.get_collection(collection).get(include=["metadatas"])
        return dict(
            zip(found["ids"], [dict(m or {}) for m in found["metadatas"] or []], strict=True)
        )

    def compare(self) -> dict[str, int]:
        counts = {"missing": 0, "extra": 0, "stale": 0, "records": 0}
        for collection in ("lines", "words"):
            expected, actual = self.expected(collection), self.published(collection)
            excluded_ids = {
                i for i in actual if any(i.startswith(f"IMAGE#{img}#") for img, _ in self.excluded)
            }
            counts["records"] += len(actual)
            counts["missing"] += len(set(expected) - set(actual))
            counts["extra"] += len(set(actual) - set(expected) - excluded_ids)
            for vector_id in set(expected) & set(actual):
                want = {k: v for k, v in expected[vector_id].items() if v is not None}
                have = {k: actual[vector_id].get(k) for k in expected[vector_id]}
                have = {k: v for k, v in have.items() if v is not None}
                counts["stale"] += int(want != have)
        return counts

    # --- driving ---------------------------------------------------------------------------

    def settle(self, timeout: float = 3600) -> None:
        """Deliver the stream and drain the queues until nothing is left, in flight
        included (messages a killed compactor held come back after their visibility
        timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            # The stream and the compactors run side by side in AWS, so queues stay short;
            # here too (moto's SQS slows down with every message a queue holds).
            while self.pump.pump_stream(limit=STREAM_CHUNK):
                self.pump.drain_queues()
            self.pump.drain_queues(max_rounds=200)
            depths = self.pump.queue_depths()
            if depths["lines"] + depths["words"] == 0 or time.monotonic() > deadline:
                return
            time.sleep(1)

    def worker(
        self, name: str, *, chaos: QueueChaos | None = None, deadline: float = 300
    ) -> subprocess.Popen[str]:
        """A compactor process consuming both queues until they stay empty."""
        return self._process(
            name,
            {
                "role": "compactor",
                "queues": self.resources.queues,
                "batch": 40,
                "chaos": vars(chaos or self.chaos),
                "deadline_seconds": deadline,
                "idle_polls": 6,
            },
        )

    def stream_pump(self, name: str, *, deadline: float = 300) -> subprocess.Popen[str]:
        """A stream pump process, resuming from (and advancing) the world's checkpoint."""
        return self._process(
            name,
            {
                "role": "stream",
                "stream_arn": self.resources.stream_arn,
                "checkpoint": str(self.stream_checkpoint),
                "batch": STREAM_BATCH,
                "deadline_seconds": deadline,
                "idle_polls": 2,
            },
        )

    def _process(self, name: str, config: dict[str, Any]) -> subprocess.Popen[str]:
        path = self.root / f"{name}.json"
        path.write_text(json.dumps(config))
        env = {
            **os.environ,
            **self.environment,
            "CHROMA_WORK_DIR": str(self.root / name),
            "LOG_LEVEL": "INFO",
        }
        # The worker's stderr (tracebacks included) is kept beside its config.
        with (self.root / f"{name}.stderr").open("w") as stderr:
            return subprocess.Popen(
                [sys.executable, "-m", "receipt_compaction_tools.local.worker", str(path)],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env=env,
            )

    def redrive_dead_letters(self) -> int:
        """Move every message of the two compactor DLQs back to its queue; returns how many."""
        sqs = boto3.client("sqs")
        moved = 0
        for dlq, queue in (
            (self.resources.lines_dlq_url, self.resources.lines_queue_url),
            (self.resources.words_dlq_url, self.resources.words_queue_url),
        ):
            while messages := sqs.receive_message(
                QueueUrl=dlq, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
            ).get("Messages", []):
                for message in messages:
                    sqs.send_message(
                        QueueUrl=queue,
                        MessageBody=message["Body"],
                        MessageAttributes={
                            name: {"DataType": v["DataType"], "StringValue": v["StringValue"]}
                            for name, v in message.get("MessageAttributes", {}).items()
                        },
                    )
                sqs.delete_message_batch(
                    QueueUrl=dlq,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(messages)
                    ],
                )
                moved += len(messages)
        return moved

    def checkpoint_text(self) -> str:
        try:
            return self.stream_checkpoint.read_text()
        except FileNotFoundError:
            return ""

    def openable(self) -> bool:
        """Whatever the pointers name downloads, verifies and opens."""
        try:
            for collection in ("lines", "words"):
                self.published(collection)
        except Exception:
            return False
        return True


def worker_summary(output: str) -> dict[str, Any]:
    """The summary a worker prints when it ends (its pump statistics, with the cycles read
    from the handler's metrics); log lines may follow it."""
    for line in reversed(output.splitlines()):
        if line.startswith("{") and '"cycles"' in line:
            summary: dict[str, Any] = json.loads(line)
            return summary
    raise ValueError(f"the worker printed no summary; its output ends: {output[-2000:]!r}")


def publishes_from_logs(output: str) -> list[tuple[str, str | None, str]]:
    """(collection, base version, published version) of every publish a worker logged."""
    publishes = []
    for line in output.splitlines():
        if '"compaction cycle finished"' in line:
            entry = json.loads(line)
            if entry.get("version"):
                publishes.append((entry["collection"], entry.get("base_version"), entry["version"]))
    return publishes


# --- scenarios ----------------------------------------------------------------------------


def sustained_load(root: Path, scale: Scale) -> dict[str, Any]:
    world = World(root / "load", queue_batch=scale.queue_batch)
    world.add_receipts(scale.receipts)
    world.settle()
    world.churn(scale.changes - world.changes)
    world.settle()
    stats = world.pump.stats
    return {
        "changes": world.changes,
        "messages": sum(stats.messages_received.values()),
        "redeliveries": stats.redeliveries_injected + sum(stats.messages_failed.values()),
        "faults": {
            "duplicates": stats.duplicates_injected,
            "lost_deletes": stats.redeliveries_injected,
        },
        **world.compare(),
    }


def concurrent_compactors(root: Path, scale: Scale) -> dict[str, Any]:
    world = World(root / "concurrent", seed=2, queue_batch=scale.queue_batch)
    world.add_receipts(scale.receipts // 2)
    world.churn(scale.changes // 3)
    world.pump.pump_stream()
    # Short lease waits make contention routine, as with concurrent invocations per queue:
    # the losers' messages must come back within seconds, not after the visibility timeout.
    world.environment.update({"LOCK_WAIT_SECONDS": "2", "RETRY_VISIBILITY_SECONDS": "1-2"})
    workers = [world.worker(f"compactor-{n}") for n in range(3)]
    world.churn(scale.changes // 3)
    world.pump.pump_stream()
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    world.settle()
    publishes = [p for out in outputs for p in publishes_from_logs(out)]
    bases = [(collection, base) for collection, base, _ in publishes]
    cycles = [c for out in outputs for c in worker_summary(out)["cycles"]]
    return {
        "changes": world.changes,
        "compactors": 3,
        "publishes": len(publishes),
        "same_base_publishes": len(bases) - len(set(bases)),
        "lease_contention_failures": sum(c["failures"] for c in cycles if c["contended"]),
        "waited_for_visibility_timeout": sum(c["waited_for_visibility_timeout"] for c in cycles),
        **world.compare(),
    }


def crashes(root: Path, scale: Scale) -> dict[str, Any]:
    """Each trial starts a stream pump and a compactor process and SIGKILLs each at its own
    random moment; the pump resumes from its checkpoint, the compactor's messages come back
    after their visibility timeout and its lease expires."""
    world = World(root / "crashes", seed=3, queue_batch=scale.queue_batch)
    world.add_receipts(scale.receipts // 2)
    rng = random.Random(9)
    broken = 0
    kills = {"stream_pump": 0, "compactor": 0}
    pump_advanced_before_kill = 0
    for trial in range(scale.crash_trials):
        world.churn(max(10, scale.changes // (3 * scale.crash_trials)))
        checkpoint = world.checkpoint_text()
        pump = world.stream_pump(f"pump-{trial}")
        compactor = world.worker(f"victim-{trial}")
        compactor_kill_at = time.monotonic() + rng.uniform(0.3, 2.5)
        # The pump dies at a random moment of its work: once its first batch is delivered
        # (so later batches may be in flight), or at a random moment if that takes long.
        deadline = time.monotonic() + rng.uniform(10.0, 16.0)
        while time.monotonic() < deadline and world.checkpoint_text() == checkpoint:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.4))
        for kind, process in (("stream_pump", pump), ("compactor", compactor)):
            if kind == "compactor":
                time.sleep(max(0.0, compactor_kill_at - time.monotonic()))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                kills[kind] += 1
            process.wait()
        pump_advanced_before_kill += int(world.checkpoint_text() != checkpoint)
        broken += int(not world.openable())
    time.sleep(LEASE_SECONDS + 1)  # the last victim's lease expires
    world.settle()
    # Messages held by several victims in a row reach the DLQ after maxReceiveCount, as
    # in AWS; recovery is the runbook's redrive (docs/operations.md), then the queues drain.
    redriven = world.redrive_dead_letters()
    if redriven:
        world.settle()
    return {
        "changes": world.changes,
        "trials": scale.crash_trials,
        "dead_lettered_by_kills_then_redriven": redriven,
        "kills": kills,
        "trials_where_the_pump_delivered_before_its_kill": pump_advanced_before_kill,
        "broken_latest_after_kill": broken,
        **world.compare(),
    }


def poison_input(root: Path, scale: Scale) -> dict[str, Any]:
    world = World(root / "poison", seed=4, chaos=QueueChaos(seed=4))
    world.add_receipts(max(3, scale.receipts // 4))
    world.churn(scale.changes // 6)
    records = world.pump.stream.reader.read()
    poison_records = [
        {"eventName": "MODIFY", "dynamodb": {"Keys": {"PK": {"S": "IMAGE#x"}}}},
        {
            "eventName": "INSERT",
            "dynamodb": {
                "Keys": {
                    "PK": {"S": "IMAGE#3f52804b-2fad-4e00-92c8-b593da3a8ed3"},
                    "SK": {"S": "RECEIPT#00000"},
                },
                "SequenceNumber": "1",
            },
        },
        {"no": "record"},
    ]
    mixed = records[: len(records) // 2] + poison_records + records[len(records) // 2 :]
    world.pump.deliver_records(mixed)
    sqs = boto3.client("sqs")
    poison_bodies = ["not json", json.dumps({"schema_version": 99}), "{}"]
    for body in poison_bodies:
        sqs.send_message(QueueUrl=world.resources.words_queue_url, MessageBody=body)
    world.pump.drain_queues(max_rounds=200)
    depths = world.pump.queue_depths()
    return {
        "changes": world.changes,
        "poison_records": len(poison_records),
        "poison_messages": len(poison_bodies),
        "parked_records": depths["stream-unparseable"],
        "dead_lettered": depths["words-dlq"] + depths["lines-dlq"],
        "ok": depths["stream-unparseable"] == len(poison_records)
        and depths["words-dlq"] == len(poison_bodies)
        and depths["lines-dlq"] == 0,
        **world.compare(),
    }


def _hostile_tarball(kind: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        member = tarfile.TarInfo(
            {"traversal": "../../escaped", "absolute": "/tmp/escaped-abs"}.get(
                kind, "chroma.sqlite3"
            )
        )
        if kind == "symlink":
            member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
            archive.addfile(member)
        else:
            member.size = 4
            archive.addfile(member, io.BytesIO(b"evil"))
    return buffer.getvalue()


def hostile_deltas(root: Path, scale: Scale) -> dict[str, Any]:
    world = World(root / "hostile", seed=5, chaos=QueueChaos(seed=5))
    world.add_receipts(3)
    s3 = boto3.client("s3")
    kinds = ["traversal", "absolute", "symlink", "wrong_collection", "wrong_dimension", "missing"]
    for kind in kinds:
        image_id = str(uuid.uuid4())
        receipt = SyntheticReceipt(image_id, 1, lines=2, words_per_line=2, dimension=DIMENSION)
        world.dynamo.put_entities(receipt.rows)
        run_id = f"hostile-{kind}"
        prefix = f"words/delta/{run_id}/"
        if kind in ("traversal", "absolute", "symlink"):
            s3.put_object(
                Bucket=world.resources.bucket,
                Key=f"{prefix}delta.tar.gz",
                Body=_hostile_tarball(kind),
            )
        elif kind in ("wrong_collection", "wrong_dimension"):
            records = (
                receipt.line_records()
                if kind == "wrong_collection"
                else [(r[0], [*r[1], 0.0], r[2], r[3]) for r in receipt.word_records()]
            )
            written = write_delta(
                records,
                "lines" if kind == "wrong_collection" else "words",
                bucket=world.resources.bucket,
                run_id=run_id,
            )
            if kind == "wrong_collection":
                for item in s3.list_objects_v2(Bucket=world.resources.bucket, Prefix=written)[
                    "Contents"
                ]:
                    s3.copy_object(
                        Bucket=world.resources.bucket,
                        CopySource={"Bucket": world.resources.bucket, "Key": item["Key"]},
                        Key=item["Key"].replace(written, prefix),
                    )
        world.dynamo.add_compaction_run(
            CompactionRun(
                run_id=run_id,
                image_id=image_id,
                receipt_id=1,
                lines_delta_prefix=f"lines/none/{run_id}/",
                words_delta_prefix=prefix,
                created_at=now_iso(),
            )
        )
        world.receipts[(image_id, 1)] = receipt
        world.excluded.add((image_id, 1))
    world.settle()
    escaped = [
        p
        for p in (Path("/tmp/escaped-abs"), world.root.parent / "escaped", world.root / "escaped")
        if p.exists()
    ]
    runs = [world.dynamo.list_compaction_runs_for_receipt(img, 1)[0] for img, _ in world.excluded]
    named = sum(1 for r in runs if r.words_error and r.run_id in r.words_error)
    failed = sum(1 for r in runs if r.words_state.value == "FAILED")
    published = world.published("words")
    return {
        "hostile_runs": len(kinds),
        "runs_failed": failed,
        "errors_name_run": named,
        "written_outside_work_dir": len(escaped),
        "hostile_records_published": sum(
            1 for i in published if any(f"IMAGE#{img}#" in i for img, _ in world.excluded)
        ),
        **world.compare(),
    }


def lease_pathologies(root: Path, scale: Scale) -> dict[str, Any]:
    world = World(root / "lease", seed=6, chaos=QueueChaos(seed=6))
    world.add_receipts(max(4, scale.receipts // 3))
    world.pump.pump_stream()
    # A holder paused past its lease cannot publish after resuming.
    paused = world.worker("paused")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        lock = world.dynamo.get_compaction_lock("words") or world.dynamo.get_compaction_lock(
            "lines"
        )
        if lock is not None and lock.owner is not None:
            break
        time.sleep(0.05)
    paused.send_signal(signal.SIGSTOP)
    time.sleep(LEASE_SECONDS + 1)
    rescuer = world.worker("rescuer")
    rescued = rescuer.communicate(timeout=600)[0]
    paused.send_signal(signal.SIGCONT)
    resumed = paused.communicate(timeout=600)[0]
    taken = {(collection, base) for collection, base, _ in publishes_from_logs(rescued)}
    stale = [p for p in publishes_from_logs(resumed) if (p[0], p[1]) in taken]
    # An abandoned lease is taken over after expiry.
    world.dynamo.acquire_lease("lines", owner="ghost", duration_seconds=2)
    world.churn(20)
    world.settle()
    lock = world.dynamo.get_compaction_lock("lines")
    return {
        "rescuer_publishes": len(taken),
        "paused_holder_publishes_from_stale_base": len(stale),
        "abandoned_lease_taken_over": lock is not None and lock.owner != "ghost",
        **world.compare(),
    }


SCENARIOS: dict[str, Callable[[Path, Scale], dict[str, Any]]] = {
    "sustained_load": sustained_load,
    "concurrent_compactors": concurrent_compactors,
    "crashes": crashes,
    "poison_input": poison_input,
    "hostile_deltas": hostile_deltas,
    "lease_pathologies": lease_pathologies,
}


def passed(result: dict[str, Any]) -> bool:
    zero = (
        "missing",
        "extra",
        "stale",
        "same_base_publishes",
        "broken_latest_after_kill",
        "written_outside_work_dir",
        "hostile_records_published",
        "paused_holder_publishes_from_stale_base",
    )
    return (
        all(result.get(k, 0) == 0 for k in zero)
        and result.get("ok", True) is not False
        and result.get("abandoned_lease_taken_over", True) is not False
    )


def run_scenario(name: str, scale_name: str, root: Path) -> dict[str, Any]:
    """One scenario against its own moto server (in its own process, so the emulator's
    work never holds this process's GIL while the handlers run here)."""
    started = time.perf_counter()
    with LocalAwsServer(own_process=True) as server, environment(server.environment()):
        saved = dict(os.environ)
        try:
            result = SCENARIOS[name](root, SCALES[scale_name])
        finally:
            os.environ.clear()
            os.environ.update(saved)
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["passed"] = passed(result)
    return result


def run_suite(
    scale_name: str, root: Path, only: list[str] | None = None, jobs: int = 1
) -> dict[str, Any]:
    """Run the scenarios (``jobs`` at a time, each in a fresh process when more than one)."""
    names = [name for name in SCENARIOS if not only or name in only]
    if jobs <= 1:
        results = {name: run_scenario(name, scale_name, root) for name in names}
    else:
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=spawn) as pool:
            futures = {name: pool.submit(run_scenario, name, scale_name, root) for name in names}
            results = {name: future.result() for name, future in futures.items()}
    report: dict[str, Any] = {"scale": scale_name, "jobs": jobs, "scenarios": results}
    report["passed"] = all(s["passed"] for s in results.values())
    return report
