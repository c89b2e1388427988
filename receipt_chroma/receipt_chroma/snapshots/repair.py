"""Damaged snapshot objects: finding them, and repairing them (contract §6, "Repair").

An object ``objects/<sha256>.zst`` is *damaged* when it is missing or when its bytes do
not decompress to a file whose sha256 is its name; every version naming it then fails to
read. ``audit`` checks versions: cheaply (each manifest against its ``.manifest_hash``,
every object it names present, and — given the ETags recorded when objects were last
read and verified — none changed since) or deeply (every object read back and hashed).

``repair`` restores what an object's name promises, and nothing else: under the
collection's lease, confirmed by a heartbeat before each write, it uploads the bytes of a
local file whose sha256 is the object's name — from the warm working copy, an EFS version
directory, a downloaded version, any directory an operator names — conditionally on the
damaged object being the one found (its ETag) or still absent, and reads the result back.
A manifest or a format 1 tarball that does not verify is reported, never rewritten.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

import zstandard
from botocore.exceptions import ClientError

from receipt_chroma.exceptions import (
    SnapshotError,
    SnapshotVersionCorruptError,
    SnapshotVersionMissingError,
)
from receipt_chroma.snapshots.files import BLOCK, sha256_file
from receipt_chroma.snapshots.legacy import download_tarball
from receipt_chroma.snapshots.manifest import FileEntry, Manifest
from receipt_chroma.snapshots.s3_errors import precondition_failed
from receipt_chroma.snapshots.stats import SnapshotStats

if TYPE_CHECKING:
    from receipt_chroma.snapshots.s3_store import S3SnapshotStore

MISSING = "missing"
CORRUPT = "corrupt"
CHANGED = "changed"  # its ETag differs from the one recorded when it last verified


class RepairLease(Protocol):
    """The collection lease while repairing (``LockManager``)."""

    def heartbeat(self) -> None: ...

    def ensure_held(self) -> None: ...


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


def audit(
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


# --- local copies ------------------------------------------------------------------------


def find_local_copies(
    damaged: Iterable[DamagedObject], directories: Iterable[Path]
) -> dict[str, Path]:
    """sha256 → a local file whose bytes hash to it, searched under ``directories``
    (recursively; only files of a damaged object's size are hashed)."""
    wanted: dict[int, set[str]] = {}
    for item in damaged:
        wanted.setdefault(item.size, set()).add(item.sha256)
    found: dict[str, Path] = {}
    for directory in directories:
        for path in _regular_files(directory):
            if not wanted:
                return found
            try:
                size = path.stat().st_size
                if size not in wanted:
                    continue
                sha = sha256_file(path)
            except OSError:  # vanished or unreadable: not a source
                continue
            if sha in wanted[size]:
                found[sha] = path
                wanted[size].discard(sha)
                if not wanted[size]:
                    del wanted[size]
    return found


def _regular_files(directory: Path) -> Iterable[Path]:
    for root, _dirs, files in os.walk(directory):
        for name in files:
            path = Path(root) / name
            if path.is_file() and not path.is_symlink():
                yield path


# --- repair ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RepairOutcome:
    sha256: str
    repaired: bool
    detail: str  # where the bytes came from, or why it was not repaired


def named_objects(store: S3SnapshotStore, versions: Iterable[str]) -> set[str]:
    """The sha256 of every object the format 2 ``versions`` name (whose manifests read)."""
    named: set[str] = set()
    for version in versions:
        try:
            found = store.read_manifest(version)
        except SnapshotError:
            continue
        if found is not None:
            named.update(entry.sha256 for entry in found[0].files)
    return named


def repair_objects(
    store: S3SnapshotStore,
    damaged: Sequence[DamagedObject],
    sources: Mapping[str, Path],
    *,
    lease: Callable[[], AbstractContextManager[RepairLease]],
    retained_versions: Callable[[], Sequence[str]],
) -> list[RepairOutcome]:
    """Under the lease, replace each damaged object that a local file can restore.

    ``retained_versions`` is read again under the lease: an object no retained version
    names any more is left alone. Each object is checked again (a concurrent repair may
    have restored it) and written only after the lease is confirmed, conditionally on the
    object still being the one found."""
    outcomes: list[RepairOutcome] = []
    with lease() as held:
        still_named = named_objects(store, retained_versions())
        for item in damaged:
            source = sources.get(item.sha256)
            if item.sha256 not in still_named:
                outcomes.append(
                    RepairOutcome(item.sha256, False, "no retained version names it any more")
                )
            elif source is None:
                outcomes.append(
                    RepairOutcome(item.sha256, False, "no verified local copy holds its sha256")
                )
            else:
                outcomes.append(_repair_one(store, item, source, held))
    return outcomes


@dataclass
class RepairReport:
    audit: Audit
    outcomes: dict[str, RepairOutcome]  # sha256 → what repair did with it
    searched: list[str]  # the directories searched for local copies
    dry_run: bool

    def version_state(self, checked: VersionAudit) -> str:
        """``ok``, ``repaired`` (every damaged object restored) or ``damaged``."""
        if checked.ok:
            return "ok"
        unrepaired = [s for s in checked.damaged if not self._repaired(s)]
        if len(checked.problems) > len(checked.damaged) or unrepaired:
            return "damaged"
        return "repaired"

    def _repaired(self, sha: str) -> bool:
        outcome = self.outcomes.get(sha)
        return outcome is not None and outcome.repaired

    @property
    def ok(self) -> bool:
        return all(self.version_state(v) != "damaged" for v in self.audit.versions)


def repair(
    store: S3SnapshotStore,
    *,
    retained_versions: Callable[[], Sequence[str]],
    lease: Callable[[], AbstractContextManager[RepairLease]],
    directories: Sequence[Path],
    dry_run: bool = False,
) -> RepairReport:
    """Read every object of the retained versions back (outside the lease: objects change
    only under it), look for local copies of the damaged ones, then restore them under
    the lease (``dry_run``: only say what would be restored)."""
    checked = audit(store, retained_versions(), deep=True)
    damaged = list(checked.damaged.values())
    searched = [str(d) for d in directories if d.is_dir()]
    sources = find_local_copies(damaged, [Path(d) for d in searched]) if damaged else {}
    if not damaged:
        outcomes: list[RepairOutcome] = []
    elif dry_run:
        outcomes = [
            RepairOutcome(
                d.sha256,
                False,
                f"would be restored from {sources[d.sha256]}"
                if d.sha256 in sources
                else "no verified local copy holds its sha256",
            )
            for d in damaged
        ]
    else:
        outcomes = repair_objects(
            store, damaged, sources, lease=lease, retained_versions=retained_versions
        )
    return RepairReport(checked, {o.sha256: o for o in outcomes}, searched, dry_run)


def _repair_one(
    store: S3SnapshotStore, item: DamagedObject, source: Path, held: RepairLease
) -> RepairOutcome:
    entry = FileEntry(item.paths[0], item.size, item.sha256)
    key = store.layout.object_key(item.sha256)
    current = _current(store, entry)
    if current == "ok":
        return RepairOutcome(item.sha256, True, "already restored (verified again)")
    with tempfile.TemporaryFile(prefix="snapshot-repair-") as compressed:
        digest = _compress(source, compressed, store.objects.level)
        if digest != item.sha256:  # the file changed since it was found
            return RepairOutcome(item.sha256, False, f"{source} changed since it was hashed")
        size = compressed.tell()
        compressed.seek(0)
        condition = {"IfNoneMatch": "*"} if current is None else {"IfMatch": current}
        held.heartbeat()
        held.ensure_held()  # raises LeaseLostError: nothing is written without the lease
        try:
            store.s3.put_object(
                Bucket=store.bucket,
                Key=key,
                Body=compressed,
                ContentLength=size,
                ContentType="application/zstd",
                **condition,  # type: ignore[arg-type]
            )
        except ClientError as error:
            if not precondition_failed(error):
                raise
            return RepairOutcome(
                item.sha256, False, "the object changed while it was repaired; run repair again"
            )
    if _current(store, entry) != "ok":
        return RepairOutcome(item.sha256, False, "written, but it does not read back intact")
    return RepairOutcome(item.sha256, True, f"restored from {source}")


def _current(store: S3SnapshotStore, entry: FileEntry) -> str | None:
    """ "ok" when the object reads back intact, None when absent, else its ETag."""
    key = store.layout.object_key(entry.sha256)
    with tempfile.TemporaryDirectory(prefix="repair-") as tmp:
        try:
            store.objects.fetch(entry, Path(tmp) / "f", SnapshotStats(), where="repair")
        except SnapshotVersionMissingError:
            return None
        except SnapshotVersionCorruptError:
            head = store.s3.head_object(Bucket=store.bucket, Key=key)
            return str(head["ETag"])
    return "ok"


def _compress(source: Path, out: IO[bytes], level: int) -> str:
    """Write ``source`` zstd-compressed to ``out``; returns the sha256 of what was read."""
    digest = hashlib.sha256()
    with (
        source.open("rb") as raw,
        zstandard.ZstdCompressor(level=level).stream_writer(
            out, size=source.stat().st_size, closefd=False
        ) as writer,
    ):
        for block in iter(lambda: raw.read(BLOCK), b""):
            digest.update(block)
            writer.write(block)
    return digest.hexdigest()
