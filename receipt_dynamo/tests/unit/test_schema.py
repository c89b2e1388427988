"""create_table builds exactly the schema of contract §2."""

from __future__ import annotations

import boto3

from receipt_dynamo.schema import table_definition
from receipt_dynamo.testing import TableFixture


def test_table_has_keys_indexes_stream_ttl_and_pitr(mocked_table: TableFixture) -> None:
    dynamodb = boto3.client("dynamodb")
    table = dynamodb.describe_table(TableName=mocked_table.name)["Table"]
    assert table["KeySchema"] == [
        {"AttributeName": "PK", "KeyType": "HASH"},
        {"AttributeName": "SK", "KeyType": "RANGE"},
    ]
    indexes = {i["IndexName"]: i for i in table["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"GSI1", "GSI2", "GSI3", "GSITYPE"}
    assert indexes["GSITYPE"]["KeySchema"] == [{"AttributeName": "TYPE", "KeyType": "HASH"}]
    assert indexes["GSI2"]["KeySchema"] == [
        {"AttributeName": "GSI2PK", "KeyType": "HASH"},
        {"AttributeName": "GSI2SK", "KeyType": "RANGE"},
    ]
    assert all(i["Projection"] == {"ProjectionType": "ALL"} for i in indexes.values())
    assert table["StreamSpecification"] == {
        "StreamEnabled": True,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    assert table["LatestStreamArn"] == mocked_table.stream_arn
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = dynamodb.describe_time_to_live(TableName=mocked_table.name)
    assert ttl["TimeToLiveDescription"] == {
        "TimeToLiveStatus": "ENABLED",
        "AttributeName": "time_to_live",
    }
    backups = dynamodb.describe_continuous_backups(TableName=mocked_table.name)
    pitr = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert pitr["PointInTimeRecoveryStatus"] == "ENABLED"


def test_definition_declares_only_string_key_attributes() -> None:
    definition = table_definition("t")
    names = {a["AttributeName"] for a in definition["AttributeDefinitions"]}
    assert names == {"PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK", "GSI3PK", "GSI3SK", "TYPE"}
    assert {a["AttributeType"] for a in definition["AttributeDefinitions"]} == {"S"}
