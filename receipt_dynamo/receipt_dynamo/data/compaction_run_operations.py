"""CompactionRun rows: creation, reads and the per-collection state transitions."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from receipt_dynamo.constants import ChromaDBCollection, CompactionState, EntityType
from receipt_dynamo.data.base import DynamoBase, describe_key, is_conditional_failure
from receipt_dynamo.entities import CompactionRun, serialize
from receipt_dynamo.exceptions import EntityNotFoundError
from receipt_dynamo.keys import compaction_run_sk, image_pk, receipt_prefix
from receipt_dynamo.timestamps import now_iso

MAX_ERROR_LENGTH = 4_000


class CompactionRunOperations(DynamoBase):
    def add_compaction_run(self, run: CompactionRun) -> None:
        """Create the run row; an existing run with the same key is an error."""
        self.put_entity(run, overwrite=False)

    def get_compaction_run(self, image_id: str, receipt_id: int, run_id: str) -> CompactionRun:
        return self._get_required(
            image_pk(image_id),
            compaction_run_sk(receipt_id, run_id),
            "CompactionRun",
            CompactionRun.from_item,
        )

    def delete_compaction_run(self, image_id: str, receipt_id: int, run_id: str) -> None:
        self._delete_key(image_pk(image_id), compaction_run_sk(receipt_id, run_id))

    def list_compaction_runs_for_receipt(
        self, image_id: str, receipt_id: int, *, page_size: int | None = None
    ) -> list[CompactionRun]:
        items = self._query_prefix(
            image_pk(image_id),
            f"{receipt_prefix(receipt_id)}COMPACTION_RUN#",
            EntityType.COMPACTION_RUN,
            page_size=page_size,
        )
        return [CompactionRun.from_item(item) for item in items]

    def mark_compaction_run_started(
        self, image_id: str, receipt_id: int, run_id: str, collection: ChromaDBCollection | str
    ) -> CompactionRun:
        c = ChromaDBCollection(collection).value
        return self._update_run(
            image_id,
            receipt_id,
            run_id,
            set_values={f"{c}_state": CompactionState.PROCESSING.value, f"{c}_started_at": None},
            remove=[f"{c}_error", f"{c}_finished_at"],
        )

    def mark_compaction_run_completed(
        self,
        image_id: str,
        receipt_id: int,
        run_id: str,
        collection: ChromaDBCollection | str,
        merged_vectors: int,
    ) -> CompactionRun:
        c = ChromaDBCollection(collection).value
        if merged_vectors < 0:
            raise ValueError(f"merged_vectors must be >= 0, got {merged_vectors!r}")
        return self._update_run(
            image_id,
            receipt_id,
            run_id,
            set_values={
                f"{c}_state": CompactionState.COMPLETED.value,
                f"{c}_finished_at": None,
                f"{c}_merged_vectors": merged_vectors,
            },
            remove=[f"{c}_error"],
        )

    def mark_compaction_run_failed(
        self,
        image_id: str,
        receipt_id: int,
        run_id: str,
        collection: ChromaDBCollection | str,
        error: str,
    ) -> CompactionRun:
        c = ChromaDBCollection(collection).value
        return self._update_run(
            image_id,
            receipt_id,
            run_id,
            set_values={
                f"{c}_state": CompactionState.FAILED.value,
                f"{c}_finished_at": None,
                f"{c}_error": error[:MAX_ERROR_LENGTH] or "unknown error",
            },
            remove=[],
        )

    def _update_run(
        self,
        image_id: str,
        receipt_id: int,
        run_id: str,
        *,
        set_values: dict[str, Any],
        remove: list[str],
    ) -> CompactionRun:
        """One atomic UpdateItem touching one collection's fields plus ``updated_at``.

        A value of None in ``set_values`` means "now".
        """
        now = now_iso()
        values = {name: now if value is None else value for name, value in set_values.items()}
        values["updated_at"] = now
        names = {f"#a{i}": name for i, name in enumerate(values)}
        value_refs = {f"#a{i}": f":v{i}" for i in range(len(values))}
        expression = "SET " + ", ".join(f"{n} = {value_refs[n]}" for n in names)
        removed = {f"#r{i}": name for i, name in enumerate(remove)}
        if removed:
            expression += " REMOVE " + ", ".join(removed)
        typed = serialize(values)
        attribute_values = {value_refs[n]: typed[name] for n, name in names.items()}
        pk, sk = image_pk(image_id), compaction_run_sk(receipt_id, run_id)
        try:
            response = self.client.update_item(
                TableName=self.table_name,
                Key={"PK": {"S": pk}, "SK": {"S": sk}},
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(PK)",
                ExpressionAttributeNames={**names, **removed},
                ExpressionAttributeValues=attribute_values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if is_conditional_failure(error):
                raise EntityNotFoundError(
                    f"CompactionRun not found: {describe_key(pk, sk)}"
                ) from error
            raise
        return CompactionRun.from_item(response["Attributes"])
