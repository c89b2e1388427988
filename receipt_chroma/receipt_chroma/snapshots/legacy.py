"""Format 1 versions (revision 1 of the contract), read only.

``timestamped/<version>/snapshot.tar.gz`` is a gzip tarball of the persist directory and
``.snapshot_hash`` holds ``sha256:<hex of the tarball>``. The tarball is verified before
anything is extracted, and extracted defensively (no absolute paths, ``..``, links or
special files).
"""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path

from botocore.exceptions import ClientError

from receipt_chroma.archive import extract_tarball
from receipt_chroma.exceptions import (
    SnapshotVersionCorruptError,
    SnapshotVersionMissingError,
    UnsafeArchiveError,
)
from receipt_chroma.snapshots.files import file_hash
from receipt_chroma.snapshots.layout import TARBALL, TARBALL_HASH
from receipt_chroma.snapshots.models import VersionSource
from receipt_chroma.snapshots.s3_errors import not_found
from receipt_chroma.snapshots.stats import SnapshotStats


def download_tarball(
    store: VersionSource, version: str, destination: Path, stats: SnapshotStats
) -> str:
    """Fetch, verify and extract a format 1 version into ``destination``; returns its hash."""
    where = f"{store.collection} version {version}"
    expected = store.read_tarball_hash(version)
    if expected is None:
        raise SnapshotVersionMissingError(
            f"{where} does not exist: no versions/{version}/.manifest_hash (format 2) and no "
            f"timestamped/{version}/{TARBALL_HASH} (format 1) in s3://{store.bucket}/{store.prefix}"
        )
    with tempfile.TemporaryDirectory(prefix="snapshot-down-") as tmp:
        tarball = Path(tmp) / TARBALL
        try:
            store.s3.download_file(store.bucket, store.layout.tarball_key(version), str(tarball))
        except ClientError as error:
            if not_found(error):
                raise SnapshotVersionMissingError(f"{where}: no {TARBALL} in S3") from error
            raise
        stats.add(downloaded=tarball.stat().st_size, files_fetched=1)
        actual = file_hash(tarball)
        if actual != expected:
            raise SnapshotVersionCorruptError(
                f"{where}: tarball hash {actual} does not match {TARBALL_HASH} {expected}"
            )
        try:
            extract_tarball(tarball, destination)
        except (UnsafeArchiveError, tarfile.TarError) as error:
            raise SnapshotVersionCorruptError(f"{where}: {error}") from error
    return expected
