"""The stream's event source mapping, in this process: the table's records in shard
order, batches of ``batch``; a response with ``batchItemFailures`` makes the batch retry
from the lowest reported sequence number; the position can be checkpointed to a file so a
killed pump resumes (at least once)."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

from receipt_compaction_tools.aws.streams import StreamReader, lambda_record
from receipt_compaction_tools.local.freshness import Freshness
from receipt_compaction_tools.local.handlers import load_handler
from receipt_compaction_tools.local.lambda_context import LocalLambdaContext
from receipt_compaction_tools.local.pump_stats import PumpStats, count_stream_metrics
from receipt_dynamo.aws_clients import aws_client

STREAM_RETRIES = 5


def _sequence(record: dict[str, Any]) -> int:
    return int(record["dynamodb"]["SequenceNumber"])


class StreamPump:
    """The stream's event source mapping: records in shard order, in batches, retried from
    the lowest failed sequence number. Its position per shard advances after each delivered
    batch and, with ``checkpoint``, is kept in that file (replaced atomically), so a pump
    that was killed resumes where the last delivered batch ended: the batch in flight is
    delivered again, as Lambda retries it."""

    def __init__(
        self,
        stream_arn: str,
        stats: PumpStats,
        *,
        batch: int = 100,
        checkpoint: Path | None = None,
        freshness: Freshness | None = None,
    ) -> None:
        self.stats = stats
        self.batch = batch
        self.checkpoint = checkpoint
        self.freshness = freshness
        self.context = LocalLambdaContext()
        self.reader = StreamReader(stream_arn, client=aws_client("dynamodbstreams"))
        self.handler = load_handler("stream_processor")
        self._positions: dict[str, str] = {}

    def _load_positions(self) -> dict[str, str]:
        if self.checkpoint is None:
            return self._positions
        try:
            positions: dict[str, str] = json.loads(self.checkpoint.read_text())
        except FileNotFoundError:
            return {}
        return positions

    def _save_positions(self, positions: dict[str, str]) -> None:
        self._positions = positions
        if self.checkpoint is not None:
            temporary = self.checkpoint.with_name(f".{self.checkpoint.name}.{os.getpid()}")
            temporary.write_text(json.dumps(positions))
            temporary.replace(self.checkpoint)

    def pump(
        self, limit: int | None = None, *, on_batch: Callable[[int], None] | None = None
    ) -> int:
        """Deliver the records after the saved positions, in whole batches, up to about
        ``limit`` records (all without one); returns how many were delivered.
        ``on_batch`` is told the size of each delivered batch (progress)."""
        positions = dict(self._load_positions())
        total = 0
        arn = self.reader.stream_arn
        # Read unshaped, so the freshness clock sees each write's full-precision time.
        for shard_id, raw in self.reader.read_after(positions, lambda_shape=False).items():
            if self.freshness is not None:
                for record in raw:
                    self.freshness.record_write(record)
            records = [lambda_record(record, arn) for record in raw]
            for start in range(0, len(records), self.batch):
                if limit is not None and total >= limit:
                    return total
                batch = records[start : start + self.batch]
                self.deliver(batch)
                positions[shard_id] = batch[-1]["dynamodb"]["SequenceNumber"]
                self._save_positions(positions)
                total += len(batch)
                if on_batch is not None:
                    on_batch(len(batch))
        return total

    @property
    def positions(self) -> dict[str, str]:
        """The last delivered sequence number of each shard."""
        return dict(self._load_positions())

    def deliver(self, records: list[Any]) -> None:
        """Invoke the stream handler on ``records`` as one batch, with the mapping's retries."""
        self.stats.stream_records += len(records)
        pending = records
        for attempt in range(STREAM_RETRIES + 1):
            self.stats.stream_invocations += 1
            output = io.StringIO()
            with redirect_stdout(output):
                response = self.handler.lambda_handler({"Records": pending}, self.context)
            count_stream_metrics(output.getvalue(), self.stats)
            failures = response["batchItemFailures"]
            if not failures:
                return
            if attempt == STREAM_RETRIES:
                self.stats.stream_records_given_up += len(pending)
                return
            self.stats.stream_retries += 1
            lowest = min(int(f["itemIdentifier"]) for f in failures)
            pending = [r for r in pending if _sequence(r) >= lowest]
