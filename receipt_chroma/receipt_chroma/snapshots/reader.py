"""Reading a version into a local directory (contract §6.2), either format.

Format 2: the manifest is checked against ``.manifest_hash``; each file is taken from a
local file known to have its sha256 (the warm copy, an EFS version, an earlier version) or
fetched from ``objects/``, decompressed and verified. Format 1: the tarball is verified,
then extracted defensively. Either way the directory is built in a temporary sibling and
renamed into place, so a directory under the requested name is always complete and
verified; on any mismatch nothing is left and the version is never opened.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from receipt_chroma.exceptions import SnapshotDestinationError, SnapshotError
from receipt_chroma.snapshots.files import copy_verified, link_known, remove_tree, target_path
from receipt_chroma.snapshots.legacy import download_tarball
from receipt_chroma.snapshots.manifest import FileEntry, Manifest, manifest_digest
from receipt_chroma.snapshots.models import LocalFile, ReuseIndex, VersionSource
from receipt_chroma.snapshots.stats import SnapshotStats


def index_files(
    root: Path, entries: Iterable[FileEntry], *, trusted: bool
) -> dict[str, list[LocalFile]]:
    """sha256 → local files, for the files ``entries`` says ``root`` holds."""
    index: dict[str, list[LocalFile]] = {}
    for entry in entries:
        try:
            path = target_path(root, entry.path)
        except SnapshotError:
            continue
        index.setdefault(entry.sha256, []).append(LocalFile(path, trusted))
    return index


def merge_indexes(*indexes: ReuseIndex) -> dict[str, list[LocalFile]]:
    merged: dict[str, list[LocalFile]] = {}
    for index in indexes:
        for sha, files in index.items():
            merged.setdefault(sha, []).extend(files)
    return merged


@dataclass(frozen=True)
class VersionRead:
    version: str
    format: int
    digest: str  # the recorded hash: .manifest_hash (format 2) or .snapshot_hash (format 1)
    manifest: Manifest | None = None
    manifest_bytes: bytes | None = None


def build_path(destination: Path) -> Path:
    return destination.parent / f".build-{destination.name}-{secrets.token_hex(4)}"


def read_version(
    store: VersionSource,
    version: str,
    destination: Path,
    *,
    reuse: ReuseIndex | None = None,
    stats: SnapshotStats | None = None,
) -> VersionRead:
    """Build ``version`` at ``destination`` (which must not exist or be an empty
    directory). Raises SnapshotVersionMissingError / SnapshotVersionCorruptError."""
    stats = stats if stats is not None else SnapshotStats()
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise SnapshotDestinationError(f"{destination} exists and is not an empty directory")
    building = build_path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        found = store.read_manifest(version, stats)
        if found is not None:
            manifest, data = found
            materialize(store, manifest, building, reuse or {}, stats)
            outcome = VersionRead(version, 2, manifest_digest(data), manifest, data)
        else:
            digest = download_tarball(store, version, building, stats)
            outcome = VersionRead(version, 1, digest)
        os.replace(building, destination)
    except BaseException:
        remove_tree(building)
        raise
    return outcome


def materialize(
    store: VersionSource,
    manifest: Manifest,
    building: Path,
    reuse: ReuseIndex,
    stats: SnapshotStats,
) -> None:
    """Every file of ``manifest`` under ``building``: reused when possible, else fetched."""
    building.mkdir(parents=True, exist_ok=True)
    missing: list[tuple[FileEntry, Path]] = []
    for entry in manifest.files:
        target = target_path(building, entry.path)
        if reuse_local(entry, target, reuse.get(entry.sha256, ())):
            stats.add(files_reused=1, bytes_reused=entry.size)
        else:
            missing.append((entry, target))
    where = f"{manifest.collection} version {manifest.version_id}"
    store.objects.fetch_many(missing, stats, where=where)


def reuse_local(entry: FileEntry, target: Path, candidates: Sequence[LocalFile]) -> bool:
    for candidate in candidates:
        placed = (
            link_known(candidate.path, target, entry)
            if candidate.trusted
            else copy_verified(candidate.path, target, entry)
        )
        if placed:
            return True
    return False
