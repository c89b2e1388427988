"""The format 2 manifest of a snapshot version (contract §6.1).

``versions/<version_id>/manifest.json`` is immutable UTF-8 JSON::

    {"format": 2, "collection", "version_id", "base_version", "created_at",
     "chromadb_version", "dimension", "record_count",
     "files": [{"path", "size", "sha256"}, …]}

with ``files`` sorted by ``path`` (relative to the persist directory, no ``..``, no leading
``/``, no control characters, no path that is also another path's directory).
``.manifest_hash`` holds ``sha256:<hex of manifest.json's bytes>``. A manifest is read back
only from bytes whose hash was checked, and is validated field by field: whatever the file
system would refuse is refused here, as a corrupt version.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Final

from receipt_chroma.exceptions import SnapshotVersionCorruptError
from receipt_chroma.snapshots.layout import SHA256_RE

FORMAT: Final = 2
MAX_NAME_BYTES: Final = 255  # NAME_MAX: a longer path component cannot be created
FIELDS: Final = (
    "format",
    "collection",
    "version_id",
    "base_version",
    "created_at",
    "chromadb_version",
    "dimension",
    "record_count",
    "files",
)


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    collection: str
    version_id: str
    base_version: str | None
    created_at: str
    chromadb_version: str
    dimension: int
    record_count: int
    files: tuple[FileEntry, ...]

    @property
    def total_size(self) -> int:
        return sum(entry.size for entry in self.files)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "collection": self.collection,
            "version_id": self.version_id,
            "base_version": self.base_version,
            "created_at": self.created_at,
            "chromadb_version": self.chromadb_version,
            "dimension": self.dimension,
            "record_count": self.record_count,
            "files": [
                {"path": e.path, "size": e.size, "sha256": e.sha256}
                for e in sorted(self.files, key=lambda e: e.path)
            ],
        }

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), indent=1, ensure_ascii=False).encode("utf-8")


def manifest_digest(data: bytes) -> str:
    """The ``.manifest_hash`` body for manifest bytes: ``sha256:<hex>``."""
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _bad(where: str, problem: str) -> SnapshotVersionCorruptError:
    return SnapshotVersionCorruptError(f"{where}: manifest {problem}")


def _file_entry(where: str, item: object) -> FileEntry:
    if not isinstance(item, dict) or set(item) != {"path", "size", "sha256"}:
        raise _bad(where, f"file entry must be {{path, size, sha256}}, got {item!r}")
    path, size, sha = item["path"], item["size"], item["sha256"]
    if not isinstance(path, str) or not is_safe_path(path):
        raise _bad(where, f"path {path!r} is not a safe relative path")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise _bad(where, f"size of {path!r} must be a non-negative integer, got {size!r}")
    if not isinstance(sha, str) or SHA256_RE.fullmatch(sha) is None:
        raise _bad(where, f"sha256 of {path!r} is not a lower-case hex digest: {sha!r}")
    return FileEntry(path, size, sha)


def is_safe_path(path: str) -> bool:
    """Relative POSIX path inside the directory: no ``..``, no leading ``/``, no ``\\``,
    no control character (NUL included), no component longer than a file name can be."""
    parts = PurePosixPath(path).parts
    return bool(
        path
        and not path.startswith("/")
        and "\\" not in path
        and not any(ord(char) < 0x20 or ord(char) == 0x7F for char in path)
        and ".." not in parts
        and "." not in path.split("/")
        and "" not in path.split("/")
        and all(len(part.encode("utf-8")) <= MAX_NAME_BYTES for part in path.split("/"))
    )


def _check_tree(where: str, paths: list[str]) -> None:
    """No path may be both a file and a directory of another path (``a`` and ``a/b``)."""
    prefixes: set[str] = set()
    for path in paths:
        parts = path.split("/")
        prefixes.update("/".join(parts[:depth]) for depth in range(1, len(parts)))
    clash = sorted(prefixes.intersection(paths))
    if clash:
        raise _bad(where, f"path {clash[0]!r} is both a file and a directory")


def parse_manifest(data: bytes, *, collection: str, version_id: str) -> Manifest:
    """A manifest from its (hash-checked) bytes; SnapshotVersionCorruptError if malformed
    or if it describes another collection or version."""
    where = f"{collection} version {version_id}"
    try:
        body = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _bad(where, f"is not UTF-8 JSON: {error}") from error
    if not isinstance(body, dict) or set(body) != set(FIELDS):
        keys = sorted(body) if isinstance(body, dict) else type(body).__name__
        raise _bad(where, f"must have exactly the fields {list(FIELDS)}, got {keys}")
    if body["format"] != FORMAT:
        raise _bad(where, f"format must be {FORMAT}, got {body['format']!r}")
    if body["collection"] != collection or body["version_id"] != version_id:
        raise _bad(where, f"names {body['collection']!r} {body['version_id']!r}")
    for name in ("dimension", "record_count"):
        value = body[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _bad(where, f"{name} must be a non-negative integer, got {value!r}")
    for name in ("created_at", "chromadb_version"):
        if not isinstance(body[name], str):
            raise _bad(where, f"{name} must be a string, got {body[name]!r}")
    if body["base_version"] is not None and not isinstance(body["base_version"], str):
        raise _bad(where, f"base_version must be a string or null, got {body['base_version']!r}")
    if not isinstance(body["files"], list):
        raise _bad(where, "files must be a list")
    files = tuple(_file_entry(where, item) for item in body["files"])
    paths = [entry.path for entry in files]
    if paths != sorted(paths) or len(set(paths)) != len(paths):
        raise _bad(where, "files must be sorted by path, each path once")
    _check_tree(where, paths)
    return Manifest(
        collection=collection,
        version_id=version_id,
        base_version=body["base_version"],
        created_at=body["created_at"],
        chromadb_version=body["chromadb_version"],
        dimension=body["dimension"],
        record_count=body["record_count"],
        files=files,
    )


def check_manifest_bytes(data: bytes, recorded: str, *, where: str) -> None:
    """Raise SnapshotVersionCorruptError unless ``data`` hashes to the recorded value."""
    actual = manifest_digest(data)
    if actual != recorded.strip():
        raise SnapshotVersionCorruptError(
            f"{where}: manifest.json hash {actual} does not match .manifest_hash {recorded!r}"
        )
