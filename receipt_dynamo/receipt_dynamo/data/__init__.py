"""Table access: ``DynamoClient`` and its operation groups."""

from receipt_dynamo.data.dynamo_client import DynamoClient

__all__ = ["DynamoClient"]
