"""Auditing snapshot versions for damaged objects (contract §6, "Repair").

An object ``objects/<sha256>.zst`` is *damaged* when it is missing or when its bytes do
not decompress to a file whose sha256 is its name; every version naming it then fails to
read. ``audit`` checks versions: cheaply (each manifest against its ``.manifest_hash``,
every object it names present, and — given the ETags recorded when objects were last
read and verified — none changed since) or deeply (every object read back and hashed).
``receipt_chroma.snapshots.repair`` restores what it finds.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from receipt_chroma.exceptions import (
    SnapshotError,
    SnapshotVersionCorruptError,
    SnapshotVersionMissingError,
)
from receipt_chroma.snapshots.legacy import download_tarball
from receipt_chroma.snapshots.manifest import FileEntry, Manifest
from receipt_chroma.snapshots.stats import SnapshotStats

if TYPE_CHECKING:
    from receipt_chroma.snapshots.s3_store import S3SnapshotStore

MISSING = "missing"
CORRUPT = "corrupt"
CHANGED = "changed"  # its ETag differs from the one recorded when it last verified


@dataclass(frozen=True)
class DamagedObject:
    sha256: str
    size: int  # the uncompressed size the manifests record
    paths: tuple[str, ...]  # the manifest paths naming it
    problem: str  # MISSING, CORRUPT or CHANGED
    detail: str


@dataclass
class VersionAudit:
    version: str
    format: int | None  # None: the version does not exist
    problems: list[str] = field(default_factory=list)  # one line each
    damaged: list[str] = field(default_factory=list)  # sha256 of damaged objects it names
    objects: int = 0  # objects it names
    unchecked: int = 0  # objects whose bytes this audit did not read (a cheap audit)
    manifest: Manifest | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Audit:
    versions: list[VersionAudit]
    damaged: dict[str, DamagedObject]  # sha256 → what is wrong with it
    verified: dict[str, str]  # sha256 → ETag of objects read back and hashed
    deep: bool

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.versions)


def list_objects(store: S3SnapshotStore) -> dict[str, str]:
    """sha256 → ETag of every object under the collection's ``objects/``."""
    found: dict[str, str] = {}
    pages = store.s3.get_paginator("list_objects_v2").paginate(
        Bucket=store.bucket, Prefix=store.layout.objects_prefix
    )
    for page in pages:
        for item in page.get("Contents", []):
            sha = store.layout.object_sha(item["Key"])
            if sha is not None:
                found[sha] = str(item.get("ETag", ""))
    return found


def audit_versions(
    store: S3SnapshotStore,
    versions: Sequence[str],
    *,
    deep: bool = False,
    verified_etags: Mapping[str, str] | None = None,
    keep_dir: Path | None = None,
) -> Audit:
    """Check ``versions`` of ``store``'s collection; nothing raises for a damaged version.

    ``verified_etags`` (sha256 → ETag of an object that verified earlier) lets a cheap
    audit flag an object rewritten since. A deep audit reads every object once (however
    many versions share it); with ``keep_dir`` the verified files are kept there as
    ``<sha256>`` (a reuse source for reading a version without downloading again)."""
    check = _ObjectCheck(store, list_objects(store), verified_etags or {}, deep, keep_dir)
    result = Audit(versions=[], damaged={}, verified=check.verified, deep=deep)
    entries: dict[str, FileEntry] = {}
    paths: dict[str, set[str]] = {}
    for version in versions:
        checked = _read_version_keys(store, version, deep=deep)
        result.versions.append(checked)
        if checked.manifest is None:
            continue
        for entry in checked.manifest.files:
            entries.setdefault(entry.sha256, entry)
            paths.setdefault(entry.sha256, set()).add(entry.path)
    for sha, entry in entries.items():
        problem = check.problem(entry)
        if problem is not None:
            what, detail = problem
            result.damaged[sha] = DamagedObject(
                sha, entry.size, tuple(sorted(paths[sha])), what, detail
            )
    for checked in result.versions:
        if checked.manifest is None:
            continue
        shas = {e.sha256 for e in checked.manifest.files}
        checked.objects = len(shas)
        checked.unchecked = 0 if deep else len(shas)
        for sha in sorted(shas & result.damaged.keys()):
            damaged = result.damaged[sha]
            checked.damaged.append(sha)
            checked.problems.append(f"object {sha} for {', '.join(damaged.paths)} {damaged.detail}")
    return result


def _read_version_keys(store: S3SnapshotStore, version: str, *, deep: bool) -> VersionAudit:
    """The version's format and manifest, and what is wrong with its own keys."""
    where = f"{store.collection} version {version}"
    try:
        found = store.read_manifest(version)
    except SnapshotError as error:  # a manifest that does not verify is never repaired
        return VersionAudit(version, 2, problems=[f"manifest: {error}"])
    if found is not None:
        return VersionAudit(version, 2, manifest=found[0])
    if store.version_format(version) is None:
        return VersionAudit(version, None, problems=[f"{where} does not exist in S3"])
    if not deep:
        return VersionAudit(version, 1, unchecked=1)
    with tempfile.TemporaryDirectory(prefix="audit-") as tmp:
        try:
            download_tarball(store, version, Path(tmp) / "s", SnapshotStats())
        except SnapshotError as error:
            return VersionAudit(version, 1, problems=[f"tarball: {error}"])
    return VersionAudit(version, 1)


@dataclass
class _ObjectCheck:
    """How one audit checks the objects the versions name."""

    store: S3SnapshotStore
    listing: Mapping[str, str]  # sha256 → ETag of what exists
    known: Mapping[str, str]  # sha256 → ETag recorded when it last verified
    deep: bool
    keep_dir: Path | None
    verified: dict[str, str] = field(default_factory=dict)

    def problem(self, entry: FileEntry) -> tuple[str, str] | None:
        etag = self.listing.get(entry.sha256)
        if etag is None:
            return MISSING, "is missing"
        if not self.deep:
            if entry.sha256 in self.known and self.known[entry.sha256] != etag:
                return CHANGED, "changed since it last verified (an object is never rewritten)"
            return None
        with tempfile.TemporaryDirectory(prefix="audit-") as tmp:
            target = Path(tmp) / entry.sha256
            where = f"{self.store.collection} snapshot"
            try:
                self.store.objects.fetch(entry, target, SnapshotStats(), where=where)
            except SnapshotVersionMissingError:
                return MISSING, "is missing"
            except SnapshotVersionCorruptError as error:
                return CORRUPT, _after_key(str(error), entry.sha256)
            if self.keep_dir is not None:
                self.keep_dir.mkdir(parents=True, exist_ok=True)
                os.replace(target, self.keep_dir / entry.sha256)
        self.verified[entry.sha256] = etag
        return None


def _after_key(message: str, sha: str) -> str:
    """The part of an object error after ``… object <key> for <path>`` (said once)."""
    marker = f"{sha}.zst for "
    if marker in message:
        rest = message.split(marker, 1)[1]
        return rest.split(" ", 1)[1] if " " in rest else rest
    return message
