"""Snapshots (contract §6): format 2 content-addressed versions, format 1 read support,
the working copy and its cache tiers, the publish sequence, retention, and the
product-level operations (list, inspect, verify, download, rollback, flush).

Nothing here imports from ``receipt_chroma.compaction``: the EFS tier and the lease are
passed in (``EfsTier``, ``Lease``).

The public names are imported on first use, so importing the package or one of its
chromadb-free modules (``manifest``, ``s3_store``, ``stats``, ``versions``) — the CLI's
``--help``, reading a manifest — does not load chromadb.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from receipt_chroma.snapshots.audit import Audit, audit
    from receipt_chroma.snapshots.base import open_base
    from receipt_chroma.snapshots.check import SnapshotCheck, check_snapshot
    from receipt_chroma.snapshots.derived_caches import refresh_pointer_file
    from receipt_chroma.snapshots.hnsw import HnswPolicy, IndexState, index_state
    from receipt_chroma.snapshots.manifest import FileEntry, Manifest
    from receipt_chroma.snapshots.models import CacheTier
    from receipt_chroma.snapshots.publisher import publish, swap_pointer
    from receipt_chroma.snapshots.reader import VersionRead, read_version
    from receipt_chroma.snapshots.repair import RepairReport, repair
    from receipt_chroma.snapshots.retention import RetentionReport, apply_retention
    from receipt_chroma.snapshots.s3_store import S3SnapshotStore
    from receipt_chroma.snapshots.service import (
        CollectionSnapshots,
        Lease,
        SnapshotSettings,
    )
    from receipt_chroma.snapshots.stats import SnapshotStats
    from receipt_chroma.snapshots.versions import new_version_id, version_time
    from receipt_chroma.snapshots.working_copy import WorkingCopy

_PACKAGE = "receipt_chroma.snapshots"
_SOURCES: dict[str, str] = {
    "open_base": f"{_PACKAGE}.base",
    "SnapshotCheck": f"{_PACKAGE}.check",
    "check_snapshot": f"{_PACKAGE}.check",
    "HnswPolicy": f"{_PACKAGE}.hnsw",
    "IndexState": f"{_PACKAGE}.hnsw",
    "index_state": f"{_PACKAGE}.hnsw",
    "FileEntry": f"{_PACKAGE}.manifest",
    "Manifest": f"{_PACKAGE}.manifest",
    "publish": f"{_PACKAGE}.publisher",
    "refresh_pointer_file": f"{_PACKAGE}.derived_caches",
    "swap_pointer": f"{_PACKAGE}.publisher",
    "VersionRead": f"{_PACKAGE}.reader",
    "read_version": f"{_PACKAGE}.reader",
    "Audit": f"{_PACKAGE}.audit",
    "RepairReport": f"{_PACKAGE}.repair",
    "audit": f"{_PACKAGE}.audit",
    "repair": f"{_PACKAGE}.repair",
    "RetentionReport": f"{_PACKAGE}.retention",
    "apply_retention": f"{_PACKAGE}.retention",
    "S3SnapshotStore": f"{_PACKAGE}.s3_store",
    "CollectionSnapshots": f"{_PACKAGE}.service",
    "Lease": f"{_PACKAGE}.service",
    "SnapshotSettings": f"{_PACKAGE}.service",
    "SnapshotStats": f"{_PACKAGE}.stats",
    "new_version_id": f"{_PACKAGE}.versions",
    "version_time": f"{_PACKAGE}.versions",
    "CacheTier": f"{_PACKAGE}.models",
    "WorkingCopy": f"{_PACKAGE}.working_copy",
}

__all__ = [
    "Audit",
    "CacheTier",
    "CollectionSnapshots",
    "FileEntry",
    "HnswPolicy",
    "IndexState",
    "Lease",
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
    "audit",
    "check_snapshot",
    "index_state",
    "new_version_id",
    "open_base",
    "publish",
    "read_version",
    "refresh_pointer_file",
    "repair",
    "swap_pointer",
    "version_time",
]


def __getattr__(name: str) -> Any:
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(source), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
