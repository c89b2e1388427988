"""What the working copy and the publisher need from the EFS tier (contract §6.4).

The EFS snapshot manager (``receipt_chroma.compaction.efs_snapshot_manager``) implements
it; the snapshot modules only know this protocol, so nothing here imports from
``compaction``.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Protocol

from receipt_chroma.snapshots.fence import DeleteFence
from receipt_chroma.snapshots.manifest import Manifest
from receipt_chroma.snapshots.reader import LocalFile


class EfsCopy(StrEnum):
    """What ``EfsTier.copy_version`` found."""

    COPIED = "copied"
    ABSENT = "absent"  # no such version directory
    CORRUPT = "corrupt"  # its files do not match its manifest (or a file is missing)
    FAILED = "failed"  # EFS could not be read: a cache miss, the version may be fine


class EfsTier(Protocol):
    def has_version(self, version: str) -> bool: ...

    def current_version(self) -> str | None: ...

    def set_current_version(self, version: str) -> None: ...

    def read_manifest(self, version: str) -> Manifest | None:
        """The copy of ``manifest.json`` in a format 2 version directory."""
        ...

    def reuse_index(self) -> dict[str, list[LocalFile]]:
        """sha256 → files of complete format 2 version directories (offered for copying)."""
        ...

    def copy_version(self, version: str, destination: Path, fence: DeleteFence) -> EfsCopy:
        """Copy a version's persist directory to local disk, every file verified against
        its manifest; a version without one (format 1) cannot be verified and is ABSENT.
        On anything but COPIED nothing is left at ``destination``. Other versions sharing
        a damaged file are deleted only while ``fence`` allows."""
        ...

    def delete_version(self, version: str) -> None:
        """Remove a version directory (a corrupt one, so that it is written again)."""
        ...

    def store_version(
        self,
        version: str,
        persist_directory: Path,
        *,
        manifest_bytes: bytes,
    ) -> Path: ...

    def cleanup(self, keep: set[str], fence: DeleteFence, now: float | None = None) -> list[str]:
        """Delete versions outside ``keep`` and stale temporaries, each only while
        ``fence`` allows (§6 rev 3)."""
        ...
