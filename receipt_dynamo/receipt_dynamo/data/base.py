"""Shared plumbing of DynamoClient: the boto3 client, key reads, queries and error mapping."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import ClientError

from receipt_dynamo.aws_clients import aws_client
from receipt_dynamo.entities.base import DynamoEntity, Item
from receipt_dynamo.exceptions import (
    EntityAlreadyExistsError,
    EntityNotFoundError,
    ReceiptDynamoError,
)

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient

T = TypeVar("T")

BATCH_WRITE_LIMIT = 25
BATCH_WRITE_ATTEMPTS = 8


def is_conditional_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def describe_key(pk: str, sk: str) -> str:
    return f"PK={pk!r} SK={sk!r}"


class DynamoBase:
    """Holds the table name and client; offers the primitive reads and writes."""

    def __init__(
        self,
        table_name: str,
        region: str | None = None,
        endpoint_url: str | None = None,
        *,
        client: DynamoDBClient | None = None,
    ) -> None:
        if not table_name:
            raise ValueError("table_name must be a non-empty string")
        self.table_name = table_name
        # Without an explicit endpoint boto3 honours AWS_ENDPOINT_URL (local emulators).
        self.client: DynamoDBClient = client or aws_client(
            "dynamodb", region_name=region, endpoint_url=endpoint_url
        )

    # --- single items -------------------------------------------------------------------

    def put_entity(self, entity: DynamoEntity, *, overwrite: bool = True) -> None:
        """Write ``entity``; with ``overwrite=False`` an existing item is an error."""
        kwargs: dict[str, Any] = {"TableName": self.table_name, "Item": entity.to_item()}
        if not overwrite:
            kwargs["ConditionExpression"] = "attribute_not_exists(PK)"
        try:
            self.client.put_item(**kwargs)
        except ClientError as error:
            if is_conditional_failure(error):
                raise EntityAlreadyExistsError(
                    f"{entity.TYPE} already exists: {describe_key(entity.pk, entity.sk)}"
                ) from error
            raise

    def delete_entity(self, entity: DynamoEntity) -> None:
        """Delete ``entity``'s item; deleting an absent item is not an error."""
        self._delete_key(entity.pk, entity.sk)

    def _delete_key(self, pk: str, sk: str) -> None:
        self.client.delete_item(TableName=self.table_name, Key={"PK": {"S": pk}, "SK": {"S": sk}})

    def _get_item(self, pk: str, sk: str) -> Item | None:
        response = self.client.get_item(
            TableName=self.table_name,
            Key={"PK": {"S": pk}, "SK": {"S": sk}},
            ConsistentRead=True,
        )
        return response.get("Item")

    def _get_required(self, pk: str, sk: str, what: str, parse: Callable[[Item], T]) -> T:
        item = self._get_item(pk, sk)
        if item is None:
            raise EntityNotFoundError(f"{what} not found: {describe_key(pk, sk)}")
        return parse(item)

    # --- batches ------------------------------------------------------------------------

    def put_entities(self, entities: Iterable[DynamoEntity]) -> None:
        """Write many items with BatchWriteItem, retrying unprocessed items."""
        self._batch_write({"PutRequest": {"Item": e.to_item()}} for e in entities)

    def delete_entities(self, entities: Iterable[DynamoEntity]) -> None:
        """Delete many items with BatchWriteItem, retrying unprocessed items."""
        self._batch_write({"DeleteRequest": {"Key": e.key}} for e in entities)

    def _batch_write(self, requests: Iterable[dict[str, Any]]) -> None:
        for chunk in _chunks(list(requests), BATCH_WRITE_LIMIT):
            pending: list[Any] = list(chunk)
            for attempt in range(BATCH_WRITE_ATTEMPTS):
                response = self.client.batch_write_item(RequestItems={self.table_name: pending})
                pending = list(response.get("UnprocessedItems", {}).get(self.table_name, []))
                if not pending:
                    break
                time.sleep(min(0.05 * 2**attempt, 2.0))
            if pending:
                raise ReceiptDynamoError(
                    f"{len(pending)} items of a batch write to {self.table_name} stayed "
                    f"unprocessed after {BATCH_WRITE_ATTEMPTS} attempts"
                )

    # --- queries ------------------------------------------------------------------------

    def _query_prefix(
        self,
        pk: str,
        sk_prefix: str,
        entity_types: str | set[str],
        *,
        page_size: int | None = None,
        attributes: list[str] | None = None,
    ) -> Iterator[Item]:
        """Every item of the given ``TYPE``(s) under ``PK`` whose SK starts with ``sk_prefix``.

        Reads the base table with ``ConsistentRead`` (GSIs cannot be read consistently)
        and follows ``LastEvaluatedKey`` to the end.
        """
        types = sorted({entity_types} if isinstance(entity_types, str) else entity_types)
        type_values = {f":type{i}": {"S": t} for i, t in enumerate(types)}
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "PK = :pk AND begins_with(SK, :prefix)",
            "FilterExpression": f"#type IN ({', '.join(type_values)})",
            "ExpressionAttributeNames": {"#type": "TYPE"},
            "ExpressionAttributeValues": {
                ":pk": {"S": pk},
                ":prefix": {"S": sk_prefix},
                **type_values,
            },
            "ConsistentRead": True,
        }
        if page_size is not None:
            kwargs["Limit"] = page_size
        if attributes is not None:
            names = {f"#p{i}": name for i, name in enumerate(attributes)}
            kwargs["ProjectionExpression"] = ", ".join(names)
            kwargs["ExpressionAttributeNames"] = {**kwargs["ExpressionAttributeNames"], **names}
        while True:
            response = self.client.query(**kwargs)
            yield from response.get("Items", [])
            last_key = response.get("LastEvaluatedKey")
            if not last_key:
                return
            kwargs["ExclusiveStartKey"] = last_key


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
