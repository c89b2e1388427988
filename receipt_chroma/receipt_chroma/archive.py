"""Tarballs of persisted Chroma directories: made deterministic, extracted defensively.

Members are paths relative to the persist directory (``chroma.sqlite3``,
``<segment-uuid>/…``), with no leading folder. Extraction rejects absolute paths, ``..``,
links and special files before writing anything.
"""

from __future__ import annotations

import tarfile
from pathlib import Path, PurePosixPath

from receipt_chroma.exceptions import UnsafeArchiveError


def create_tarball(source: Path, target: Path, *, compresslevel: int = 1) -> Path:
    """Write ``source``'s files into ``target`` (gzip), members relative to ``source``.

    Level 1 by default: embeddings are float arrays that barely compress, so higher
    levels cost seconds per snapshot for a few percent of size.
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
    """Extract into ``destination`` after checking every member; returns the member names."""
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive_path, "r:*") as archive:
        members = archive.getmembers()
        for member in members:
            check_member_name(member.name)
            if not (member.isfile() or member.isdir()):
                kind = "link" if member.issym() or member.islnk() else "special file"
                raise UnsafeArchiveError(f"unsafe member {member.name!r}: {kind}")
        # The "data" filter re-checks the same rules inside tarfile itself.
        archive.extractall(destination, members=members, filter="data")
    return [m.name for m in members if m.isfile()]
