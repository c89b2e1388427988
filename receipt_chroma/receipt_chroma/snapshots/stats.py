"""What reading and writing snapshots cost in one cycle (bytes are contract §9 metrics)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class SnapshotStats:
    """Counters filled by uploads and downloads, possibly from several threads.

    ``cache_repairs``: cached copies (the warm working copy, an EFS version directory)
    found not to match what was recorded for them, discarded and read again from another
    tier; in catch-up, each file of the working copy whose sha256 changed since its label
    (fetched instead of linked). ``efs_failures``: EFS operations that failed (a copy to
    local disk, a write, a ``.version`` repair, listing its versions); the cycle went on
    without EFS (from S3). ``efs_write_failures``: of those, the versions that could not be
    written to EFS (after an S3 read or a publish). ``cache_repair_failures``: derived
    caches (``latest-pointer.txt``, EFS ``.version``) that could not be brought in line
    with the pointer item (the next cycle tries again).
    """

    bytes_uploaded: int = 0
    bytes_downloaded: int = 0
    objects_uploaded: int = 0
    objects_present: int = 0
    files_fetched: int = 0
    files_reused: int = 0
    bytes_reused: int = 0
    cache_repairs: int = 0
    efs_failures: int = 0
    efs_write_failures: int = 0
    cache_repair_failures: int = 0
    retention_skipped: int = 0  # retention not done (or cut short): lease or deadline
    unindexed_records: int | None = None
    hnsw_flushed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(
        self,
        *,
        uploaded: int = 0,
        downloaded: int = 0,
        objects_uploaded: int = 0,
        objects_present: int = 0,
        files_fetched: int = 0,
        files_reused: int = 0,
        bytes_reused: int = 0,
        cache_repairs: int = 0,
        efs_failures: int = 0,
        efs_write_failures: int = 0,
        cache_repair_failures: int = 0,
        retention_skipped: int = 0,
    ) -> None:
        with self._lock:
            self.bytes_uploaded += uploaded
            self.bytes_downloaded += downloaded
            self.objects_uploaded += objects_uploaded
            self.objects_present += objects_present
            self.files_fetched += files_fetched
            self.files_reused += files_reused
            self.bytes_reused += bytes_reused
            self.cache_repairs += cache_repairs
            self.efs_failures += efs_failures
            self.efs_write_failures += efs_write_failures
            self.cache_repair_failures += cache_repair_failures
            self.retention_skipped += retention_skipped

    def as_dict(self) -> dict[str, int | bool | None]:
        return {
            "bytes_uploaded": self.bytes_uploaded,
            "bytes_downloaded": self.bytes_downloaded,
            "objects_uploaded": self.objects_uploaded,
            "objects_present": self.objects_present,
            "files_fetched": self.files_fetched,
            "files_reused": self.files_reused,
            "bytes_reused": self.bytes_reused,
            "cache_repairs": self.cache_repairs,
            "efs_failures": self.efs_failures,
            "efs_write_failures": self.efs_write_failures,
            "cache_repair_failures": self.cache_repair_failures,
            "retention_skipped": self.retention_skipped,
            "unindexed_records": self.unindexed_records,
            "hnsw_flushed": self.hnsw_flushed,
        }
