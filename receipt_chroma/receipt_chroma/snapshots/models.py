"""Types the snapshot modules share, with each other and with their callers: the cache
tiers (contract §5.2, §6.2), local files offered for reuse, what reading a version needs of
the S3 store, and the EFS tier.

The EFS tier is a protocol: ``receipt_chroma.compaction.efs_snapshot_manager`` implements
it, and it is the only way the snapshot modules reach EFS, so nothing under ``snapshots``
imports from ``compaction``. The snapshot modules named below are needed for annotations
only, and none of them imports this one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

    from receipt_chroma.snapshots.fence import DeleteFence
    from receipt_chroma.snapshots.layout import SnapshotLayout
    from receipt_chroma.snapshots.manifest import Manifest
    from receipt_chroma.snapshots.objects import ObjectStore
    from receipt_chroma.snapshots.stats import SnapshotStats


class CacheTier(StrEnum):
    WARM = "warm"
    CATCH_UP = "catch_up"
    EFS = "efs"
    S3 = "s3"
    BOOTSTRAP = "bootstrap"

    @property
    def metric_name(self) -> str:
        """``CacheTierWarm``, ``CacheTierCatchUp``, ``CacheTierEfs``, ``CacheTierS3`` …"""
        return "CacheTier" + "".join(part.title() for part in self.value.split("_"))


@dataclass(frozen=True)
class LocalFile:
    """A local file offered for reuse. ``trusted`` files belong to a directory whose
    manifest is known and whose files are never modified (hard-linked); others are
    copied with their hash verified."""

    path: Path
    trusted: bool = False


ReuseIndex = Mapping[str, Sequence[LocalFile]]
"""sha256 → local files offered for reuse when a version is built."""


class VersionSource(Protocol):
    """What reading a version (either format) needs of a collection's S3 store
    (``receipt_chroma.snapshots.s3_store.S3SnapshotStore``)."""

    @property
    def s3(self) -> S3Client: ...
    @property
    def bucket(self) -> str: ...
    @property
    def collection(self) -> str: ...
    @property
    def prefix(self) -> str: ...
    @property
    def layout(self) -> SnapshotLayout: ...
    @property
    def objects(self) -> ObjectStore: ...

    def read_manifest(
        self, version: str, stats: SnapshotStats | None = None
    ) -> tuple[Manifest, bytes] | None:
        """A format 2 version's manifest, checked against ``.manifest_hash``, and its
        bytes; None when the version is not a format 2 version."""
        ...

    def read_tarball_hash(self, version: str) -> str | None:
        """A format 1 version's ``.snapshot_hash``, or None."""
        ...


class EfsCopy(StrEnum):
    """What ``EfsTier.copy_version`` found."""

    COPIED = "copied"
    ABSENT = "absent"  # no such version directory
    CORRUPT = "corrupt"  # its files do not match its manifest (or a file is missing)
    FAILED = "failed"  # EFS could not be read: a cache miss, the version may be fine


class EfsTier(Protocol):
    """The EFS tier of a collection (contract §6.4), as the working copy, the publisher,
    the base of a cycle and the operator commands use it."""

    def has_version(self, version: str) -> bool: ...

    def current_version(self) -> str | None: ...

    def set_current_version(self, version: str) -> None: ...

    def read_manifest(self, version: str) -> Manifest | None:
        """The copy of ``manifest.json`` in a format 2 version directory."""
        ...

    def reuse_index(self) -> dict[str, list[LocalFile]]:
        """sha256 → files of complete format 2 version directories (offered for copying)."""
        ...

    def copy_version(self, version: str, destination: Path, fence: DeleteFence) -> EfsCopy:
        """Copy a version's persist directory to local disk, every file verified against
        its manifest; a version without one (format 1) cannot be verified and is ABSENT.
        On anything but COPIED nothing is left at ``destination``. Other versions sharing
        a damaged file are deleted only while ``fence`` allows."""
        ...

    def delete_version(self, version: str) -> None:
        """Remove a version directory (a corrupt one, so that it is written again)."""
        ...

    def store_version(
        self,
        version: str,
        persist_directory: Path,
        *,
        manifest_bytes: bytes,
    ) -> Path: ...

    def cleanup(self, keep: set[str], fence: DeleteFence, now: float | None = None) -> list[str]:
        """Delete versions outside ``keep`` and stale temporaries, each only while
        ``fence`` allows (§6 rev 3)."""
        ...
