"""One collection's snapshot machinery, bundled: S3 store, working copy, EFS tier, settings.

``CollectionSnapshots`` is what the compaction cycle, the planned flush and rollback hand
to ``open_base`` / ``publish`` / ``swap_pointer``. Settings follow contract §8
(``SNAPSHOT_ZSTD_LEVEL``, ``HNSW_SYNC_THRESHOLD``, ``HNSW_FLUSH_RECORDS``); the orphan age
of retention is twice the lease duration.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from receipt_chroma.snapshots.hnsw import HnswPolicy
from receipt_chroma.snapshots.models import EfsTier
from receipt_chroma.snapshots.objects import DEFAULT_WORKERS
from receipt_chroma.snapshots.s3_store import S3SnapshotStore
from receipt_chroma.snapshots.working_copy import WorkingCopy
from receipt_dynamo.data.dynamo_client import DynamoClient
from receipt_dynamo.entities import SnapshotPointer

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

_LOGGER = logging.getLogger(__name__)


class SnapshotLogger(Protocol):
    """Anything with ``info(msg, extra=...)``: a stdlib or Powertools logger."""

    def info(self, msg: object, *args: Any, **kwargs: Any) -> None: ...


class Lease(Protocol):
    """A held collection lease (``receipt_chroma.compaction.lease.LockManager``)."""

    owner: str

    @property
    def token(self) -> int: ...

    @property
    def deadline(self) -> datetime | None:
        """The last confirmed expiry minus the safety margin (None: never confirmed)."""
        ...

    def ensure_held(self) -> None: ...

    def confirm(self) -> datetime:
        """A heartbeat that must succeed; the deadline deletes must end by (§6 rev 3)."""
        ...


@dataclass(frozen=True)
class SnapshotSettings:
    dimension: int
    lock_duration_seconds: float = 180
    hnsw: HnswPolicy = field(default_factory=HnswPolicy)
    zstd_level: int = 1
    workers: int = DEFAULT_WORKERS

    @property
    def orphan_age(self) -> timedelta:
        return timedelta(seconds=2 * self.lock_duration_seconds)


@dataclass
class CollectionSnapshots:
    collection: str
    dynamo: DynamoClient
    store: S3SnapshotStore
    working: WorkingCopy
    efs: EfsTier | None
    settings: SnapshotSettings
    logger: SnapshotLogger = _LOGGER

    @classmethod
    def create(
        cls,
        *,
        collection: str,
        dynamo: DynamoClient,
        s3_client: S3Client,
        bucket: str,
        work_dir: str | Path,
        efs: EfsTier | None,
        settings: SnapshotSettings,
        logger: SnapshotLogger = _LOGGER,
    ) -> CollectionSnapshots:
        store = S3SnapshotStore(
            s3_client,
            bucket,
            collection,
            zstd_level=settings.zstd_level,
            workers=settings.workers,
        )
        return cls(
            collection=collection,
            dynamo=dynamo,
            store=store,
            working=WorkingCopy(work_dir, collection),
            efs=efs,
            settings=settings,
            logger=logger,
        )

    def pointer(self) -> SnapshotPointer | None:
        """The pointer item, read strongly consistently."""
        return self.dynamo.get_snapshot_pointer(self.collection)

    def pointer_version(self) -> str | None:
        pointer = self.pointer()
        return None if pointer is None else pointer.version
