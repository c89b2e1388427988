"""Snapshots (contract §6): format 2 content-addressed versions, format 1 read support,
the working copy and its cache tiers, the publish sequence, retention, and the
product-level operations (list, inspect, verify, download, rollback, flush).

Nothing here imports from ``receipt_chroma.compaction``: the EFS tier and the lease are
passed in (``EfsTier``, ``Lease``). ``__all__`` is the public API; the modules' other
names are internals.
"""

from receipt_chroma.snapshots.audit import Audit, audit_versions
from receipt_chroma.snapshots.base import open_base
from receipt_chroma.snapshots.check import SnapshotCheck, check_snapshot
from receipt_chroma.snapshots.derived_caches import refresh_pointer_file
from receipt_chroma.snapshots.fence import DeleteFence
from receipt_chroma.snapshots.hnsw import (
    HnswPolicy,
    IndexState,
    flush_index,
    index_state,
)
from receipt_chroma.snapshots.manifest import FileEntry, Manifest
from receipt_chroma.snapshots.models import CacheTier, LocalFile
from receipt_chroma.snapshots.publisher import (
    prepare_directory,
    publish,
    swap_pointer,
    write_version,
)
from receipt_chroma.snapshots.reader import VersionRead, read_version
from receipt_chroma.snapshots.repair import RepairReport, repair_versions
from receipt_chroma.snapshots.retention import RetentionReport, apply_retention
from receipt_chroma.snapshots.s3_store import S3SnapshotStore
from receipt_chroma.snapshots.service import CollectionSnapshots, Lease, SnapshotSettings
from receipt_chroma.snapshots.stats import SnapshotStats
from receipt_chroma.snapshots.versions import new_version_id, version_time
from receipt_chroma.snapshots.working_copy import WorkingCopy

__all__ = [
    "Audit",
    "CacheTier",
    "CollectionSnapshots",
    "DeleteFence",
    "FileEntry",
    "HnswPolicy",
    "IndexState",
    "Lease",
    "LocalFile",
    "Manifest",
    "RepairReport",
    "RetentionReport",
    "S3SnapshotStore",
    "SnapshotCheck",
    "SnapshotSettings",
    "SnapshotStats",
    "VersionRead",
    "WorkingCopy",
    "apply_retention",
    "audit_versions",
    "check_snapshot",
    "flush_index",
    "index_state",
    "new_version_id",
    "open_base",
    "prepare_directory",
    "publish",
    "read_version",
    "refresh_pointer_file",
    "repair_versions",
    "swap_pointer",
    "version_time",
    "write_version",
]
