"""The local working copy of a collection's snapshot, and the cache tiers that fill it.

The working copy is a directory under ``CHROMA_WORK_DIR`` private to one process (an
exclusive ``flock`` enforces it). It is reused only when its recorded version equals
the pointer's (warm), else copied from EFS, else downloaded from S3 — and a version
fetched from S3 is then written to EFS for the next container.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from enum import StrEnum
from pathlib import Path
from typing import IO

from receipt_chroma.compaction.efs_snapshot_manager import EFSSnapshotManager
from receipt_chroma.data.chroma_client import ChromaClient
from receipt_chroma.exceptions import ChromaClientError
from receipt_chroma.snapshots.s3_store import S3SnapshotStore

_LOGGER = logging.getLogger(__name__)


class CacheTier(StrEnum):
    WARM = "warm"
    EFS = "efs"
    S3 = "s3"
    BOOTSTRAP = "bootstrap"


class WorkingCopy:
    """``<work_dir>/<collection>/snapshot`` plus a ``.version`` marker and a lock file."""

    def __init__(self, work_dir: str | Path, collection: str) -> None:
        self.base = Path(work_dir) / collection
        self.path = self.base / "snapshot"
        self._marker = self.base / ".version"
        self._lock: IO[str] | None = None

    # --- exclusivity ------------------------------------------------------------------------

    def lock(self) -> None:
        """Claim the directory for this process; another process holding it is an error."""
        if self._lock is not None:
            return
        self.base.mkdir(parents=True, exist_ok=True)
        handle = (self.base / ".lock").open("w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise ChromaClientError(
                f"working copy {self.base} is in use by another process"
            ) from None
        self._lock = handle

    def unlock(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    # --- state ------------------------------------------------------------------------------

    @property
    def version(self) -> str | None:
        """The version the working copy holds, or None when there is none (or it is dirty)."""
        try:
            text = self._marker.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        return text if text and self.path.is_dir() else None

    def relabel(self, version: str) -> None:
        temporary = self.base / ".version.tmp"
        temporary.write_text(version, encoding="ascii")
        os.replace(temporary, self._marker)

    def discard(self) -> None:
        """Forget the copy (after a cycle that changed it without publishing)."""
        self._marker.unlink(missing_ok=True)
        shutil.rmtree(self.path, ignore_errors=True)

    def mark_dirty(self) -> None:
        """Before changing the copy: until relabelled it matches no version."""
        self._marker.unlink(missing_ok=True)

    # --- filling ----------------------------------------------------------------------------

    def prepare(
        self, version: str, efs: EFSSnapshotManager, s3: S3SnapshotStore, collection: str
    ) -> CacheTier:
        """Make the copy hold ``version`` from the cheapest tier; returns the tier used."""
        self.lock()
        if self.version == version:
            return CacheTier.WARM
        self.discard()
        self.base.mkdir(parents=True, exist_ok=True)
        if efs.copy_version(version, self.path) and _opens(self.path, collection):
            self.relabel(version)
            return CacheTier.EFS
        shutil.rmtree(self.path, ignore_errors=True)
        snapshot_hash = self.fetch_from_s3(version, s3)
        try:
            efs.store_version(version, self.path, snapshot_hash)
            efs.set_current_version(version)
        except OSError as error:  # EFS is a cache: its failures never fail the cycle
            _LOGGER.warning("could not write version to EFS", extra={"error": str(error)})
        return CacheTier.S3

    def fetch_from_s3(self, version: str, s3: S3SnapshotStore) -> str:
        """Download and verify ``version`` from S3 into the copy; returns its hash."""
        self.lock()
        self.discard()
        self.base.mkdir(parents=True, exist_ok=True)
        try:
            snapshot_hash = s3.download(version, self.path)
        except BaseException:
            shutil.rmtree(self.path, ignore_errors=True)
            raise
        self.relabel(version)
        return snapshot_hash

    def start_empty(self) -> CacheTier:
        """A fresh, empty copy for bootstrapping a collection that has no snapshot at all."""
        self.lock()
        self.discard()
        self.base.mkdir(parents=True, exist_ok=True)
        return CacheTier.BOOTSTRAP


def _opens(path: Path, collection: str) -> bool:
    try:
        with ChromaClient(path, mode="read") as client:
            client.get_collection(collection).count()
        return True
    except Exception:
        return False
