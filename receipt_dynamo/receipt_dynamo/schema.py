"""The table's schema (contract §2), as CreateTable arguments and a helper that creates it.

The Pulumi program is tested against ``table_definition`` so both stay identical.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from receipt_dynamo.aws_clients import aws_client

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient

TTL_ATTRIBUTE: Final = "time_to_live"
STREAM_VIEW_TYPE: Final = "NEW_AND_OLD_IMAGES"
BILLING_MODE: Final = "PAY_PER_REQUEST"

# Global secondary indexes: name -> (hash key, range key or None). All project ALL.
GSI_KEYS: Final[dict[str, tuple[str, str | None]]] = {
    "GSI1": ("GSI1PK", "GSI1SK"),
    "GSI2": ("GSI2PK", "GSI2SK"),
    "GSI3": ("GSI3PK", "GSI3SK"),
    "GSITYPE": ("TYPE", None),
}


def _key_schema(hash_key: str, range_key: str | None) -> list[dict[str, str]]:
    schema = [{"AttributeName": hash_key, "KeyType": "HASH"}]
    if range_key is not None:
        schema.append({"AttributeName": range_key, "KeyType": "RANGE"})
    return schema


def table_definition(table_name: str) -> dict[str, Any]:
    """CreateTable keyword arguments for the receipt table."""
    attribute_names = ["PK", "SK"]
    for hash_key, range_key in GSI_KEYS.values():
        attribute_names += [hash_key] + ([range_key] if range_key else [])
    return {
        "TableName": table_name,
        "KeySchema": _key_schema("PK", "SK"),
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": "S"} for name in attribute_names
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": index,
                "KeySchema": _key_schema(hash_key, range_key),
                "Projection": {"ProjectionType": "ALL"},
            }
            for index, (hash_key, range_key) in GSI_KEYS.items()
        ],
        "BillingMode": BILLING_MODE,
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": STREAM_VIEW_TYPE},
    }


def create_table(
    table_name: str,
    *,
    client: DynamoDBClient | None = None,
    region: str | None = None,
    endpoint_url: str | None = None,
) -> str:
    """Create the table with TTL and point-in-time recovery; return its stream ARN."""
    dynamodb: DynamoDBClient = client or aws_client(
        "dynamodb", region_name=region, endpoint_url=endpoint_url
    )
    description = dynamodb.create_table(**table_definition(table_name))["TableDescription"]
    dynamodb.get_waiter("table_exists").wait(
        TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    dynamodb.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
    )
    dynamodb.update_continuous_backups(
        TableName=table_name,
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
    )
    return description["LatestStreamArn"]
