"""Snapshots (contract §6): format 2 content-addressed versions, format 1 read support,
the working copy and its cache tiers, the publish sequence, retention, and the
product-level operations (list, inspect, verify, download, rollback, flush).

Nothing here imports from ``receipt_chroma.compaction``: the EFS tier and the lease are
passed in (``EfsTier``, ``Lease``).
"""

from receipt_chroma.snapshots.base import open_base
from receipt_chroma.snapshots.check import SnapshotCheck, check_snapshot
from receipt_chroma.snapshots.hnsw import HnswPolicy, IndexState, index_state
from receipt_chroma.snapshots.manifest import FileEntry, Manifest
from receipt_chroma.snapshots.publisher import publish, refresh_pointer_file, swap_pointer
from receipt_chroma.snapshots.reader import VersionRead, read_version
from receipt_chroma.snapshots.retention import RetentionReport, apply_retention
from receipt_chroma.snapshots.s3_store import S3SnapshotStore
from receipt_chroma.snapshots.service import (
    CollectionSnapshots,
    Lease,
    SnapshotSettings,
)
from receipt_chroma.snapshots.stats import SnapshotStats
from receipt_chroma.snapshots.versions import new_version_id, version_time
from receipt_chroma.snapshots.working_copy import CacheTier, WorkingCopy

__all__ = [
    "CacheTier",
    "CollectionSnapshots",
    "FileEntry",
    "HnswPolicy",
    "IndexState",
    "Lease",
    "Manifest",
    "RetentionReport",
    "S3SnapshotStore",
    "SnapshotCheck",
    "SnapshotSettings",
    "SnapshotStats",
    "VersionRead",
    "WorkingCopy",
    "apply_retention",
    "check_snapshot",
    "index_state",
    "swap_pointer",
    "new_version_id",
    "open_base",
    "publish",
    "read_version",
    "refresh_pointer_file",
    "version_time",
]
