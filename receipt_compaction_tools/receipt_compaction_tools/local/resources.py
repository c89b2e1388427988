"""The pipeline's AWS resources for local runs: table, queues (with DLQs) and bucket."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from receipt_dynamo.aws_clients import aws_client
from receipt_dynamo.schema import create_table

if TYPE_CHECKING:
    from types_boto3_sqs.client import SQSClient

MAX_RECEIVE_COUNT = 3


@dataclass(frozen=True)
class PipelineResources:
    table: str
    stream_arn: str
    bucket: str
    lines_queue_url: str
    words_queue_url: str
    lines_dlq_url: str
    words_dlq_url: str
    stream_dlq_url: str

    @property
    def queues(self) -> dict[str, str]:
        return {"lines": self.lines_queue_url, "words": self.words_queue_url}

    def environment(self, chroma_root: Path, work_dir: Path, dimension: int) -> dict[str, str]:
        """What the two functions' environments hold in AWS (contract §8)."""
        return {
            "LINES_QUEUE_URL": self.lines_queue_url,
            "WORDS_QUEUE_URL": self.words_queue_url,
            "STREAM_DLQ_URL": self.stream_dlq_url,
            "DYNAMODB_TABLE_NAME": self.table,
            "CHROMADB_BUCKET": self.bucket,
            "CHROMA_ROOT": str(chroma_root),
            "CHROMA_WORK_DIR": str(work_dir),
            "EMBEDDING_DIMENSION": str(dimension),
        }


def create_resources(prefix: str, *, visibility_timeout: int = 60) -> PipelineResources:
    """Create everything the pipeline needs under names starting with ``prefix``."""
    sqs: SQSClient = aws_client("sqs")
    stream_arn = create_table(f"{prefix}-receipts")
    bucket = f"{prefix}-chroma"
    s3 = aws_client("s3")
    region = s3.meta.region_name
    # Outside us-east-1, S3 wants the bucket's region said again (moto checks it too).
    where: Any = {} if region == "us-east-1" else {"LocationConstraint": region}
    s3.create_bucket(Bucket=bucket, **({"CreateBucketConfiguration": where} if where else {}))

    def queue(name: str, dlq_arn: str | None = None) -> str:
        attributes: dict[Any, str] = {
            "MaximumMessageSize": "262144",
            "VisibilityTimeout": str(visibility_timeout),
        }
        if dlq_arn:
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}
            )
        return sqs.create_queue(QueueName=f"{prefix}-{name}", Attributes=attributes)["QueueUrl"]

    def arn(url: str) -> str:
        return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]

    lines_dlq, words_dlq = queue("lines-dlq"), queue("words-dlq")
    return PipelineResources(
        table=f"{prefix}-receipts",
        stream_arn=stream_arn,
        bucket=bucket,
        lines_queue_url=queue("lines", arn(lines_dlq)),
        words_queue_url=queue("words", arn(words_dlq)),
        lines_dlq_url=lines_dlq,
        words_dlq_url=words_dlq,
        stream_dlq_url=queue("stream-unparseable"),
    )
