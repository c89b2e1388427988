"""Reading a table's DynamoDB stream through the ``dynamodbstreams`` API.

Used by the local pipeline and by tests: it returns real stream records, and can shape
them exactly as Lambda delivers them to a stream event source mapping.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from receipt_dynamo.aws_clients import aws_client

if TYPE_CHECKING:
    from types_boto3_dynamodbstreams.client import DynamoDBStreamsClient

LAMBDA_EVENT_SOURCE = "aws:dynamodb"


def lambda_record(record: Mapping[str, Any], stream_arn: str) -> dict[str, Any]:
    """A boto3 stream record as Lambda delivers it: epoch-seconds creation time, source ARN."""
    shaped = dict(record)
    dynamodb = dict(record.get("dynamodb", {}))
    created = dynamodb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        dynamodb["ApproximateCreationDateTime"] = int(created.timestamp())
    shaped["dynamodb"] = dynamodb
    shaped.setdefault("eventSource", LAMBDA_EVENT_SOURCE)
    shaped["eventSourceARN"] = stream_arn
    return shaped


@dataclass
class StreamReader:
    """Follows every shard of one stream from TRIM_HORIZON, remembering its position.

    Each ``read()`` returns the records appended since the previous call.
    """

    stream_arn: str
    client: DynamoDBStreamsClient = field(default_factory=lambda: aws_client("dynamodbstreams"))
    _iterators: dict[str, str | None] = field(default_factory=dict)

    def _shards(self) -> Iterator[str]:
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn}
        while True:
            description = self.client.describe_stream(**kwargs)["StreamDescription"]
            for shard in description.get("Shards", []):
                yield shard["ShardId"]
            last = description.get("LastEvaluatedShardId")
            if not last:
                return
            kwargs["ExclusiveStartShardId"] = last

    def read_after(
        self, positions: Mapping[str, str], *, lambda_shape: bool = True
    ) -> dict[str, list[dict[str, Any]]]:
        """Every shard's records after its sequence number in ``positions`` (from the start
        for a shard not named), with fresh iterators: a checkpointed consumer that may have
        restarted (or shares its checkpoint with another) reads exactly what is left.
        """
        shards: dict[str, list[dict[str, Any]]] = {}
        for shard_id in self._shards():
            after = positions.get(shard_id)
            request: dict[str, Any] = {
                "StreamArn": self.stream_arn,
                "ShardId": shard_id,
                "ShardIteratorType": "AFTER_SEQUENCE_NUMBER" if after else "TRIM_HORIZON",
            }
            if after:
                request["SequenceNumber"] = after
            iterator = self.client.get_shard_iterator(**request)["ShardIterator"]
            shards[shard_id], _ = self._drain(iterator, lambda_shape)
        return shards

    def read(self, *, lambda_shape: bool = True) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        for shard_id in self._shards():
            if shard_id not in self._iterators:
                self._iterators[shard_id] = self.client.get_shard_iterator(
                    StreamArn=self.stream_arn,
                    ShardId=shard_id,
                    ShardIteratorType="TRIM_HORIZON",
                )["ShardIterator"]
            shard_records, self._iterators[shard_id] = self._drain(
                self._iterators[shard_id], lambda_shape
            )
            records += shard_records
        return records

    def _drain(
        self, iterator: str | None, lambda_shape: bool
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The records from ``iterator`` to the shard's current end, and the iterator there."""
        records: list[dict[str, Any]] = []
        while iterator:
            response = self.client.get_records(ShardIterator=iterator)
            batch = response.get("Records", [])
            records.extend(
                lambda_record(r, self.stream_arn) if lambda_shape else dict(r) for r in batch
            )
            iterator = response.get("NextShardIterator")
            if not batch:
                break
        return records, iterator
