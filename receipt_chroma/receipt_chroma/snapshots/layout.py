"""Where a collection's snapshots live in S3 (contract §6.1), in one place.

``<collection>/snapshot/`` holds

- ``objects/<sha256>.zst`` — one file of a closed persist directory, zstd-compressed,
  named by the sha256 of the *uncompressed* file (format 2);
- ``versions/<version_id>/manifest.json`` and ``.manifest_hash`` (format 2);
- ``timestamped/<version_id>/snapshot.tar.gz`` and ``.snapshot_hash`` (format 1, read only);
- ``latest-pointer.txt`` — the current version id, a derived cache of the pointer item.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

OBJECTS: Final = "objects/"
VERSIONS: Final = "versions/"
TIMESTAMPED: Final = "timestamped/"
MANIFEST: Final = "manifest.json"
MANIFEST_HASH: Final = ".manifest_hash"
TARBALL: Final = "snapshot.tar.gz"
TARBALL_HASH: Final = ".snapshot_hash"
POINTER_FILE: Final = "latest-pointer.txt"
OBJECT_SUFFIX: Final = ".zst"
SHA256_RE: Final = re.compile(r"[0-9a-f]{64}", re.ASCII)


@dataclass(frozen=True)
class SnapshotLayout:
    """The keys of one collection's snapshots."""

    collection: str

    @property
    def prefix(self) -> str:
        return f"{self.collection}/snapshot/"

    @property
    def pointer_key(self) -> str:
        return f"{self.prefix}{POINTER_FILE}"

    @property
    def objects_prefix(self) -> str:
        return f"{self.prefix}{OBJECTS}"

    @property
    def versions_prefix(self) -> str:
        return f"{self.prefix}{VERSIONS}"

    @property
    def timestamped_prefix(self) -> str:
        return f"{self.prefix}{TIMESTAMPED}"

    def object_key(self, sha256: str) -> str:
        if SHA256_RE.fullmatch(sha256) is None:
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return f"{self.objects_prefix}{sha256}{OBJECT_SUFFIX}"

    def manifest_key(self, version: str) -> str:
        return f"{self.versions_prefix}{version}/{MANIFEST}"

    def manifest_hash_key(self, version: str) -> str:
        return f"{self.versions_prefix}{version}/{MANIFEST_HASH}"

    def tarball_key(self, version: str) -> str:
        return f"{self.timestamped_prefix}{version}/{TARBALL}"

    def tarball_hash_key(self, version: str) -> str:
        return f"{self.timestamped_prefix}{version}/{TARBALL_HASH}"

    def object_sha(self, key: str) -> str | None:
        """The sha256 an ``objects/`` key names, or None for any other key."""
        if not key.startswith(self.objects_prefix) or not key.endswith(OBJECT_SUFFIX):
            return None
        sha = key[len(self.objects_prefix) : -len(OBJECT_SUFFIX)]
        return sha if SHA256_RE.fullmatch(sha) else None

    def version_of(self, key: str) -> tuple[int, str] | None:
        """``(format, version_id)`` of a key under ``versions/`` or ``timestamped/``."""
        for snapshot_format, prefix in ((2, self.versions_prefix), (1, self.timestamped_prefix)):
            if key.startswith(prefix):
                version = key[len(prefix) :].split("/", 1)[0]
                return (snapshot_format, version) if version else None
        return None
