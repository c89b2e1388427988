"""Tarballs of persisted Chroma directories: made deterministic, extracted defensively.

Members are paths relative to the persist directory (``chroma.sqlite3``,
``<segment-uuid>/…``), with no leading folder. Extraction rejects absolute paths, ``..``,
links and special files; nothing is ever written outside the destination.
"""

from __future__ import annotations

import contextlib
import tarfile
from pathlib import Path, PurePosixPath

from receipt_chroma.exceptions import UnsafeArchiveError


def create_tarball(source: Path, target: Path, *, compresslevel: int = 0) -> Path:
    """Write ``source``'s files into ``target`` (gzip), members relative to ``source``.

    Level 0 (stored deflate blocks, still a gzip file) by default: a snapshot is mostly
    float32 vectors (the HNSW files and Chroma's log), which barely compress. Measured on a
    42 MB snapshot: level 1 took 2.0 s for an 18 % smaller file, level 0 0.09 s.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(target, "w:gz", compresslevel=compresslevel) as archive:
        for path in sorted(source.rglob("*")):
            if path.is_file() and not path.is_symlink():
                archive.add(path, arcname=str(path.relative_to(source)), recursive=False)
    return target


def check_member_name(name: str) -> PurePosixPath:
    """A safe relative path for an archive member or object key, else UnsafeArchiveError."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or name.startswith("\\") or ".." in path.parts:
        raise UnsafeArchiveError(f"unsafe path {name!r}: absolute or escapes the directory")
    return path


def extract_tarball(archive_path: Path, destination: Path) -> list[str]:
    """Extract into ``destination``, checking each member before it is written; returns the
    names of the files.

    One streaming pass (a gzip stream cannot seek back, so listing the members first would
    decompress everything twice). An unsafe or unreadable member stops extraction with an
    error, and what this call had written is removed again.
    """
    destination.mkdir(parents=True, exist_ok=True)
    written: list[tarfile.TarInfo] = []
    try:
        with tarfile.open(archive_path, "r|*") as archive:
            for member in archive:
                check_member_name(member.name)
                if not (member.isfile() or member.isdir()):
                    kind = "link" if member.issym() or member.islnk() else "special file"
                    raise UnsafeArchiveError(f"unsafe member {member.name!r}: {kind}")
                written.append(member)
                # The "data" filter re-checks the same rules inside tarfile itself.
                archive.extract(member, destination, filter="data")
    except BaseException:
        _remove_members(destination, written)
        raise
    return [member.name for member in written if member.isfile()]


def _remove_members(destination: Path, members: list[tarfile.TarInfo]) -> None:
    """Remove extracted members and the directories made for them (if left empty)."""
    directories: set[PurePosixPath] = set()
    for member in members:
        name = PurePosixPath(member.name)
        directories.update(parent for parent in name.parents if parent != PurePosixPath("."))
        if member.isdir():
            directories.add(name)
        else:
            (destination / name).unlink(missing_ok=True)
    for directory in sorted(directories, key=lambda d: len(d.parts), reverse=True):
        with contextlib.suppress(OSError):  # not empty: it held files of its own
            (destination / directory).rmdir()
