"""How the snapshot commands reach a collection's snapshots: the bucket through the
command's bounded client, the EFS tier when one is configured, and the collection's lease
held as the deployed compactor holds it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from receipt_compaction_tools.cli import clients
from receipt_compaction_tools.cli.exceptions import UsageError
from receipt_compaction_tools.cli.settings import BUCKET, CHROMA_ROOT, Setting, positive_float
from receipt_dynamo_stream import compactor_defaults as defaults

LOCK_WAIT = Setting(
    "lock_wait",
    "--lock-wait",
    "LOCK_WAIT_SECONDS",
    "seconds to wait for the collection's lease",
    default=str(defaults.LOCK_WAIT_SECONDS),
    parse=positive_float,
)
# The compactor's lease, as it is deployed: the CLI holds the same lease, and its orphan
# horizon (2 x LOCK_DURATION_SECONDS) and deadline are the compactor's (contract §6, §7).
LOCK_DURATION = Setting(
    "lock_duration",
    "--lock-duration",
    "LOCK_DURATION_SECONDS",
    "the compactor's lease duration in seconds",
    default=str(defaults.LOCK_DURATION_SECONDS),
    parse=positive_float,
)
SAFETY_MARGIN = Setting(
    "lease_safety_margin",
    "--lease-safety-margin",
    "LEASE_SAFETY_MARGIN_SECONDS",
    "seconds before the lease's expiry its holder stops writing and deleting",
    default=str(defaults.LEASE_SAFETY_MARGIN_SECONDS),
    parse=positive_float,
)


def efs(args: argparse.Namespace, collection: str) -> Any:
    root = CHROMA_ROOT.value(args)
    if not root:
        return None
    from receipt_chroma.compaction import EFSSnapshotManager

    return EFSSnapshotManager(Path(root), collection)


def lease(dynamo: Any, collection: str) -> Any:
    """The collection's lease, waited for as long as the compactor waits
    (``LOCK_WAIT_SECONDS``, 60) when a cycle holds it."""
    from receipt_chroma.compaction import LockManager

    environment = argparse.Namespace()
    wait = LOCK_WAIT.value(environment)
    duration = LOCK_DURATION.value(environment)
    margin = SAFETY_MARGIN.value(environment)

    def tell(held: Exception) -> None:
        print(f"waiting up to {wait:g} s for the {collection} lease: {held}", file=sys.stderr)

    return lambda: LockManager(
        dynamo,
        collection,
        duration_seconds=duration,
        safety_margin_seconds=margin,
        wait_seconds=wait,
        on_wait=tell,
    )


def store(args: argparse.Namespace, collection: str) -> Any:
    """The collection's snapshots in the bucket, through the command's bounded client."""
    from receipt_chroma.snapshots import S3SnapshotStore

    return S3SnapshotStore(clients.aws(args, "s3"), BUCKET.value(args, required=True), collection)


def version_dimension(args: argparse.Namespace, collection: str, version: str) -> int:
    """``--dim`` when given, else the dimension the version's manifest records; a format 1
    version records none, so it needs ``--dim``."""
    from receipt_chroma.exceptions import SnapshotVersionMissingError

    if args.dimension is not None:
        return int(args.dimension)
    snapshots = store(args, collection)
    found = snapshots.read_manifest(version)
    if found is not None:
        return int(found[0].dimension)
    if snapshots.version_format(version) is None:
        raise SnapshotVersionMissingError(
            f"{collection} version {version} does not exist in s3://{snapshots.bucket}/"
            f"{snapshots.prefix}"
        )
    raise UsageError(
        f"{collection} version {version} is format 1, which records no dimension: pass --dim"
    )
