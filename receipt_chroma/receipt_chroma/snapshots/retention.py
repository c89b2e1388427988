"""Retention by reachability (contract §6.5), run only by the lease holder (§6 rev 3):
``retain`` confirms the lease and re-reads the pointer item, ``apply_retention`` deletes.

``keep`` is the pointer item's ``version`` + ``history`` as re-read by the caller right
after confirming its lease; every delete call goes through the caller's ``DeleteFence``,
so it ends before the holder's deadline (what the fence refuses is left for the next
holder, and reported). S3 keeps exactly the retained versions and the objects their
manifests name. A version that has left the history (``dropped``) is deleted at once: it
can never be named again (rollback only targets retained versions). Anything else nobody
names — manifests and tarballs of uncommitted publishes, objects no remaining manifest
names — is an orphan, deleted only once older than twice the lease duration. If a
retained manifest cannot be read, nothing is deleted at all — no version, no object —
and the reason is logged (``RetentionReport.objects_kept_because``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from receipt_chroma.exceptions import SnapshotError
from receipt_chroma.snapshots.fence import DeleteFence
from receipt_chroma.snapshots.s3_store import S3SnapshotStore, VersionKeys
from receipt_chroma.snapshots.service import CollectionSnapshots, Lease
from receipt_chroma.snapshots.stats import SnapshotStats
from receipt_chroma.snapshots.versions import is_version_id, version_time

_LOGGER = logging.getLogger(__name__)


@dataclass
class RetentionReport:
    deleted_versions: list[str] = field(default_factory=list)
    deleted_objects: list[str] = field(default_factory=list)
    objects_kept_because: str | None = None  # why nothing (or no object) was deleted
    stopped_at_deadline: str | None = None  # the fence refused a call: the rest is left


def _age(version: str, keys: VersionKeys, now: datetime) -> timedelta:
    minted = version_time(version) if is_version_id(version) else keys.modified
    return now - max(minted, keys.modified)


def _retained_manifests_unreadable(
    store: S3SnapshotStore, versions: dict[str, VersionKeys], keep: set[str]
) -> str | None:
    """Why a retained format 2 version's manifest cannot be read, or None if all can."""
    for version, keys in sorted(versions.items()):
        if version not in keep or keys.format != 2:
            continue
        try:
            found = store.read_manifest(version)
        except SnapshotError as error:
            return f"manifest of retained {version}: {error}"
        if found is None:
            return f"retained {version} has no .manifest_hash"
    return None


def apply_retention(
    store: S3SnapshotStore,
    *,
    keep: set[str],
    orphan_age: timedelta,
    fence: DeleteFence,
    dropped: set[str] | None = None,
    now: datetime | None = None,
) -> RetentionReport:
    """Delete what ``keep`` (the re-read pointer's history) does not reach; see the
    module doc.

    Every retained manifest is read first: if one cannot be read, nothing at all is
    deleted (neither versions nor objects) and the reason is logged and reported.
    """
    moment = now or datetime.now(UTC)
    report = RetentionReport()
    listing = store.list_all()
    unreadable = _retained_manifests_unreadable(store, listing.versions, keep)
    if unreadable is not None:
        report.objects_kept_because = unreadable
        _LOGGER.error(
            "retention deleted nothing: a retained manifest cannot be read",
            extra={"collection": store.collection, "reason": unreadable},
        )
        return report
    remaining = _delete_versions(
        store,
        listing.versions,
        keep=keep,
        dropped=dropped or set(),
        moment=moment,
        orphan_age=orphan_age,
        fence=fence,
        report=report,
    )
    if remaining is None:
        return report
    named = _named_objects(store, remaining, keep, report)
    if named is None:
        return report
    orphans = sorted(
        sha
        for sha, modified in listing.objects.items()
        if sha not in named and moment - modified >= orphan_age
    )
    left = store.delete_keys((store.layout.object_key(sha) for sha in orphans), fence)
    if left:
        report.stopped_at_deadline = fence.refused
    report.deleted_objects = orphans[: len(orphans) - left]
    return report


def _delete_versions(
    store: S3SnapshotStore,
    versions: dict[str, VersionKeys],
    *,
    keep: set[str],
    dropped: set[str],
    moment: datetime,
    orphan_age: timedelta,
    fence: DeleteFence,
    report: RetentionReport,
) -> dict[str, VersionKeys] | None:
    """Delete the versions nobody keeps (dropped ones at once, orphans once old enough);
    the versions left, or None when the fence stopped the deletes."""
    remaining: dict[str, VersionKeys] = {}
    for version, keys in sorted(versions.items()):
        if version not in keep and (
            version in dropped or _age(version, keys, moment) >= orphan_age
        ):
            store.forget(version)
            if store.delete_keys(keys.keys, fence):
                report.stopped_at_deadline = fence.refused
                return None
            report.deleted_versions.append(version)
        else:
            remaining[version] = keys
    return remaining


def _named_objects(
    store: S3SnapshotStore,
    remaining: dict[str, VersionKeys],
    keep: set[str],
    report: RetentionReport,
) -> set[str] | None:
    """The objects the remaining manifests name; None (delete no object) when a retained
    manifest changed or vanished since it was read."""
    named: set[str] = set()
    for version, keys in remaining.items():
        if keys.format != 2:
            continue
        try:
            found = store.read_manifest(version)
        except SnapshotError:
            if version in keep:  # read a moment ago: it changed since; delete no object
                report.objects_kept_because = f"manifest of retained {version} changed"
                return None
            continue  # an orphan's broken manifest names nothing worth keeping
        if found is None and version in keep:
            report.objects_kept_because = f"retained {version} has no .manifest_hash"
            return None
        if found is not None:
            named.update(entry.sha256 for entry in found[0].files)
    return named


@dataclass(frozen=True)
class Retention:
    """What RETAIN did not do: ``skipped`` says why it stopped before its end (counted as
    ``RetentionSkipped``); ``errors`` are the errors it reports, that reason among them."""

    errors: tuple[str, ...] = ()
    skipped: str | None = None


def retain(
    snapshots: CollectionSnapshots,
    lease: Lease,
    stats: SnapshotStats,
    *,
    dropped: set[str] | None = None,
) -> Retention:
    """Step 6's retention under the confirmed lease (§6 rev 3, "Who may delete").

    Confirm the lease (a heartbeat that must succeed) and re-read the pointer item: the
    retained set is that item's ``version`` + ``history``, never a history carried from
    earlier in the cycle. A holder whose lease is lost or unconfirmable, or whose deadline
    comes before a delete could end, stops deleting (``RetentionSkipped``); the next holder
    does it. S3 keeps the retained versions and what they name; EFS keeps the pointer's
    version and its predecessor.
    """
    try:
        fence = DeleteFence(lease.confirm())
        pointer = snapshots.pointer()
    except Exception as error:  # lost, unconfirmable, or the item could not be read
        return _skipped(snapshots, stats, f"{type(error).__name__}: {error}")
    if pointer is None:
        return _skipped(snapshots, stats, "no pointer item to retain from")
    errors: list[str] = []
    try:
        report = apply_retention(
            snapshots.store,
            keep={pointer.version, *pointer.history},
            dropped=dropped,
            orphan_age=snapshots.settings.orphan_age,
            fence=fence,
        )
        if report.objects_kept_because:
            errors.append(f"retention: {report.objects_kept_because}")
        if report.stopped_at_deadline:
            return _skipped(snapshots, stats, report.stopped_at_deadline, errors)
        if snapshots.efs is not None:
            keep = {pointer.version}
            if pointer.previous_version:
                keep.add(pointer.previous_version)
            snapshots.efs.cleanup(keep, fence)
            if fence.refused:
                return _skipped(snapshots, stats, fence.refused, errors)
    except Exception as error:
        errors.append(f"retention: {type(error).__name__}: {error}")
    return Retention(errors=tuple(errors))


def _skipped(
    snapshots: CollectionSnapshots, stats: SnapshotStats, why: str, errors: Sequence[str] = ()
) -> Retention:
    stats.add(retention_skipped=1)
    _LOGGER.warning("retention skipped", extra={"collection": snapshots.collection, "reason": why})
    return Retention(errors=(*errors, f"retention skipped: {why}"), skipped=why)
