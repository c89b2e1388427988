"""Files of a persist directory: their sha256, and verified copies between directories.

A local file is reused for a version only when its content has the sha256 the version's
manifest names: copies are hashed while they are written, hard links are made only to
files whose hash is already known (an immutable version directory, the labelled warm
copy), and both are checked for size.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from pathlib import Path

from receipt_chroma.archive import check_member_name
from receipt_chroma.exceptions import SnapshotError, UnsafeArchiveError
from receipt_chroma.snapshots.manifest import FileEntry

BLOCK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def file_hash(path: Path) -> str:
    """``sha256:<hex>`` of a file (the form of ``.snapshot_hash`` and ``.manifest_hash``)."""
    return f"sha256:{sha256_file(path)}"


def directory_entries(directory: Path) -> list[FileEntry]:
    """Every regular file under ``directory`` with its size and sha256, sorted by path.

    Links and special files are refused: a persist directory holds neither.
    """
    entries = []
    for path in sorted(directory.rglob("*")):
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise SnapshotError(f"{path}: not a regular file or directory")
        if path.is_file():
            name = path.relative_to(directory).as_posix()
            entries.append(FileEntry(name, path.stat().st_size, sha256_file(path)))
    return sorted(entries, key=lambda e: e.path)


def target_path(root: Path, relative: str) -> Path:
    """``root / relative`` for a manifest path, refusing anything that would leave root."""
    try:
        return root.joinpath(*check_member_name(relative).parts)
    except UnsafeArchiveError as error:
        raise SnapshotError(str(error)) from error


def copy_verified(source: Path, target: Path, entry: FileEntry) -> bool:
    """Copy ``source`` to ``target`` hashing as it goes; True when it has ``entry``'s
    size and sha256. On a mismatch or any OS error nothing is left at ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        return copy_checked(source, target, entry)
    except OSError:
        return False


def copy_checked(source: Path, target: Path, entry: FileEntry) -> bool:
    """``copy_verified`` for a caller that tells a failing file system from a file that
    does not match: False on a mismatch, OS errors raised (nothing left at ``target``
    either way)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    try:
        with source.open("rb") as src, target.open("wb") as dst:
            for block in iter(lambda: src.read(BLOCK), b""):
                digest.update(block)
                size += len(block)
                dst.write(block)
    except OSError:
        target.unlink(missing_ok=True)
        raise
    if size != entry.size or digest.hexdigest() != entry.sha256:
        target.unlink(missing_ok=True)
        return False
    return True


def link_known(source: Path, target: Path, entry: FileEntry) -> bool:
    """Hard-link a file whose hash is known from its immutable directory's manifest.

    Falls back to a verified copy when linking is impossible (another file system).
    """
    try:
        if source.stat().st_size != entry.size:
            return False
    except OSError:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
        return True
    except OSError:
        return copy_verified(source, target, entry)


def remove_tree(path: Path) -> None:
    """Remove a directory (or file) if present; errors are ignored (best-effort cleanup)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()
