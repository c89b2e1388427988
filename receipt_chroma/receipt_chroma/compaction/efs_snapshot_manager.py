"""Snapshot versions on EFS (contract §6.4): a shared cache of S3 versions, never opened in place.

``<root>/snapshots/<collection>/<version>/`` holds a closed persist directory plus a copy
of the version's ``manifest.json``. Only format 2 versions are read from EFS: every file is
verified against the manifest as it is copied to local disk. A directory without a
manifest (a format 1 version) cannot be verified and is never read (a cache miss: the
verified tarball is read from S3). Files unchanged since an earlier version are hard links
to that version's files; a file in a version directory is never modified. A version
directory is built under ``.tmp-<version>-<hex>/`` and renamed into place, and deleted by
renaming to ``.trash-<version>-<hex>/`` first, so a directory visible under a version name
is always complete. ``.version`` names the current version and is replaced by
write-to-temp + rename. ChromaDB never runs here: versions are copied to local disk
before they are opened. This is the one writer of EFS: it implements
``receipt_chroma.snapshots.models.EfsTier``, the one way the snapshot modules reach EFS.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Final

from receipt_chroma.exceptions import SnapshotError
from receipt_chroma.snapshots.fence import DeleteFence
from receipt_chroma.snapshots.files import copy_checked, copy_verified, link_known, target_path
from receipt_chroma.snapshots.layout import MANIFEST
from receipt_chroma.snapshots.manifest import Manifest, parse_manifest
from receipt_chroma.snapshots.models import EfsCopy, LocalFile
from receipt_chroma.snapshots.reader import index_files

VERSION_FILE: Final = ".version"
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

    # --- manifests ------------------------------------------------------------------------

    def read_manifest(self, version: str) -> Manifest | None:
        """The version directory's copy of ``manifest.json``; None for a format 1 version,
        a missing version or an unreadable copy."""
        try:
            data = (self.version_path(version) / MANIFEST).read_bytes()
            return parse_manifest(data, collection=self.collection, version_id=version)
        except (OSError, SnapshotError):
            return None

    def reuse_index(self) -> dict[str, list[LocalFile]]:
        """sha256 → files of every complete format 2 version (copied with verification)."""
        index: dict[str, list[LocalFile]] = {}
        for version in reversed(self.versions()):  # newest first
            manifest = self.read_manifest(version)
            if manifest is None:
                continue
            for sha, files in index_files(
                self.version_path(version), manifest.files, trusted=False
            ).items():
                index.setdefault(sha, []).extend(files)
        return index

    # --- copies ---------------------------------------------------------------------------

    def copy_version(self, version: str, destination: Path, fence: DeleteFence) -> EfsCopy:
        """Copy a version's persist directory to local ``destination``.

        Exactly the manifest's files, each verified against its sha256 — a file that does
        not match or is missing makes the version CORRUPT; the other versions holding the
        damaged file (hard links) are deleted at once, so the caller's rewrite of this one
        cannot link it back in. A directory without a manifest (format 1) has no per-file
        hashes, so it cannot be verified: ABSENT, a cache miss (the caller reads the
        verified tarball from S3). An OS error is FAILED (a cache miss). On anything but
        COPIED nothing is left at ``destination``.
        """
        source = self.version_path(version)
        outcome = EfsCopy.FAILED
        try:
            if not source.is_dir():
                return EfsCopy.ABSENT
            manifest = self.read_manifest(version)
            if manifest is None:
                return EfsCopy.ABSENT
            destination.mkdir(parents=True, exist_ok=True)
            outcome = EfsCopy.CORRUPT
            for entry in manifest.files:
                stored = target_path(source, entry.path)
                if not copy_checked(stored, target_path(destination, entry.path), entry):
                    self._drop_versions_sharing(stored, entry.sha256, version, fence)
                    break
            else:
                return EfsCopy.COPIED
        except FileNotFoundError:  # a file the manifest names, or the whole version, is gone
            outcome = EfsCopy.CORRUPT if source.is_dir() else EfsCopy.ABSENT
        except SnapshotError:  # a manifest path that leaves the directory
            outcome = EfsCopy.CORRUPT
        except OSError:
            outcome = EfsCopy.FAILED
        shutil.rmtree(destination, ignore_errors=True)
        return outcome

    def _drop_versions_sharing(
        self, damaged: Path, sha256: str, version: str, fence: DeleteFence
    ) -> None:
        """Delete the other versions that hold ``damaged`` itself (a hard link to the same
        file), so that rewriting ``version`` from S3 cannot link the damage back in (a
        stat per file of the same sha256, never a hash). Errors are ignored: a cache."""
        try:
            identity = (damaged.stat().st_dev, damaged.stat().st_ino)
        except OSError:
            return
        for other in self.versions():
            if other == version:
                continue
            manifest = self.read_manifest(other)
            for entry in manifest.files if manifest is not None else ():
                if entry.sha256 != sha256:
                    continue
                try:
                    held = target_path(self.version_path(other), entry.path).stat()
                except (OSError, SnapshotError):
                    continue
                if (held.st_dev, held.st_ino) == identity and fence.allows():
                    self.delete_version(other)
                    break

    def store_version(
        self,
        version: str,
        persist_directory: Path,
        *,
        manifest_bytes: bytes,
    ) -> Path:
        """Write format 2 ``version`` from a closed local persist directory; returns its
        path. Files already held by another version are hard-linked to it and the others
        copied with their sha256 verified; then ``manifest.json`` is added.
        If the version already exists another writer won: ours is dropped, theirs kept.
        """
        target = self.version_path(version)
        if target.is_dir():
            return target
        self.base.mkdir(parents=True, exist_ok=True)
        building = self.base / f".tmp-{version}-{secrets.token_hex(4)}"
        try:
            self._build_from_manifest(building, persist_directory, manifest_bytes, version)
            try:
                building.rename(target)
            except OSError:
                if not target.is_dir():
                    raise
        finally:
            if building.exists():
                shutil.rmtree(building, ignore_errors=True)
        return target

    def _build_from_manifest(
        self, building: Path, persist_directory: Path, manifest_bytes: bytes, version: str
    ) -> None:
        try:
            manifest = parse_manifest(
                manifest_bytes, collection=self.collection, version_id=version
            )
        except SnapshotError as error:
            raise OSError(str(error)) from error
        linked = self.reuse_index()
        building.mkdir(parents=True)
        # Files are hard-linked from earlier versions after a size check only, never hashed:
        # hashing here would read the whole index over NFS on every publish. A file that
        # changed in place (same size) would make this version not match its manifest, but
        # every read from EFS (``copy_version``) verifies each file's sha256 as it copies:
        # such a version is CORRUPT, deleted with every version sharing the damaged file,
        # and written again from S3 by the reader.
        for entry in manifest.files:
            destination = target_path(building, entry.path)
            if any(link_known(f.path, destination, entry) for f in linked.get(entry.sha256, [])):
                continue
            if not copy_verified(target_path(persist_directory, entry.path), destination, entry):
                raise OSError(f"{persist_directory / entry.path} does not match the manifest")
        (building / MANIFEST).write_bytes(manifest_bytes)

    # --- removal --------------------------------------------------------------------------

    def delete_version(self, version: str) -> None:
        """Rename to ``.trash-…`` (so the version vanishes at once), then remove."""
        source = self.version_path(version)
        trash = self.base / f".trash-{version}-{secrets.token_hex(4)}"
        try:
            source.rename(trash)
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    def cleanup(self, keep: set[str], fence: DeleteFence, now: float | None = None) -> list[str]:
        """Delete versions outside ``keep``, and ``.tmp-*``/``.trash-*`` older than an hour,
        each only while ``fence`` allows it (the lease holder's deadline, §6 rev 3). The
        version ``.version`` names is never deleted: a reader following it must find it."""
        deleted: list[str] = []
        named = self.current_version()
        for version in self.versions():
            if version not in keep and version != named:
                if not fence.allows():
                    return deleted
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
                    if age > STALE_TEMP_SECONDS and fence.allows():
                        shutil.rmtree(leftover, ignore_errors=True)
        return deleted


def get_efs_snapshot_manager(collection: str, root: str | Path) -> EFSSnapshotManager:
    """The manager for ``collection`` under ``root`` (the compactor's ``chroma_root``,
    contract §8 ``CHROMA_ROOT``)."""
    return EFSSnapshotManager(root, collection)
