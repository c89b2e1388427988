"""CompactionRun: one producer's embedding deltas for a receipt, tracked per collection."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Self

from receipt_dynamo.constants import ChromaDBCollection, CompactionState, EntityType
from receipt_dynamo.entities.base import (
    Attributes,
    DynamoEntity,
    as_enum,
    as_int,
    check_key_parts,
    check_str,
    check_timestamp,
    opt_str,
    req_str,
    set_field,
)
from receipt_dynamo.entities.key_parsing import parse_key
from receipt_dynamo.keys import SK_PATTERNS, compaction_run_sk, image_pk, parse_id
from receipt_dynamo.timestamps import instant

RunOrder = tuple[datetime, str]
"""(created_at as an instant, run_id): the order of a receipt's runs (contract §5.4)."""


def run_order(created_at: str, run_id: str) -> RunOrder:
    """Where the run ``run_id`` created at ``created_at`` falls in the order of runs: by
    ``created_at`` as an instant, then by ``run_id``. ValueError when ``created_at`` is not
    ISO 8601."""
    return (instant(created_at), run_id)


# Per-collection attribute names, e.g. ``lines_state``; one set for each collection.
PER_COLLECTION_SUFFIXES = (
    "delta_prefix",
    "state",
    "started_at",
    "finished_at",
    "error",
    "merged_vectors",
)


@dataclass(frozen=True, kw_only=True, slots=True)
class CompactionRun(DynamoEntity):
    TYPE: ClassVar[str] = EntityType.COMPACTION_RUN.value

    run_id: str
    image_id: str
    receipt_id: int
    lines_delta_prefix: str
    words_delta_prefix: str
    created_at: str
    lines_state: CompactionState = CompactionState.PENDING
    words_state: CompactionState = CompactionState.PENDING
    lines_started_at: str | None = None
    lines_finished_at: str | None = None
    words_started_at: str | None = None
    words_finished_at: str | None = None
    lines_error: str | None = None
    words_error: str | None = None
    lines_merged_vectors: int = 0
    words_merged_vectors: int = 0
    updated_at: str | None = None

    def __post_init__(self) -> None:
        check_key_parts(self.image_id, receipt_id=self.receipt_id)
        if not isinstance(self.run_id, str) or not self.run_id or "#" in self.run_id:
            raise ValueError(f"run_id must be a non-empty string without '#', got {self.run_id!r}")
        check_timestamp(self.created_at, "created_at")
        check_timestamp(self.updated_at, "updated_at", optional=True)
        for collection in ChromaDBCollection:
            c = collection.value
            check_str(getattr(self, f"{c}_delta_prefix"), f"{c}_delta_prefix")
            set_field(
                self,
                f"{c}_state",
                as_enum(CompactionState, getattr(self, f"{c}_state"), f"{c}_state"),
            )
            check_timestamp(getattr(self, f"{c}_started_at"), f"{c}_started_at", optional=True)
            check_timestamp(getattr(self, f"{c}_finished_at"), f"{c}_finished_at", optional=True)
            check_str(getattr(self, f"{c}_error"), f"{c}_error", optional=True)
            merged = as_int(getattr(self, f"{c}_merged_vectors"), f"{c}_merged_vectors")
            if merged < 0:
                raise ValueError(f"{c}_merged_vectors must be >= 0, got {merged!r}")

    @property
    def pk(self) -> str:
        return image_pk(self.image_id)

    @property
    def sk(self) -> str:
        return compaction_run_sk(self.receipt_id, self.run_id)

    def delta_prefix(self, collection: ChromaDBCollection | str) -> str:
        return str(getattr(self, f"{ChromaDBCollection(collection).value}_delta_prefix"))

    def state(self, collection: ChromaDBCollection | str) -> CompactionState:
        return CompactionState(getattr(self, f"{ChromaDBCollection(collection).value}_state"))

    @property
    def order_key(self) -> RunOrder:
        """This run's place in the order of runs (``run_order``)."""
        return run_order(self.created_at, self.run_id)

    def attributes(self) -> dict[str, Any]:
        per_collection = {
            f"{c.value}_{suffix}": getattr(self, f"{c.value}_{suffix}")
            for c in ChromaDBCollection
            for suffix in PER_COLLECTION_SUFFIXES
        }
        for c in ChromaDBCollection:
            per_collection[f"{c.value}_state"] = self.state(c).value
        return {
            "run_id": self.run_id,
            "image_id": self.image_id,
            "receipt_id": self.receipt_id,
            **per_collection,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "GSI1PK": "RUNS",
            "GSI1SK": f"CREATED_AT#{self.created_at}",
        }

    @classmethod
    def from_attributes(cls, attributes: Attributes) -> Self:
        image_id, (receipt_id, run_id) = parse_key(
            attributes, SK_PATTERNS[EntityType.COMPACTION_RUN]
        )
        fields: dict[str, Any] = {}
        for c in ChromaDBCollection:
            name = c.value
            fields[f"{name}_delta_prefix"] = req_str(attributes, f"{name}_delta_prefix")
            fields[f"{name}_state"] = attributes.get(f"{name}_state") or CompactionState.PENDING
            for suffix in ("started_at", "finished_at", "error"):
                fields[f"{name}_{suffix}"] = opt_str(attributes, f"{name}_{suffix}")
            merged = attributes.get(f"{name}_merged_vectors")
            fields[f"{name}_merged_vectors"] = (
                0 if merged is None else as_int(merged, f"{name}_merged_vectors")
            )
        return cls(
            run_id=run_id,
            image_id=image_id,
            receipt_id=parse_id(receipt_id, "receipt_id"),
            created_at=req_str(attributes, "created_at"),
            updated_at=opt_str(attributes, "updated_at"),
            **fields,
        )
