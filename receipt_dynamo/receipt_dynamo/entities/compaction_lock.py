"""CompactionLock: the lease row of one collection (contract §7)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Self

from receipt_dynamo.constants import ChromaDBCollection, EntityType
from receipt_dynamo.entities.base import (
    Attributes,
    DynamoEntity,
    as_enum,
    check_timestamp,
    opt_str,
    req_int,
    req_str,
    set_field,
)
from receipt_dynamo.keys import compaction_lock_id, lock_pk


@dataclass(frozen=True, kw_only=True, slots=True)
class CompactionLock(DynamoEntity):
    TYPE: ClassVar[str] = EntityType.COMPACTION_LOCK.value

    collection: ChromaDBCollection
    expires: str
    fencing_token: int
    time_to_live: int
    lock_id: str = ""
    owner: str | None = None
    heartbeat: str | None = None

    def __post_init__(self) -> None:
        collection = as_enum(ChromaDBCollection, self.collection, "collection")
        set_field(self, "collection", collection)
        if not self.lock_id:
            set_field(self, "lock_id", compaction_lock_id(collection.value))
        if not isinstance(self.lock_id, str) or "#" in self.lock_id:
            raise ValueError(f"lock_id must be a string without '#', got {self.lock_id!r}")
        check_timestamp(self.expires, "expires")
        check_timestamp(self.heartbeat, "heartbeat", optional=True)
        for name in ("fencing_token", "time_to_live"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")

    @property
    def pk(self) -> str:
        return lock_pk(self.collection.value, self.lock_id)

    @property
    def sk(self) -> str:
        return "LOCK"

    @property
    def is_held(self) -> bool:
        return self.owner is not None

    def attributes(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "expires": self.expires,
            "collection": self.collection.value,
            "heartbeat": self.heartbeat,
            "fencing_token": self.fencing_token,
            "time_to_live": self.time_to_live,
        }

    @classmethod
    def from_attributes(cls, attributes: Attributes) -> Self:
        pk = req_str(attributes, "PK")
        parts = pk.split("#")
        if len(parts) != 3 or parts[0] != "LOCK" or req_str(attributes, "SK") != "LOCK":
            raise ValueError(f"PK/SK must be LOCK#<collection>#<lock_id> / LOCK, got {pk!r}")
        return cls(
            collection=as_enum(ChromaDBCollection, parts[1], "collection"),
            lock_id=parts[2],
            owner=opt_str(attributes, "owner"),
            expires=req_str(attributes, "expires"),
            heartbeat=opt_str(attributes, "heartbeat"),
            fencing_token=req_int(attributes, "fencing_token"),
            time_to_live=req_int(attributes, "time_to_live"),
        )
