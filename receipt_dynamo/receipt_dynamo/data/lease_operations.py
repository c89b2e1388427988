"""The compaction lease of contract §7: conditional writes on the collection's lock row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from receipt_dynamo.constants import ChromaDBCollection
from receipt_dynamo.data.base import DynamoBase, is_conditional_failure
from receipt_dynamo.entities import CompactionLock, deserialize
from receipt_dynamo.exceptions import LeaseHeldError, LeaseLostError
from receipt_dynamo.keys import compaction_lock_id, lock_pk
from receipt_dynamo.timestamps import to_iso

LOCK_ROW_TTL = timedelta(days=30)


def lock_key(collection: ChromaDBCollection | str) -> dict[str, dict[str, str]]:
    c = ChromaDBCollection(collection).value
    return {"PK": {"S": lock_pk(c, compaction_lock_id(c))}, "SK": {"S": "LOCK"}}


class LeaseOperations(DynamoBase):
    def get_compaction_lock(self, collection: ChromaDBCollection | str) -> CompactionLock | None:
        """The collection's lock row (strongly consistent), or None if it never existed."""
        key = lock_key(collection)
        item = self._get_item(key["PK"]["S"], key["SK"]["S"])
        return None if item is None else CompactionLock.from_item(item)

    def acquire_lease(
        self,
        collection: ChromaDBCollection | str,
        *,
        owner: str,
        duration_seconds: float,
        pointer_token: int = 0,
        now: datetime | None = None,
    ) -> CompactionLock:
        """Take the lease if it is free or expired; the result carries the fencing token.

        The token is ``if_not_exists(fencing_token, pointer_token) + 1``, so it keeps
        increasing even if the row was removed (the pointer remembers the last token).
        """
        moment = now or datetime.now(UTC)
        c = ChromaDBCollection(collection).value
        try:
            response = self.client.update_item(
                TableName=self.table_name,
                Key=lock_key(c),
                UpdateExpression=(
                    "SET #owner = :me, expires = :exp, heartbeat = :now, "
                    "time_to_live = :ttl, #collection = :collection, #type = :type, "
                    "fencing_token = if_not_exists(fencing_token, :ptok) + :one"
                ),
                ConditionExpression=(
                    "attribute_not_exists(PK) OR attribute_not_exists(#owner) OR expires < :now"
                ),
                ExpressionAttributeNames={
                    "#owner": "owner",
                    "#collection": "collection",
                    "#type": "TYPE",
                },
                ExpressionAttributeValues={
                    ":me": {"S": owner},
                    ":exp": {"S": to_iso(moment + timedelta(seconds=duration_seconds))},
                    ":now": {"S": to_iso(moment)},
                    ":ttl": {"N": str(int((moment + LOCK_ROW_TTL).timestamp()))},
                    ":collection": {"S": c},
                    ":type": {"S": CompactionLock.TYPE},
                    ":ptok": {"N": str(pointer_token)},
                    ":one": {"N": "1"},
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if is_conditional_failure(error):
                holder = _holder_description(error)
                raise LeaseHeldError(f"lease on {c} is held{holder}") from error
            raise
        return CompactionLock.from_item(response["Attributes"])

    def heartbeat_lease(
        self,
        collection: ChromaDBCollection | str,
        *,
        owner: str,
        fencing_token: int,
        duration_seconds: float,
        now: datetime | None = None,
    ) -> CompactionLock:
        """Extend the lease; LeaseLostError if ``owner``/``fencing_token`` no longer hold it."""
        moment = now or datetime.now(UTC)
        c = ChromaDBCollection(collection).value
        try:
            response = self.client.update_item(
                TableName=self.table_name,
                Key=lock_key(c),
                UpdateExpression="SET expires = :exp, heartbeat = :now, time_to_live = :ttl",
                ConditionExpression="#owner = :me AND fencing_token = :tok",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={
                    ":me": {"S": owner},
                    ":tok": {"N": str(fencing_token)},
                    ":exp": {"S": to_iso(moment + timedelta(seconds=duration_seconds))},
                    ":now": {"S": to_iso(moment)},
                    ":ttl": {"N": str(int((moment + LOCK_ROW_TTL).timestamp()))},
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if is_conditional_failure(error):
                raise LeaseLostError(
                    f"lease on {c} lost by {owner} (token {fencing_token})"
                    f"{_holder_description(error)}"
                ) from error
            raise
        return CompactionLock.from_item(response["Attributes"])

    def release_lease(
        self,
        collection: ChromaDBCollection | str,
        *,
        owner: str,
        now: datetime | None = None,
    ) -> None:
        """Give the lease up; the row and its fencing token stay."""
        moment = now or datetime.now(UTC)
        c = ChromaDBCollection(collection).value
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=lock_key(c),
                UpdateExpression="SET expires = :now REMOVE #owner",
                ConditionExpression="#owner = :me",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":me": {"S": owner}, ":now": {"S": to_iso(moment)}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if is_conditional_failure(error):
                raise LeaseLostError(
                    f"lease on {c} is not held by {owner}{_holder_description(error)}"
                ) from error
            raise


def _holder_description(error: ClientError) -> str:
    """ ", by <owner> until <expires> (token n)" from the item returned on failure."""
    item: Any = error.response.get("Item")
    if not item:
        return ""
    old = deserialize(item)
    if old.get("owner") is None:
        return " (the row shows no owner)"
    return f" by {old['owner']} until {old.get('expires')} (token {old.get('fencing_token')})"
