"""A freshly created receipt table, as tests use it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Self

from receipt_dynamo.data.dynamo_client import DynamoClient
from receipt_dynamo.schema import create_table


@dataclass(frozen=True)
class TableFixture:
    """A receipt table (contract §2 schema, stream on) and its client."""

    name: str
    stream_arn: str
    client: DynamoClient

    @classmethod
    def create(cls) -> Self:
        """A table with a unique name, wherever boto3 points: moto in-process under
        ``mock_aws``, or the server that ``AWS_ENDPOINT_URL`` names."""
        name = f"receipts-{uuid.uuid4().hex[:8]}"
        return cls(name=name, stream_arn=create_table(name), client=DynamoClient(name))
