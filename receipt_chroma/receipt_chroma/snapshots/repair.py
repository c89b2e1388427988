"""Damaged snapshot objects: finding them, and repairing them (contract §6, "Repair").

An object ``objects/<sha256>.zst`` is *damaged* when it is missing or when its bytes do
not decompress to a file whose sha256 is its name; every version naming it then fails to
read. ``receipt_chroma.snapshots.audit`` finds them.

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
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

import zstandard
from botocore.exceptions import ClientError

from receipt_chroma.exceptions import (
    SnapshotError,
    SnapshotVersionCorruptError,
    SnapshotVersionMissingError,
)
from receipt_chroma.snapshots.audit import Audit, DamagedObject, VersionAudit, audit_versions
from receipt_chroma.snapshots.files import BLOCK, sha256_file
from receipt_chroma.snapshots.manifest import FileEntry
from receipt_chroma.snapshots.s3_errors import precondition_failed
from receipt_chroma.snapshots.stats import SnapshotStats

if TYPE_CHECKING:
    from receipt_chroma.snapshots.s3_store import S3SnapshotStore


class RepairLease(Protocol):
    """The collection lease while repairing (``LockManager``)."""

    def heartbeat(self) -> None: ...

    def ensure_held(self) -> None: ...


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


def repair_versions(
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
    checked = audit_versions(store, retained_versions(), deep=True)
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
