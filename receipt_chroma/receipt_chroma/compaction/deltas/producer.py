"""What an embedding producer does: write a run's two deltas, then its CompactionRun row."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from receipt_chroma.compaction.deltas.files import RecordTuple, write_delta
from receipt_dynamo.aws_clients import aws_client
from receipt_dynamo.data.dynamo_client import DynamoClient
from receipt_dynamo.entities import CompactionRun
from receipt_dynamo.timestamps import now_iso

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client


def produce_compaction_run(
    dynamo_client: DynamoClient,
    *,
    image_id: str,
    receipt_id: int,
    run_id: str,
    lines: Iterable[RecordTuple],
    words: Iterable[RecordTuple],
    bucket: str,
    s3_client: S3Client | None = None,
) -> CompactionRun:
    """What an embedding producer does: upload both deltas, then write the run row."""
    s3 = s3_client or aws_client("s3")
    run = CompactionRun(
        run_id=run_id,
        image_id=image_id,
        receipt_id=receipt_id,
        lines_delta_prefix=write_delta(lines, "lines", bucket=bucket, run_id=run_id, s3_client=s3),
        words_delta_prefix=write_delta(words, "words", bucket=bucket, run_id=run_id, s3_client=s3),
        created_at=now_iso(),
    )
    dynamo_client.add_compaction_run(run)
    return run
