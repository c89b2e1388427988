"""Writing a version to EFS (contract §6.4): the one write the working copy (after an S3
read or a catch-up) and the publisher (after its commit) share.

The version directory holds exactly its manifest's files; ``.version`` names the pointer's
current version when EFS holds it — a holder resuming after a stall never points readers
back at its own, older version — and is left alone for a version about to be adopted. EFS
is a cache: a failed write is counted and returned, never raised.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from receipt_chroma.compaction import EFSSnapshotManager
from receipt_chroma.snapshots import DeleteFence, Manifest, SnapshotStats
from receipt_chroma.snapshots.efs_tier import store_on_efs
from receipt_chroma.snapshots.files import directory_entries

OLDER = "20261207_100000_000000_aaaaaaaa"
NEWER = "20261207_110000_000000_bbbbbbbb"


def _closed_copy(root: Path, version: str) -> tuple[Path, bytes]:
    """A persist directory's files (their bytes are all EFS looks at) and its manifest."""
    directory = root / f"copy-{version}"
    (directory / "segment").mkdir(parents=True)
    (directory / "chroma.sqlite3").write_bytes(f"sqlite of {version}".encode())
    (directory / "segment" / "header.bin").write_bytes(b"hnsw header")
    manifest = Manifest(
        collection="words",
        version_id=version,
        base_version=None,
        created_at="2026-12-07T10:00:00.000000+00:00",
        chromadb_version="1.5.9",
        dimension=4,
        record_count=1,
        files=tuple(directory_entries(directory)),
    )
    return directory, manifest.to_bytes()


def _store(
    efs: EFSSnapshotManager | None, root: Path, version: str, current: str | None
) -> tuple[OSError | None, SnapshotStats]:
    directory, manifest = _closed_copy(root, version)
    stats = SnapshotStats()
    return store_on_efs(efs, version, directory, manifest, stats, current=current), stats


def test_a_published_version_is_written_with_its_files_and_named_current(tmp_path: Path) -> None:
    efs = EFSSnapshotManager(tmp_path / "efs", "words")

    error, stats = _store(efs, tmp_path, NEWER, current=NEWER)

    assert error is None
    assert (stats.efs_failures, stats.efs_write_failures) == (0, 0)
    assert efs.current_version() == NEWER
    stored = tmp_path / "efs" / "snapshots" / "words" / NEWER
    assert (stored / "chroma.sqlite3").read_bytes() == f"sqlite of {NEWER}".encode()
    assert (stored / "segment" / "header.bin").read_bytes() == b"hnsw header"
    assert (stored / "manifest.json").read_bytes() == _closed_copy(tmp_path / "again", NEWER)[1]


def test_a_stalled_holder_writes_its_version_but_dot_version_stays_at_the_pointer(
    tmp_path: Path,
) -> None:
    efs = EFSSnapshotManager(tmp_path / "efs", "words")
    _store(efs, tmp_path / "first", NEWER, current=NEWER)

    error, _ = _store(efs, tmp_path / "stalled", OLDER, current=NEWER)

    assert error is None
    assert efs.versions() == [OLDER, NEWER]
    assert efs.current_version() == NEWER


def test_a_holder_that_read_the_pointer_before_a_newer_publish_never_names_its_older_version(
    tmp_path: Path,
) -> None:
    """A working copy read (or caught up to) OLDER, stalled, and resumes after another
    holder published and named NEWER: it stores OLDER and, as it read it, names OLDER."""
    efs = EFSSnapshotManager(tmp_path / "efs", "words")
    _store(efs, tmp_path / "published", NEWER, current=NEWER)

    error, _ = _store(efs, tmp_path / "stalled", OLDER, current=OLDER)

    assert error is None
    assert efs.current_version() == NEWER


def test_cleanup_never_deletes_the_version_dot_version_names(tmp_path: Path) -> None:
    efs = EFSSnapshotManager(tmp_path / "efs", "words")
    _store(efs, tmp_path / "named", OLDER, current=OLDER)
    _store(efs, tmp_path / "other", NEWER, current=None)

    deleted = efs.cleanup({NEWER}, DeleteFence(datetime.now(UTC) + timedelta(minutes=5)))

    assert deleted == []
    assert efs.versions() == [OLDER, NEWER]
    assert (tmp_path / "efs" / "snapshots" / "words" / OLDER / "chroma.sqlite3").is_file()


def test_dot_version_names_the_written_version_when_efs_lacks_the_pointer_version(
    tmp_path: Path,
) -> None:
    efs = EFSSnapshotManager(tmp_path / "efs", "words")

    _store(efs, tmp_path, OLDER, current=NEWER)

    assert efs.versions() == [OLDER]
    assert efs.current_version() == OLDER


def test_a_version_about_to_be_adopted_is_written_but_not_named(tmp_path: Path) -> None:
    efs = EFSSnapshotManager(tmp_path / "efs", "words")

    error, _ = _store(efs, tmp_path, OLDER, current=None)

    assert error is None
    assert efs.versions() == [OLDER]
    assert efs.current_version() is None


def test_a_failed_write_is_counted_and_returned_not_raised(tmp_path: Path) -> None:
    blocked = tmp_path / "efs"
    blocked.write_text("a file where the EFS mount should be")
    efs = EFSSnapshotManager(blocked, "words")

    error, stats = _store(efs, tmp_path, NEWER, current=NEWER)

    assert isinstance(error, OSError)
    assert (stats.efs_failures, stats.efs_write_failures) == (1, 1)
    assert blocked.read_text() == "a file where the EFS mount should be"


def test_without_efs_nothing_is_written_or_counted(tmp_path: Path) -> None:
    error, stats = _store(None, tmp_path, NEWER, current=NEWER)

    assert error is None
    assert (stats.efs_failures, stats.efs_write_failures) == (0, 0)
