"""The local working copy of a collection's snapshot, and the cache tiers that fill it.

The working copy is a directory under ``CHROMA_WORK_DIR`` private to one process (an
exclusive ``flock`` enforces it), labelled with the version it holds (``.version``) and,
for a format 2 version, that version's manifest (``.manifest.json``). It is filled from
the cheapest tier (contract §5.2, §6.2):

- ``warm``: the copy already holds the pointer's version;
- ``catch_up``: the copy holds another version; the new one is built beside it from the
  copy's own files (each hashed, then hard-linked; one whose sha256 changed is fetched and
  counted as a cache repair) plus the files that differ — from EFS when a version there
  has them, else from S3 objects;
- ``efs``: a complete format 2 version directory copied to local disk (verified file by
  file); a format 1 version on EFS has no per-file hashes and is a cache miss;
- ``s3``: the version read from S3 (reusing any EFS file with the right sha256), then
  written to EFS for the next container.

Caches are repaired as they are read (``SnapshotStats.cache_repairs``): a labelled copy
whose files are missing or not of the sizes its label records is discarded before it is
used, and an EFS version whose files do not match its manifest (or that does not open) is
deleted, so the S3 read writes it again. EFS failures (``SnapshotStats.efs_failures``)
are cache misses, never errors of the cycle.

The copy's Chroma write client is kept open between cycles (``resident_client``), so a
warm container indexes each record once; it is closed before the copy is replaced or
deleted. The EFS tier is passed in (``EfsTier``); nothing here imports from ``compaction``.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
from dataclasses import replace
from pathlib import Path
from typing import IO

from receipt_chroma.exceptions import ChromaClientError, SnapshotError
from receipt_chroma.snapshots.efs_tier import store_on_efs
from receipt_chroma.snapshots.fence import DeleteFence
from receipt_chroma.snapshots.files import (
    directory_entries,
    remove_tree,
    sha256_file,
    target_path,
)
from receipt_chroma.snapshots.manifest import Manifest, manifest_digest, parse_manifest
from receipt_chroma.snapshots.models import CacheTier, EfsCopy, EfsTier, LocalFile
from receipt_chroma.snapshots.reader import (
    VersionRead,
    build_path,
    index_files,
    materialize,
    merge_indexes,
    read_version,
)
from receipt_chroma.snapshots.resident_client import ResidentClient
from receipt_chroma.snapshots.s3_store import S3SnapshotStore
from receipt_chroma.snapshots.stats import SnapshotStats

_LOGGER = logging.getLogger(__name__)


class WorkingCopy:
    """``<work_dir>/<collection>/snapshot`` plus ``.version``/``.manifest.json`` markers
    and a lock file."""

    def __init__(self, work_dir: str | Path, collection: str) -> None:
        self.collection = collection
        self.base = Path(work_dir) / collection
        self.path = self.base / "snapshot"
        self._marker = self.base / ".version"
        self._manifest = self.base / ".manifest.json"
        self._lock: IO[str] | None = None
        # The write client kept open between cycles (closed before the copy changes).
        self.client = ResidentClient(self.path)

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
        self.client.close()
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

    def manifest(self) -> Manifest | None:
        """The manifest of the labelled version (format 2 versions only)."""
        version = self.version
        if version is None:
            return None
        try:
            data = self._manifest.read_bytes()
            return parse_manifest(data, collection=self.collection, version_id=version)
        except (OSError, SnapshotError):
            return None

    def relabel(self, version: str, manifest: Manifest | None = None) -> None:
        """Label the copy as ``version`` (with its manifest when it has one)."""
        self._manifest.unlink(missing_ok=True)
        if manifest is not None:
            temporary = self.base / f".manifest-{secrets.token_hex(4)}.tmp"
            temporary.write_bytes(manifest.to_bytes())
            os.replace(temporary, self._manifest)
        temporary = self.base / ".version.tmp"
        temporary.write_text(version, encoding="ascii")
        os.replace(temporary, self._marker)

    def relabel_unwritten(self, version: str, manifest: Manifest | None) -> None:
        """Give the label back to a copy that received no write call. It still holds the
        version's records, but opening Chroma rewrites some bytes (``chroma.sqlite3``, and
        two HNSW files when loading the index replayed unindexed records into them), so
        the label lists the files as they are now: catch-up reuses a local file only when
        its recorded hash is true."""
        if manifest is not None:
            manifest = replace(manifest, files=tuple(directory_entries(self.path)))
        self.relabel(version, manifest)

    def discard(self) -> None:
        """Forget the copy (after a cycle that changed it without publishing)."""
        self.client.close()
        self.mark_dirty()
        remove_tree(self.path)

    def mark_dirty(self) -> None:
        """Before changing the copy: until relabelled it matches no version."""
        self._marker.unlink(missing_ok=True)
        self._manifest.unlink(missing_ok=True)

    def start_empty(self) -> CacheTier:
        """A fresh, empty copy for bootstrapping a collection that has no snapshot at all."""
        self.lock()
        self.discard()
        self.base.mkdir(parents=True, exist_ok=True)
        return CacheTier.BOOTSTRAP

    # --- filling ----------------------------------------------------------------------------

    def prepare(
        self,
        version: str,
        store: S3SnapshotStore,
        efs: EfsTier | None,
        stats: SnapshotStats | None = None,
        *,
        fence: DeleteFence,
    ) -> CacheTier:
        """Make the copy hold ``version`` from the cheapest tier; returns the tier used.
        An EFS version found corrupt is deleted only while ``fence`` allows (§6 rev 3)."""
        stats = stats if stats is not None else SnapshotStats()
        self.lock()
        if self.version is not None and not self._matches_label():
            _LOGGER.warning(
                "working copy does not match its label; discarded",
                extra={"collection": self.collection, "version": self.version},
            )
            stats.add(cache_repairs=1)
            self.discard()
        if self.version == version:
            return CacheTier.WARM
        if self.version is not None and self._catch_up(version, store, efs, stats):
            return CacheTier.CATCH_UP
        self.discard()
        self.base.mkdir(parents=True, exist_ok=True)
        if efs is not None and self._copy_from_efs(version, efs, stats, fence):
            return CacheTier.EFS
        self.fetch_from_s3(version, store, efs, stats)
        return CacheTier.S3

    def _matches_label(self) -> bool:
        """Every file the label's manifest names is there with its size (a stat per file:
        what a crash or a cleaner of the local disk leaves is caught without hashing).
        A format 1 label records no files.

        Sizes only, deliberately: the warm copy is this process's own (an exclusive
        ``flock`` on a private work directory) and is only written by this process's
        cycles, which relabel it after each write, so hashing the whole index every
        cycle would buy nothing. Catch-up, which hard-links these files into a *new*
        version, does hash them (``_local_index``)."""
        manifest = self.manifest()
        if manifest is None:
            return True
        try:
            return all(
                target_path(self.path, entry.path).stat().st_size == entry.size
                for entry in manifest.files
            )
        except (OSError, SnapshotError):
            return False

    def _efs_reuse(self, efs: EfsTier | None, stats: SnapshotStats) -> dict[str, list[LocalFile]]:
        """EFS files offered for reuse; none (an EFS failure) when EFS cannot be listed."""
        if efs is None:
            return {}
        try:
            return efs.reuse_index()
        except OSError as error:
            stats.add(efs_failures=1)
            _LOGGER.warning("could not read EFS versions", extra={"error": str(error)})
            return {}

    def _local_index(self, stats: SnapshotStats) -> dict[str, list[LocalFile]]:
        """The labelled copy's files by sha256, each file hashed now. Catch-up hard-links
        these into the new version, so a file whose bytes no longer have the sha256 its
        label records (changed on disk since, same size) is left out — fetched instead —
        and counted as a cache repair. Hashing is local and cheap (~0.2 s per 126 MB)."""
        manifest = self.manifest()
        if manifest is None:  # format 1 label: no recorded hashes, these are computed now
            return index_files(self.path, directory_entries(self.path), trusted=True)
        index: dict[str, list[LocalFile]] = {}
        for entry in manifest.files:
            try:
                path = target_path(self.path, entry.path)
                actual = sha256_file(path)
            except (OSError, SnapshotError):
                actual = None
            if actual != entry.sha256:
                _LOGGER.warning(
                    "working copy file does not have its recorded sha256; fetching it",
                    extra={"collection": self.collection, "path": entry.path},
                )
                stats.add(cache_repairs=1)
                continue
            index.setdefault(entry.sha256, []).append(LocalFile(path, trusted=True))
        return index

    def _catch_up(
        self, version: str, store: S3SnapshotStore, efs: EfsTier | None, stats: SnapshotStats
    ) -> bool:
        """Build ``version`` beside the labelled copy from its files plus those that differ.
        False (nothing changed) when ``version`` is a format 1 version."""
        found = store.read_manifest(version, stats)
        if found is None:
            return False
        manifest, data = found
        reuse = merge_indexes(self._local_index(stats), self._efs_reuse(efs, stats))
        building = build_path(self.path)
        try:
            materialize(store, manifest, building, reuse, stats)
        except BaseException:
            remove_tree(building)
            raise
        self.client.close()
        self.mark_dirty()
        previous = self.base / f".previous-{secrets.token_hex(4)}"
        os.replace(self.path, previous)
        os.replace(building, self.path)
        remove_tree(previous)
        self.relabel(version, manifest)
        self._store_in_efs(
            efs, VersionRead(version, 2, manifest_digest(data), manifest, data), stats
        )
        return True

    def _copy_from_efs(
        self, version: str, efs: EfsTier, stats: SnapshotStats, fence: DeleteFence
    ) -> bool:
        try:
            if not efs.has_version(version):
                return False
            manifest = efs.read_manifest(version)
        except OSError as error:
            return self._efs_failed(stats, str(error))
        if manifest is None:  # format 1 (or no manifest): no per-file hashes to verify
            return False  # a cache miss: the verified tarball is read from S3
        building = build_path(self.path)
        copied = efs.copy_version(version, building, fence)
        if copied is EfsCopy.CORRUPT:
            self._repair_efs(version, efs, stats, fence)
            return False
        if copied is EfsCopy.FAILED:
            return self._efs_failed(stats, f"copy of {version} to local disk failed")
        if copied is not EfsCopy.COPIED:
            return False
        os.replace(building, self.path)
        self.relabel(version, manifest)
        return True

    def _repair_efs(
        self, version: str, efs: EfsTier, stats: SnapshotStats, fence: DeleteFence
    ) -> None:
        """Delete an EFS version that does not match its manifest: the S3 read that
        follows writes it again."""
        _LOGGER.warning(
            "EFS version does not match its manifest; discarded",
            extra={"collection": self.collection, "version": version},
        )
        stats.add(cache_repairs=1)
        if not fence.allows():
            _LOGGER.warning(
                "corrupt EFS version kept: the lease is not confirmed",
                extra={"collection": self.collection, "version": version, "why": fence.refused},
            )
            return
        try:
            efs.delete_version(version)
        except OSError as error:
            self._efs_failed(stats, str(error))

    @staticmethod
    def _efs_failed(stats: SnapshotStats, error: str) -> bool:
        stats.add(efs_failures=1)
        _LOGGER.warning("EFS read failed; reading from S3", extra={"error": error})
        return False

    def fetch_from_s3(
        self,
        version: str,
        store: S3SnapshotStore,
        efs: EfsTier | None = None,
        stats: SnapshotStats | None = None,
        *,
        committed: bool = True,
    ) -> VersionRead:
        """Read and verify ``version`` from S3 into the copy (reusing EFS files), label
        it, and write it to EFS for the next container. EFS ``.version`` is pointed at it
        only when it is ``committed`` (not a version about to be adopted)."""
        self.lock()
        self.discard()
        self.base.mkdir(parents=True, exist_ok=True)
        stats = stats if stats is not None else SnapshotStats()
        reuse = self._efs_reuse(efs, stats)
        read = read_version(store, version, self.path, reuse=reuse, stats=stats)
        self.relabel(version, read.manifest)
        self._store_in_efs(efs, read, stats, current=committed)
        return read

    def _store_in_efs(
        self, efs: EfsTier | None, read: VersionRead, stats: SnapshotStats, *, current: bool = True
    ) -> None:
        if read.manifest_bytes is None:  # format 1 is never read from EFS
            return
        error = store_on_efs(
            efs,
            read.version,
            self.path,
            read.manifest_bytes,
            stats,
            current=read.version if current else None,
        )
        if error is not None:  # EFS is a cache: its failures never fail the cycle
            _LOGGER.warning("could not write version to EFS", extra={"error": str(error)})
