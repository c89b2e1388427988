"""The snapshot pointer: reads, the publish transaction of contract §6, and adoption."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from receipt_dynamo.constants import ChromaDBCollection
from receipt_dynamo.data.base import DynamoBase
from receipt_dynamo.data.lease_operations import lock_key
from receipt_dynamo.entities import SnapshotPointer
from receipt_dynamo.exceptions import (
    LeaseLostError,
    PointerMovedError,
    ReceiptDynamoError,
)
from receipt_dynamo.keys import snapshot_pointer_pk
from receipt_dynamo.timestamps import now_iso


class SnapshotPointerOperations(DynamoBase):
    def get_snapshot_pointer(self, collection: ChromaDBCollection | str) -> SnapshotPointer | None:
        """The collection's pointer (strongly consistent), or None if none was published."""
        c = ChromaDBCollection(collection).value
        item = self._get_item(snapshot_pointer_pk(c), "POINTER")
        return None if item is None else SnapshotPointer.from_item(item)

    def swap_snapshot_pointer(
        self,
        collection: ChromaDBCollection | str,
        version: str,
        *,
        base: SnapshotPointer | None,
        owner: str,
        fencing_token: int,
    ) -> SnapshotPointer:
        """Move the pointer from ``base`` to ``version`` in one transaction.

        The transaction checks that ``owner`` still holds the lease with ``fencing_token``
        and that the pointer is still at ``base`` (absent when ``base`` is None). Raises
        LeaseLostError or PointerMovedError; nothing is written in either case.
        """
        c = ChromaDBCollection(collection)
        new, put_condition = _moved_pointer(c, version, base, fencing_token)
        self._commit_pointer(c, new, put_condition, base, owner=owner, fencing_token=fencing_token)
        return new

    def adopt_snapshot_pointer(
        self,
        collection: ChromaDBCollection | str,
        version: str,
        *,
        owner: str,
        fencing_token: int,
    ) -> SnapshotPointer:
        """Create the pointer for an existing, verified snapshot version (contract §6:
        ``fencing_token`` 0, ``attribute_not_exists(PK)``), in the same lock-checked
        transaction as every publish (rev 3): only the lease holder ``owner`` with
        ``fencing_token`` can adopt. Raises LeaseLostError, or PointerMovedError when a
        pointer exists already; nothing is written in either case.
        """
        c = ChromaDBCollection(collection)
        pointer = SnapshotPointer(
            collection=c, version=version, history=(version,), fencing_token=0, updated_at=now_iso()
        )
        condition = {"ConditionExpression": "attribute_not_exists(PK)"}
        self._commit_pointer(c, pointer, condition, None, owner=owner, fencing_token=fencing_token)
        return pointer

    def _commit_pointer(
        self,
        collection: ChromaDBCollection,
        pointer: SnapshotPointer,
        put_condition: dict[str, Any],
        base: SnapshotPointer | None,
        *,
        owner: str,
        fencing_token: int,
    ) -> None:
        """The commit primitive: a ``ConditionCheck`` on the lock row and the conditional
        ``Put`` of the pointer, in one ``TransactWriteItems``."""
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "ConditionCheck": {
                            "TableName": self.table_name,
                            "Key": lock_key(collection),
                            "ConditionExpression": "#owner = :me AND fencing_token = :tok",
                            "ExpressionAttributeNames": {"#owner": "owner"},
                            "ExpressionAttributeValues": {
                                ":me": {"S": owner},
                                ":tok": {"N": str(fencing_token)},
                            },
                        }
                    },
                    {
                        "Put": {
                            "TableName": self.table_name,
                            "Item": pointer.to_item(),
                            **put_condition,  # type: ignore[typeddict-item]
                        }
                    },
                ]
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
            raise _refusal(
                collection,
                pointer.version,
                base,
                owner=owner,
                fencing_token=fencing_token,
                reasons=reasons,
            ) from error


def _moved_pointer(
    collection: ChromaDBCollection,
    version: str,
    base: SnapshotPointer | None,
    fencing_token: int,
) -> tuple[SnapshotPointer, dict[str, Any]]:
    """The pointer at ``version`` and the condition that the item is still at ``base``."""
    updated_at = now_iso()
    if base is None:
        first = SnapshotPointer(
            collection=collection,
            version=version,
            history=(version,),
            fencing_token=fencing_token,
            updated_at=updated_at,
        )
        return first, {"ConditionExpression": "attribute_not_exists(PK)"}
    return base.successor(version, fencing_token, updated_at), {
        "ConditionExpression": "version = :base AND fencing_token <= :tok",
        "ExpressionAttributeValues": {
            ":base": {"S": base.version},
            ":tok": {"N": str(fencing_token)},
        },
    }


def _refusal(
    collection: ChromaDBCollection,
    version: str,
    base: SnapshotPointer | None,
    *,
    owner: str,
    fencing_token: int,
    reasons: list[str | None],
) -> ReceiptDynamoError:
    """Why the transaction was cancelled: the lease check (first item) or the pointer."""
    if reasons[:1] == ["ConditionalCheckFailed"]:
        return LeaseLostError(
            f"lease on {collection.value} is no longer held by {owner} "
            f"(token {fencing_token}); pointer not moved to {version}"
        )
    if reasons[1:2] == ["ConditionalCheckFailed"]:
        return PointerMovedError(
            f"pointer of {collection.value} moved away from "
            f"{base.version if base else 'nothing'}; not moved to {version}"
        )
    return ReceiptDynamoError(
        f"publish of {version} on {collection.value} was cancelled: {reasons}"
    )
