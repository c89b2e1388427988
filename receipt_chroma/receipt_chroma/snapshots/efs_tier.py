"""Writing a version to the EFS tier (contract §6.4), in one place: the working copy does
it after reading a version from S3 or catching up, the publisher after its commit.

EFS is a cache: a failed write is counted (``EfsFailures``, ``EfsWriteFailures``) and
returned for the caller to report, never raised, and never fails a message.
"""

from __future__ import annotations

from pathlib import Path

from receipt_chroma.snapshots.models import EfsTier
from receipt_chroma.snapshots.stats import SnapshotStats
from receipt_chroma.snapshots.versions import version_time


def store_on_efs(
    efs: EfsTier | None,
    version: str,
    persist_directory: Path,
    manifest_bytes: bytes,
    stats: SnapshotStats,
    *,
    current: str | None,
) -> OSError | None:
    """Write format 2 ``version`` from a closed local persist directory, then point
    ``.version`` at ``current`` — the pointer's version as last read — when EFS holds it,
    else at ``version`` — but never back from a newer version EFS holds: a holder resuming
    after a stall read the pointer long ago, and its version and ``current`` may both be
    older than what another holder has published and named since. With ``current`` None
    ``.version`` is left as it is: a version about to be adopted is not named before its
    pointer item exists.

    Returns the error of a failed write (counted in ``stats``), None otherwise.
    """
    if efs is None:
        return None
    try:
        efs.store_version(version, persist_directory, manifest_bytes=manifest_bytes)
        if current is not None:
            target = current if current == version or efs.has_version(current) else version
            if not _names_a_newer_version(efs, target):
                efs.set_current_version(target)
    except OSError as error:
        stats.add(efs_failures=1, efs_write_failures=1)
        return error
    return None


def _names_a_newer_version(efs: EfsTier, target: str) -> bool:
    """Whether ``.version`` already names a version EFS holds, minted after ``target``
    (version ids are sortable by time, §6). Rollbacks set ``.version`` directly."""
    named = efs.current_version()
    if named is None or named == target or not efs.has_version(named):
        return False
    try:
        return version_time(named) > version_time(target)
    except ValueError:  # not a version id: nothing to order by
        return False
