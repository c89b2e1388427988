"""Snapshot versions on EFS (contract §6): a shared cache of S3 versions, never opened in place.

``<root>/snapshots/<collection>/<version>/`` holds a closed persist directory and a copy
of ``.snapshot_hash``. A version directory is built under ``.tmp-<version>-<hex>/`` and
renamed into place, and deleted by renaming to ``.trash-<version>-<hex>/`` first, so a
directory visible under a version name is always complete. ``.version`` names the
current version and is replaced by write-to-temp + rename. ChromaDB never runs here:
versions are copied to local disk before they are opened.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Final

DEFAULT_ROOT: Final = "/mnt/chroma"
VERSION_FILE: Final = ".version"
HASH_FILE: Final = ".snapshot_hash"
STALE_TEMP_SECONDS: Final = 3600


class EFSSnapshotManager:
    """One collection's versions under ``<root>/snapshots/<collection>/``."""

    def __init__(self, root: str | Path, collection: str) -> None:
        self.root = Path(root)
        self.collection = collection
        self.base = self.root / "snapshots" / collection

    def version_path(self, version: str) -> Path:
        if not version or version.startswith(".") or "/" in version:
            raise ValueError(f"not a snapshot version name: {version!r}")
        return self.base / version

    def versions(self) -> list[str]:
        """Complete versions present (names starting with ``.`` are never versions)."""
        if not self.base.is_dir():
            return []
        return sorted(
            p.name for p in self.base.iterdir() if p.is_dir() and not p.name.startswith(".")
        )

    def has_version(self, version: str) -> bool:
        return self.version_path(version).is_dir()

    def current_version(self) -> str | None:
        try:
            text = (self.base / VERSION_FILE).read_text(encoding="ascii").strip()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return text or None

    def set_current_version(self, version: str) -> None:
        """Replace ``.version`` atomically (write a temporary file, then rename)."""
        self.base.mkdir(parents=True, exist_ok=True)
        temporary = self.base / f".version-{secrets.token_hex(4)}.tmp"
        temporary.write_text(version, encoding="ascii")
        os.replace(temporary, self.base / VERSION_FILE)

    def copy_version(self, version: str, destination: Path) -> bool:
        """Copy a version's persist directory to local ``destination``.

        Any failure is a cache miss: False, with nothing left at ``destination``.
        """
        source = self.version_path(version)
        try:
            if not source.is_dir():
                return False
            shutil.copytree(source, destination, ignore=shutil.ignore_patterns(HASH_FILE))
            return True
        except OSError:
            shutil.rmtree(destination, ignore_errors=True)
            return False

    def read_hash(self, version: str) -> str | None:
        try:
            return (self.version_path(version) / HASH_FILE).read_text(encoding="ascii").strip()
        except OSError:
            return None

    def store_version(self, version: str, persist_directory: Path, snapshot_hash: str) -> Path:
        """Write ``version`` from a closed local persist directory; returns its path.

        If the version already exists another writer won: ours is dropped and theirs kept.
        """
        target = self.version_path(version)
        if target.is_dir():
            return target
        self.base.mkdir(parents=True, exist_ok=True)
        building = self.base / f".tmp-{version}-{secrets.token_hex(4)}"
        try:
            shutil.copytree(persist_directory, building)
            (building / HASH_FILE).write_text(snapshot_hash, encoding="ascii")
            try:
                building.rename(target)
            except OSError:
                if not target.is_dir():
                    raise
        finally:
            if building.exists():
                shutil.rmtree(building, ignore_errors=True)
        return target

    def delete_version(self, version: str) -> None:
        """Rename to ``.trash-…`` (so the version vanishes at once), then remove."""
        source = self.version_path(version)
        trash = self.base / f".trash-{version}-{secrets.token_hex(4)}"
        try:
            source.rename(trash)
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    def cleanup(self, keep: set[str], now: float | None = None) -> list[str]:
        """Delete versions outside ``keep``, and ``.tmp-*``/``.trash-*`` older than an hour."""
        deleted = []
        for version in self.versions():
            if version not in keep:
                self.delete_version(version)
                deleted.append(version)
        moment = now if now is not None else time.time()
        if self.base.is_dir():
            for leftover in self.base.iterdir():
                if leftover.name.startswith((".tmp-", ".trash-")):
                    try:
                        age = moment - leftover.stat().st_mtime
                    except FileNotFoundError:
                        continue
                    if age > STALE_TEMP_SECONDS:
                        shutil.rmtree(leftover, ignore_errors=True)
        return deleted


def get_efs_snapshot_manager(collection: str, root: str | Path | None = None) -> EFSSnapshotManager:
    """The manager for ``collection`` under ``root`` (default ``CHROMA_ROOT`` or /mnt/chroma)."""
    return EFSSnapshotManager(root or os.environ.get("CHROMA_ROOT", DEFAULT_ROOT), collection)
