"""The emulator fixes keep moto's answers: a partition's Query returns what DynamoDB's
semantics say, page by page; an item comes back as it was written, whatever its attribute
types; a cancelled transaction leaves the table and its stream as they were, and a
committed one writes items and stream records as DynamoDB does. Each test runs under moto
as it is and under the fixes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb import models as dynamodb_models

from receipt_compaction_tools.aws import moto_fixes

TABLE = "fixes"
# PK -> SKs written under it; one partition's SKs share a prefix with another partition's.
ROWS = {
    "IMAGE#a": [
        "RECEIPT#00001",
        *(f"RECEIPT#00001#LINE#{i:05d}" for i in range(1, 8)),
        "RECEIPT#00002",
    ],
    "IMAGE#b": ["RECEIPT#00001", "RECEIPT#00001#LINE#00001"],
    "LOCK#lines": ["LOCK"],
}


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"PK": {"S": pk}, "SK": {"S": sk}}


def _table_with_rows() -> Any:
    """The test table (a stream, a GSI) holding ``ROWS``, wherever boto3 points; its client."""
    client = boto3.client("dynamodb", region_name="us-east-1")
    client.create_table(
        TableName=TABLE,
        KeySchema=[
            {"AttributeName": "PK", "KeyType": "HASH"},
            {"AttributeName": "SK", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "S"},
            {"AttributeName": "TYPE", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-type",
                "KeySchema": [{"AttributeName": "TYPE", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    for pk, sks in ROWS.items():
        for n, sk in enumerate(sks):
            kind = "LINE" if "#LINE#" in sk else "ROW"
            client.put_item(
                TableName=TABLE,
                Item={**_key(pk, sk), "TYPE": {"S": kind}, "n": {"N": str(n)}},
            )
    return client


@pytest.fixture(params=["moto", "fixed"])
def dynamodb(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A table with a stream, under moto as it is and under the fixes."""
    if request.param == "fixed":
        for owner, attribute, replacement in moto_fixes.PATCHES:
            monkeypatch.setattr(owner, attribute, replacement)
    with mock_aws():
        yield _table_with_rows()


def _query_all(client: Any, **kwargs: Any) -> list[tuple[str, str]]:
    """Every page of a query, as (PK, SK) pairs in the order returned."""
    found: list[tuple[str, str]] = []
    while True:
        page = client.query(TableName=TABLE, **kwargs)
        found += [(i["PK"]["S"], i["SK"]["S"]) for i in page["Items"]]
        if "LastEvaluatedKey" not in page:
            return found
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _prefix_query(pk: str, prefix: str, **extra: Any) -> dict[str, Any]:
    return {
        "KeyConditionExpression": "PK = :pk AND begins_with(SK, :p)",
        "ExpressionAttributeValues": {":pk": {"S": pk}, ":p": {"S": prefix}, **extra},
        "ConsistentRead": True,
    }


@pytest.mark.parametrize("limit", [None, 1, 3])
@pytest.mark.parametrize("forward", [True, False])
def test_a_query_returns_its_partition_in_key_order_page_by_page(
    dynamodb: Any, limit: int | None, forward: bool
) -> None:
    kwargs = _prefix_query("IMAGE#a", "RECEIPT#00001")
    kwargs["ScanIndexForward"] = forward
    if limit is not None:
        kwargs["Limit"] = limit
    expected = sorted(
        (("IMAGE#a", sk) for sk in ROWS["IMAGE#a"] if sk.startswith("RECEIPT#00001")),
        reverse=not forward,
    )
    assert _query_all(dynamodb, **kwargs) == expected


def test_a_filtered_projected_query_and_an_index_query_answer_as_dynamodb(dynamodb: Any) -> None:
    kwargs = _prefix_query("IMAGE#a", "RECEIPT#", **{":t": {"S": "LINE"}})
    page = dynamodb.query(
        TableName=TABLE,
        FilterExpression="#t = :t",
        ProjectionExpression="SK, #t",
        ExpressionAttributeNames={"#t": "TYPE"},
        **kwargs,
    )
    lines = [f"RECEIPT#00001#LINE#{i:05d}" for i in range(1, 8)]
    assert [i["SK"]["S"] for i in page["Items"]] == lines
    assert all(set(i) == {"SK", "TYPE"} for i in page["Items"])
    assert page["ScannedCount"] == 9  # every row under the prefix is read, then filtered
    lines = dynamodb.query(
        TableName=TABLE,
        IndexName="by-type",
        KeyConditionExpression="#t = :t",
        ExpressionAttributeNames={"#t": "TYPE"},
        ExpressionAttributeValues={":t": {"S": "LINE"}},
    )["Items"]
    assert len(lines) == 8  # seven under IMAGE#a, one under IMAGE#b
    empty = dynamodb.query(TableName=TABLE, **_prefix_query("IMAGE#none", "RECEIPT#"))
    assert empty["Items"] == []


def test_a_query_ends_its_page_at_the_size_limit_as_its_items_are_now(dynamodb: Any) -> None:
    """A page holds at most 1 MB of items (moto counts 1,000,000 bytes): four items of
    300,000 bytes come back three and one; after two of them grow in place to 390,000
    bytes the same query comes back two and two, so no size is remembered from the
    earlier query."""

    def key(n: int) -> dict[str, Any]:
        return _key("IMAGE#big", f"RECEIPT#{n:05d}")

    def pages() -> list[int]:
        kwargs: dict[str, Any] = _prefix_query("IMAGE#big", "RECEIPT#")
        sizes = []
        while True:
            page = dynamodb.query(TableName=TABLE, **kwargs)
            sizes.append(len(page["Items"]))
            if "LastEvaluatedKey" not in page:
                return sizes
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    for n in range(4):
        dynamodb.put_item(TableName=TABLE, Item={**key(n), "body": {"S": "x" * 300_000}})
    assert pages() == [3, 1]
    for n in range(2):
        dynamodb.update_item(
            TableName=TABLE,
            Key=key(n),
            UpdateExpression="SET more = :m",
            ExpressionAttributeValues={":m": {"S": "x" * 90_000}},
        )
    assert pages() == [2, 2]


# Every attribute type, nested and empty where DynamoDB allows it.
EVERY_TYPE = {
    "s": {"S": "text"},
    "empty_s": {"S": ""},
    "n": {"N": "-12.5"},
    "b": {"B": b"\x00\xffbytes"},
    "ss": {"SS": ["a", "b"]},
    "ns": {"NS": ["1", "2.5"]},
    "bs": {"BS": [b"x", b"y"]},
    "yes_flag": {"BOOL": True},
    "no_flag": {"BOOL": False},
    "null_value": {"NULL": True},
    "m": {
        "M": {
            "inner": {"S": "x"},
            "flag": {"BOOL": False},
            "deeper": {"M": {"n": {"N": "1"}, "l": {"L": [{"S": "y"}, {"NULL": True}]}}},
        }
    },
    "l": {"L": [{"N": "3"}, {"M": {"k": {"SS": ["z"]}}}, {"L": []}]},
    "empty_m": {"M": {}},
    "empty_l": {"L": []},
}


def test_an_item_of_every_attribute_type_reads_back_as_written(dynamodb: Any) -> None:
    written = {**_key("IMAGE#c", "RECEIPT#00001"), **EVERY_TYPE}
    dynamodb.put_item(TableName=TABLE, Item=written)

    def as_sets(item: dict[str, Any]) -> dict[str, Any]:  # set members come in any order
        sets = ("SS", "NS", "BS")
        return {
            k: {t: sorted(v) if t in sets else v for t, v in a.items()} for k, a in item.items()
        }

    got = dynamodb.get_item(TableName=TABLE, Key=_key("IMAGE#c", "RECEIPT#00001"))["Item"]
    assert as_sets(got) == as_sets(written)
    queried = dynamodb.query(TableName=TABLE, **_prefix_query("IMAGE#c", "RECEIPT#"))["Items"]
    assert [as_sets(i) for i in queried] == [as_sets(written)]
    for names in (
        ["m", "l", "yes_flag"],
        ["s", "n", "no_flag", "null_value", "m", "absent"],
        ["empty_s", "b"],
    ):
        projection = {"ProjectionExpression": ", ".join(names)}
        projected = dynamodb.query(
            TableName=TABLE, **projection, **_prefix_query("IMAGE#c", "RECEIPT#")
        )["Items"]
        expected = {k: EVERY_TYPE[k] for k in names if k in EVERY_TYPE}
        assert [as_sets(i) for i in projected] == [as_sets(expected)]
        got = dynamodb.get_item(
            TableName=TABLE, Key=_key("IMAGE#c", "RECEIPT#00001"), **projection
        )["Item"]
        assert as_sets(got) == as_sets(expected)


def test_a_projection_writes_numbers_in_canonical_form_as_moto_does(dynamodb: Any) -> None:
    numbers = {
        "plain": {"N": "12.5"},
        "exponent": {"N": "1e3"},
        "nested": {"M": {"x": {"N": "2E1"}}},
    }
    dynamodb.put_item(TableName=TABLE, Item={**_key("IMAGE#c", "RECEIPT#00002"), **numbers})
    got = dynamodb.get_item(
        TableName=TABLE,
        Key=_key("IMAGE#c", "RECEIPT#00002"),
        ProjectionExpression="plain, exponent, nested",
    )["Item"]
    assert got == {
        "plain": {"N": "12.5"},
        "exponent": {"N": "1E+3"},
        "nested": {"M": {"x": {"N": "2E+1"}}},
    }


def test_a_table_without_a_sort_key_answers_a_query_by_its_key(dynamodb: Any) -> None:
    dynamodb.create_table(
        TableName="plain",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for name in ("a", "b"):
        dynamodb.put_item(TableName="plain", Item={"id": {"S": name}, "v": {"N": "1"}})
    for name, expected in (("a", [{"id": {"S": "a"}, "v": {"N": "1"}}]), ("zz", [])):
        found = dynamodb.query(
            TableName="plain",
            KeyConditionExpression="id = :id",
            ExpressionAttributeValues={":id": {"S": name}},
        )["Items"]
        assert found == expected


def _table_rows(client: Any) -> dict[tuple[str, str], dict[str, Any]]:
    items = client.scan(TableName=TABLE, ConsistentRead=True)["Items"]
    return {(i["PK"]["S"], i["SK"]["S"]): i for i in items}


def _stream_events(client: Any) -> list[tuple[str, str]]:
    """(event, SK) of every record of the table's stream, oldest first."""
    streams = boto3.client("dynamodbstreams", region_name="us-east-1")
    arn = client.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = streams.get_records(ShardIterator=iterator, Limit=1000)["Records"]
    return [(r["eventName"], r["dynamodb"]["Keys"]["SK"]["S"]) for r in records]


def _writes(condition_holds: bool) -> list[dict[str, Any]]:
    """A Put of a new row, an Update and a Delete of existing rows, then a ConditionCheck
    on the lock row that holds or not."""
    return [
        {
            "Put": {
                "TableName": TABLE,
                "Item": {**_key("IMAGE#b", "RECEIPT#00009"), "n": {"N": "9"}},
            }
        },
        {
            "Update": {
                "TableName": TABLE,
                "Key": _key("IMAGE#a", "RECEIPT#00002"),
                "UpdateExpression": "SET n = :n",
                "ExpressionAttributeValues": {":n": {"N": "42"}},
            }
        },
        {"Delete": {"TableName": TABLE, "Key": _key("IMAGE#b", "RECEIPT#00001")}},
        {
            "ConditionCheck": {
                "TableName": TABLE,
                "Key": _key("LOCK#lines", "LOCK"),
                "ConditionExpression": "attribute_exists(PK)" if condition_holds else "n = :x",
                **({} if condition_holds else {"ExpressionAttributeValues": {":x": {"N": "7"}}}),
            }
        },
    ]


def test_a_cancelled_transaction_leaves_the_table_and_its_stream_as_they_were(
    dynamodb: Any,
) -> None:
    rows, events = _table_rows(dynamodb), _stream_events(dynamodb)
    with pytest.raises(ClientError) as cancelled:
        dynamodb.transact_write_items(TransactItems=_writes(condition_holds=False))
    reasons = [r["Code"] for r in cancelled.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "None", "ConditionalCheckFailed"]
    assert _table_rows(dynamodb) == rows
    assert _stream_events(dynamodb) == events
    with pytest.raises(ClientError, match="multiple operations on one item"):
        dynamodb.transact_write_items(
            TransactItems=[
                _writes(condition_holds=True)[1],
                {"Delete": {"TableName": TABLE, "Key": _key("IMAGE#a", "RECEIPT#00002")}},
            ]
        )
    assert _table_rows(dynamodb) == rows
    assert _stream_events(dynamodb) == events


def test_a_committed_transaction_writes_its_items_and_their_stream_records(
    dynamodb: Any,
) -> None:
    rows, events = _table_rows(dynamodb), _stream_events(dynamodb)
    dynamodb.transact_write_items(TransactItems=_writes(condition_holds=True))
    after = _table_rows(dynamodb)
    assert set(after) == set(rows) - {("IMAGE#b", "RECEIPT#00001")} | {("IMAGE#b", "RECEIPT#00009")}
    assert after[("IMAGE#a", "RECEIPT#00002")]["n"] == {"N": "42"}
    assert _stream_events(dynamodb) == [
        *events,
        ("INSERT", "RECEIPT#00009"),
        ("MODIFY", "RECEIPT#00002"),
        ("REMOVE", "RECEIPT#00001"),
    ]


def test_a_write_from_another_thread_during_a_cancelled_transaction_keeps_its_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """moto's server runs requests on threads. A write that arrives while a transaction is
    being refused waits for it, then lands with its stream record (plain moto loses it)."""
    for owner, attribute, replacement in moto_fixes.PATCHES:
        monkeypatch.setattr(owner, attribute, replacement)
    with mock_aws():
        client = _table_with_rows()
        writer = threading.Thread(
            target=lambda: client.put_item(TableName=TABLE, Item=_key("IMAGE#w", "RECEIPT#00001"))
        )
        evaluate_condition = dynamodb_models.get_filter_expression

        def meanwhile(*args: Any, **kwargs: Any) -> Any:
            if not writer.is_alive() and writer.ident is None:
                writer.start()
                writer.join(timeout=0.5)  # unguarded, the write lands inside the transaction
            return evaluate_condition(*args, **kwargs)

        monkeypatch.setattr(dynamodb_models, "get_filter_expression", meanwhile)
        with pytest.raises(ClientError, match="TransactionCanceled"):
            client.transact_write_items(TransactItems=_writes(condition_holds=False))
        writer.join()
        assert ("IMAGE#w", "RECEIPT#00001") in _table_rows(client)
        assert _stream_events(client)[-1] == ("INSERT", "RECEIPT#00001")
