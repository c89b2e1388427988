"""The reliability suite's world: resources on a moto server, the in-process stream pump,
compactor and stream-pump processes, what was written, and the independent oracle's view
of it (the table read back into ``spec_oracle``; snapshots read from the contract layout).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from receipt_chroma.compaction import produce_compaction_run
from receipt_compaction_tools.local.delivery_ledger import DeliveryLedger, QueueTiming, summarise
from receipt_compaction_tools.local.pump import LambdaPump
from receipt_compaction_tools.local.queue_consumer import QueueChaos
from receipt_compaction_tools.local.resources import (
    MAX_RECEIVE_COUNT,
    PipelineResources,
    create_resources,
)
from receipt_compaction_tools.testing import spec_oracle as oracle
from receipt_compaction_tools.testing.published import (
    PublishedRecord,
    download_version,
    read_collection,
    read_server_collection,
)
from receipt_compaction_tools.testing.synthetic import SyntheticReceipt
from receipt_dynamo import DynamoClient, ValidationStatus
from receipt_dynamo.testing import make_label, make_metadata
from receipt_dynamo.timestamps import now_iso

DIMENSION = 8
LEASE_SECONDS = 4
VISIBILITY_SECONDS = 20  # longer than a cycle; a killed compactor's messages come back
# The handler's RETRY_VISIBILITY_SECONDS: every message it reports failed is back this soon
# (contract §7 rev 3), far sooner than the queues' visibility timeout.
RETRY_VISIBILITY_SECONDS = (1, 2)
LABELS = ["TOTAL", "TAX", "DATE"]
STREAM_BATCH = 100  # the stream mapping's batch size (infra STREAM_BATCH_SIZE)
STREAM_CHUNK = 1000  # stream records delivered between two drains of the queues
STANDARD_QUEUE = QueueChaos(duplicate_rate=0.1, lost_delete_rate=0.1, seed=5)
# Record keys the oracle derives from the table: ids, provenance, merchant and label keys
# (the text comes from the synthetic producer, not from the table).
COMPARED_KEYS = (
    "image_id",
    "receipt_id",
    "line_id",
    "word_id",
    *oracle.PROVENANCE_KEYS,
    *oracle.MERCHANT_KEYS,
    *oracle.LABEL_KEYS,
)


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
    # What each run's deltas hold, as written: a run row does not say.
    run_contents: dict[str, oracle.RunContents] = field(default_factory=dict)
    # The compactor's sink (contract §12), as the scenario's environment sets it.
    sink: str = field(default_factory=lambda: os.environ.get("CHROMA_SINK", "snapshot"))

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
            "RETRY_VISIBILITY_SECONDS": "{}-{}".format(*RETRY_VISIBILITY_SECONDS),
        }
        os.environ.update(self.environment)
        self.dynamo = DynamoClient(self.resources.table)
        self.stream_checkpoint = self.root / "stream.checkpoint"
        # Every consumer (this process's and the compactor processes') records its
        # deliveries here; failed messages come back only as the handler's reset says.
        self.deliveries_path = self.root / "deliveries.jsonl"
        self.pump = LambdaPump(
            self.resources,
            stream_batch=STREAM_BATCH,
            queue_batch=self.queue_batch,
            chaos=self.chaos,
            checkpoint=self.stream_checkpoint,
            ledger=DeliveryLedger(self.deliveries_path),
            release_failed=False,
        )

    # --- load --------------------------------------------------------------------------

    def add_receipts(self, count: int) -> None:
        for _ in range(count):
            image_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
            receipt = SyntheticReceipt(image_id, 1, lines=4, words_per_line=4, dimension=DIMENSION)
            self.dynamo.put_entities(
                [*receipt.rows, make_metadata(image_id, 1, merchant_name=f"M{self.changes}")]
            )
            run_id = str(uuid.uuid4())
            self.run_contents[run_id] = (
                frozenset(line.line_id for line in receipt.line_rows),
                frozenset((word.line_id, word.word_id) for word in receipt.word_rows),
            )
            produce_compaction_run(
                self.dynamo,
                image_id=image_id,
                receipt_id=1,
                run_id=run_id,
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

    def expected(self, collection: str) -> dict[str, oracle.ExpectedRecord]:
        """What the collection holds by the contract, from the final table (read back into
        the independent oracle's model) and what each run's deltas hold."""
        items = []
        scan = boto3.client("dynamodb").get_paginator("scan")
        for page in scan.paginate(TableName=self.resources.table, ConsistentRead=True):
            items += page["Items"]
        model = oracle.model_from_items(items, self.run_contents)
        for key in self.excluded:
            model.receipts.pop(key, None)
        return oracle.expected_collection(model, collection)

    def published(self, collection: str) -> dict[str, PublishedRecord]:
        """What readers see: the server's collection when the compactor writes to a Chroma
        server, else the collection at the pointer's version."""
        if self.sink == "server":
            return read_server_collection(
                collection,
                host=os.environ["CHROMA_HOST"],
                port=int(os.environ["CHROMA_PORT"]),
                database=os.environ.get("CHROMA_DATABASE", "default_database"),
            )
        return self.snapshot(collection)

    def snapshot(self, collection: str) -> dict[str, PublishedRecord]:
        """The collection at the pointer's version, read from the contract's S3 layout."""
        pointer = boto3.client("dynamodb").get_item(
            TableName=self.resources.table,
            Key={"PK": {"S": f"SNAPSHOT#{collection}"}, "SK": {"S": "POINTER"}},
            ConsistentRead=True,
        )
        if "Item" not in pointer:
            return {}
        version = pointer["Item"]["version"]["S"]
        with tempfile.TemporaryDirectory(dir=self.root) as tmp:
            directory = Path(tmp) / "published"
            download_version(
                boto3.client("s3"), self.resources.bucket, collection, version, directory
            )
            return read_collection(directory, collection)

    def compare(self) -> dict[str, int]:
        """Missing, extra and stale records of the published collections against the
        oracle: stale when the vector's run or any §4 key the table defines differs."""
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
                want, have = expected[vector_id].metadata, actual[vector_id].metadata
                counts["stale"] += int(any(want.get(key) != have.get(key) for key in COMPARED_KEYS))
        return counts

    # --- driving ---------------------------------------------------------------------------

    def settle(self, timeout: float = 3600) -> None:
        """Deliver the stream and drain the queues until nothing is left, in flight
        included."""
        # The stream and the compactors run side by side in AWS, so queues stay short;
        # here too (moto's SQS slows down with every message a queue holds).
        while self.pump.pump_stream(limit=STREAM_CHUNK):
            self.pump.drain_queues()
        self.drain(timeout)

    def drain(self, timeout: float = 3600) -> None:
        """Invoke the compactor until both queues are empty, in flight included: failed
        messages come back after the handler's retry visibility, messages a killed
        compactor held after the visibility timeout."""
        deadline = time.monotonic() + timeout
        while True:
            self.pump.drain_queues(max_rounds=200)
            depths = self.pump.queue_depths()
            if depths["lines"] + depths["words"] == 0 or time.monotonic() > deadline:
                return
            time.sleep(1)

    def deliveries(self) -> dict[str, int]:
        """What became of every delivery of the compactor queues' messages, from the
        consumers' ledger (``delivery_ledger.summarise``): above all, how many messages
        the handler reported failed still waited for the visibility timeout."""
        timing = QueueTiming(
            visibility_timeout=VISIBILITY_SECONDS,
            retry_window_max=RETRY_VISIBILITY_SECONDS[1],
            max_receive_count=MAX_RECEIVE_COUNT,
        )
        return summarise(self.deliveries_path, timing)

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
                "ledger": str(self.deliveries_path),
                "release_failed": False,
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
