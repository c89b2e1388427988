"""SnapshotPointer: the single source of truth for a collection's latest snapshot (contract §6)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Final, Self

from receipt_dynamo.constants import ChromaDBCollection, EntityType
from receipt_dynamo.entities.base import (
    Attributes,
    DynamoEntity,
    as_enum,
    check_str,
    check_timestamp,
    opt_str,
    readable,
    req_int,
    req_str,
    set_field,
)
from receipt_dynamo.keys import snapshot_pointer_pk

HISTORY_LENGTH: Final = 4


@dataclass(frozen=True, kw_only=True, slots=True)
class SnapshotPointer(DynamoEntity):
    TYPE: ClassVar[str] = EntityType.SNAPSHOT_POINTER.value

    collection: ChromaDBCollection
    version: str
    fencing_token: int
    updated_at: str
    previous_version: str | None = None
    history: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        set_field(self, "collection", as_enum(ChromaDBCollection, self.collection, "collection"))
        check_str(self.version, "version")
        if not self.version:
            raise ValueError("version must be a non-empty string, got ''")
        check_str(self.previous_version, "previous_version", optional=True)
        check_timestamp(self.updated_at, "updated_at")
        token = self.fencing_token
        if isinstance(token, bool) or not isinstance(token, int) or token < 0:
            raise ValueError(f"fencing_token must be a non-negative integer, got {token!r}")
        history = tuple(self.history)
        if not all(isinstance(v, str) for v in history) or len(history) > HISTORY_LENGTH:
            raise ValueError(
                f"history must be at most {HISTORY_LENGTH} version strings, got {self.history!r}"
            )
        set_field(self, "history", history)

    @property
    def pk(self) -> str:
        return snapshot_pointer_pk(self.collection.value)

    @property
    def sk(self) -> str:
        return "POINTER"

    def attributes(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "previous_version": self.previous_version,
            "history": list(self.history),
            "fencing_token": self.fencing_token,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_attributes(cls, attributes: Attributes) -> Self:
        pk = req_str(attributes, "PK")
        if not pk.startswith("SNAPSHOT#") or req_str(attributes, "SK") != "POINTER":
            raise ValueError(f"PK/SK must be SNAPSHOT#<collection> / POINTER, got {pk!r}")
        history = attributes.get("history") or []
        if not isinstance(history, list):
            raise ValueError(f"history must be a list of strings, got {readable(history)}")
        return cls(
            collection=as_enum(ChromaDBCollection, pk.removeprefix("SNAPSHOT#"), "collection"),
            version=req_str(attributes, "version"),
            previous_version=opt_str(attributes, "previous_version"),
            history=tuple(history),
            fencing_token=req_int(attributes, "fencing_token"),
            updated_at=req_str(attributes, "updated_at"),
        )

    def successor(self, version: str, fencing_token: int, updated_at: str) -> SnapshotPointer:
        """The pointer after publishing ``version`` on top of this one."""
        return SnapshotPointer(
            collection=self.collection,
            version=version,
            previous_version=self.version,
            history=(version, *[v for v in self.history if v != version])[:HISTORY_LENGTH],
            fencing_token=fencing_token,
            updated_at=updated_at,
        )
