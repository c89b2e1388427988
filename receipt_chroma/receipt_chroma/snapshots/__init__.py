"""Snapshot storage: S3 versions and pointer file, version ids, the local working copy."""

from receipt_chroma.snapshots.s3_store import S3SnapshotStore
from receipt_chroma.snapshots.versions import new_version_id, version_time
from receipt_chroma.snapshots.working_copy import CacheTier, WorkingCopy

__all__ = ["CacheTier", "S3SnapshotStore", "WorkingCopy", "new_version_id", "version_time"]
