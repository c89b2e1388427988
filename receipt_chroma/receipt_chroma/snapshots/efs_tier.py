"""What the working copy and the publisher need from the EFS tier (contract §6.4).

The EFS snapshot manager (``receipt_chroma.compaction.efs_snapshot_manager``) implements
it; the snapshot modules only know this protocol, so nothing here imports from
``compaction``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from receipt_chroma.snapshots.manifest import Manifest
from receipt_chroma.snapshots.reader import LocalFile


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

    def copy_version(self, version: str, destination: Path) -> bool:
        """Copy a version's persist directory to local disk (verified against its manifest
        when it has one); False, with nothing left behind, on any failure."""
        ...

    def store_version(
        self,
        version: str,
        persist_directory: Path,
        *,
        manifest_bytes: bytes | None = None,
        snapshot_hash: str | None = None,
    ) -> Path: ...

    def cleanup(self, keep: set[str], now: float | None = None) -> list[str]: ...
