"""The reader's copies of versions on local disk.

One directory per reader, held by one process (an exclusive ``flock`` on ``.lock``)::

    <directory>/.lock
    <directory>/<version>.<hex>/            a complete, verified copy:
        data/                               the persist directory chromadb opens
        manifest.json                       the version's manifest (format 2)
    <directory>/.build-<version>-<hex>/     a copy being built
    <directory>/.trash-<name>/              a copy being deleted

A copy is built aside and renamed into place, so a name without a leading dot is always
complete and was verified when it was built. Its files are reused for the next version
only through a verified copy (hashed while copied), never a hard link: chromadb rewrites
files of a directory it opens (``chroma.sqlite3`` always, HNSW files when it persists),
and a link would carry that into the new copy.
"""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from receipt_chroma.exceptions import SnapshotError
from receipt_chroma.reader.exceptions import ReaderBusyError
from receipt_chroma.snapshots.files import remove_tree
from receipt_chroma.snapshots.layout import SHA256_RE
from receipt_chroma.snapshots.manifest import FileEntry, Manifest, parse_manifest
from receipt_chroma.snapshots.reader import index_files, merge_indexes, read_version
from receipt_chroma.snapshots.s3_store import S3SnapshotStore
from receipt_chroma.snapshots.stats import SnapshotStats

LOCK_NAME = ".lock"
DATA = "data"
MANIFEST = "manifest.json"

Source = tuple[Path, Sequence[FileEntry]]
"""A directory and the files it holds (path relative to it, size, sha256), offered for
reuse: each is copied only if its bytes still hash to what is recorded."""


@dataclass(frozen=True)
class LocalCopy:
    path: Path
    version: str

    @property
    def data(self) -> Path:
        return self.path / DATA

    def manifest(self, collection: str) -> Manifest | None:
        """The manifest stored beside the copy; None for a format 1 copy or one whose
        manifest cannot be read (its files are then not offered for reuse)."""
        try:
            data = (self.path / MANIFEST).read_bytes()
            return parse_manifest(data, collection=collection, version_id=self.version)
        except (OSError, SnapshotError):
            return None


class DirectoryLock:
    """The exclusive ``flock`` that makes a reader directory one process's own."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        handle = (self.directory / LOCK_NAME).open("w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise ReaderBusyError(
                f"reader directory {self.directory} is in use by another process"
            ) from None
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def list_copies(directory: Path) -> list[LocalCopy]:
    """The complete copies in ``directory``, newest version first."""
    copies = [
        LocalCopy(path, path.name.rpartition(".")[0])
        for path in directory.iterdir()
        if path.is_dir() and not path.name.startswith(".") and "." in path.name
    ]
    return sorted(copies, key=lambda copy: copy.version, reverse=True)


def copy_sources(copies: Sequence[LocalCopy], collection: str) -> list[Source]:
    """The persist directories of ``copies`` with the files their manifests record (a
    copy without a readable manifest offers nothing)."""
    sources: list[Source] = []
    for copy in copies:
        manifest = copy.manifest(collection)
        if manifest is not None:
            sources.append((copy.data, manifest.files))
    return sources


def objects_source(directory: Path) -> Source:
    """A directory of files named by their sha256 (objects downloaded and decompressed
    elsewhere, e.g. by ``status --deep``)."""
    entries = [
        FileEntry(path.name, path.stat().st_size, path.name)
        for path in sorted(directory.iterdir())
        if path.is_file() and SHA256_RE.fullmatch(path.name)
    ]
    return directory, entries


def build_copy(
    store: S3SnapshotStore,
    version: str,
    directory: Path,
    *,
    sources: Sequence[Source],
    stats: SnapshotStats,
) -> LocalCopy:
    """Read and verify ``version`` into a new copy in ``directory``: files of ``sources``
    with the right sha256 are copied, the others fetched (contract §6 "Reading a
    version", as the working copy's catch-up does)."""
    reuse = merge_indexes(*(index_files(root, entries, trusted=False) for root, entries in sources))
    building = directory / f".build-{version}-{secrets.token_hex(4)}"
    try:
        read = read_version(store, version, building / DATA, reuse=reuse, stats=stats)
        if read.manifest_bytes is not None:
            (building / MANIFEST).write_bytes(read.manifest_bytes)
        copy = LocalCopy(directory / f"{version}.{secrets.token_hex(4)}", version)
        os.replace(building, copy.path)
    except BaseException:
        remove_tree(building)
        raise
    return copy


def delete_entry(path: Path) -> None:
    """Remove a copy (or a leftover build): renamed out of the copies' names first, so a
    deletion cut short never leaves a partial copy under a version's name."""
    if path.name.startswith("."):
        remove_tree(path)
        return
    trash = path.with_name(f".trash-{path.name}")
    try:
        os.replace(path, trash)
    except OSError:
        remove_tree(path)
        return
    remove_tree(trash)


def remove_unkept(directory: Path, keep: set[Path], *, keep_copies: bool) -> list[str]:
    """Delete every entry of ``directory`` but the lock and ``keep`` (and, with
    ``keep_copies``, every complete copy); returns the names deleted."""
    complete = {copy.path for copy in list_copies(directory)} if keep_copies else set()
    removed = []
    for path in directory.iterdir():
        if path.name == LOCK_NAME or path in keep or path in complete:
            continue
        delete_entry(path)
        removed.append(path.name)
    return sorted(removed)
