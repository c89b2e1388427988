"""Writing a version to the EFS tier (contract §6.4), in one place: the working copy does
it after reading a version from S3 or catching up, the publisher after its commit.

EFS is a cache: a failed write is counted (``EfsFailures``, ``EfsWriteFailures``) and
returned for the caller to report, never raised, and never fails a message.
"""

from __future__ import annotations

from pathlib import Path

from receipt_chroma.snapshots.models import EfsTier
from receipt_chroma.snapshots.stats import SnapshotStats


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
    else at ``version`` (a holder resuming after a stall never points readers back at its
    own, older version). With ``current`` None ``.version`` is left as it is: a version
    about to be adopted is not named before its pointer item exists.

    Returns the error of a failed write (counted in ``stats``), None otherwise.
    """
    if efs is None:
        return None
    try:
        efs.store_version(version, persist_directory, manifest_bytes=manifest_bytes)
        if current is not None:
            efs.set_current_version(
                current if current == version or efs.has_version(current) else version
            )
    except OSError as error:
        stats.add(efs_failures=1, efs_write_failures=1)
        return error
    return None
