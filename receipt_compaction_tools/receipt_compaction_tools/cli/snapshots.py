"""``receipt-compaction snapshot list|inspect|verify|download|rollback|flush|repair``: thin
calls of ``receipt_chroma.snapshots`` (``admin`` and ``repair``), which own the operations
(both snapshot formats). Rollback and flush change the live pointer, so they ask first
unless ``--yes``. Repair only restores objects to the bytes their names promise (contract
§6, "Repair"), under the collection's lease."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import IO, Any

from receipt_chroma import settings as defaults
from receipt_compaction_tools.cli import common
from receipt_compaction_tools.cli.common import (
    BUCKET,
    CHROMA_ROOT,
    DIMENSION,
    TABLE,
    WORK_DIR,
    OperationFailed,
    Output,
    Setting,
    UsageError,
    positive_float,
    positive_int,
)

COLLECTIONS = ("lines", "words")
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
ACTIONS = {
    "list": "the pointer, its history, the pointer file and every version in S3",
    "inspect": "record count and metadata keys of a version",
    "verify": "every hash, then open, count and dimension of a version",
    "download": "read and verify a version into a new or empty directory",
    "rollback": "move the pointer to a version in its history (under the lease)",
    "flush": "publish the current version with every record in the HNSW index",
    "repair": "restore missing or corrupt objects of the retained versions from verified "
    "local copies (under the lease)",
}


def _efs(args: argparse.Namespace, collection: str) -> Any:
    root = CHROMA_ROOT.value(args)
    if not root:
        return None
    from receipt_chroma.compaction.efs_snapshot_manager import EFSSnapshotManager

    return EFSSnapshotManager(Path(root), collection)


def _lease(dynamo: Any, collection: str) -> Any:
    """The collection's lease, waited for as long as the compactor waits
    (``LOCK_WAIT_SECONDS``, 60) when a cycle holds it."""
    from receipt_chroma.compaction.lease import LockManager

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
    from receipt_chroma.snapshots.s3_store import S3SnapshotStore

    return S3SnapshotStore(common.aws(args, "s3"), BUCKET.value(args, required=True), collection)


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


def _list(args: argparse.Namespace, collection: str) -> dict[str, Any]:
    from receipt_chroma.snapshots import admin

    return dict(
        admin.list_versions(
            common.dynamo(args),
            BUCKET.value(args, required=True),
            collection,
            efs=_efs(args, collection),
            s3_client=common.aws(args, "s3"),
        )
    )


def _rollback(args: argparse.Namespace, collection: str) -> dict[str, Any]:
    """Rollback, with the exit status of verify for the same version: one that does not
    exist (or is not retained) is refused before anything changes (2); a retained one
    whose objects are missing does not verify (1)."""
    from receipt_chroma.exceptions import SnapshotVersionMissingError
    from receipt_chroma.snapshots import admin

    dynamo = common.dynamo(args)
    snapshots = store(args, collection)
    pointer = dynamo.get_snapshot_pointer(collection)
    retained = list(pointer.history) if pointer else []
    if args.version not in retained:
        if snapshots.version_format(args.version) is None:
            raise SnapshotVersionMissingError(
                f"{collection} version {args.version} does not exist in s3://"
                f"{snapshots.bucket}/{snapshots.prefix}"
            )
        raise UsageError(
            f"{collection} version {args.version} is not retained (the pointer's history: "
            f"{', '.join(retained) or 'none'}); only a retained version can be rolled back to"
        )
    from receipt_chroma.snapshots.repair import audit

    checked = audit(
        snapshots,
        [args.version],
        verified_etags=common.verified_etags(snapshots.bucket, collection),
    ).versions[0]
    if not checked.ok:  # what verify would say (exit 1), before anything changes
        # Repair restores objects only; a manifest that does not verify stays as it is.
        repairable = len(checked.problems) == len(checked.damaged)
        remedy = (
            "snapshot repair restores its objects"
            if repairable
            else "it cannot be repaired: roll back to another version that verifies"
        )
        raise OperationFailed(
            f"{collection} version {args.version} does not verify: "
            f"{'; '.join(checked.problems)}; nothing changed ({remedy})"
        )
    common.confirm(
        f"move the {collection} pointer from {pointer.version if pointer else None} to "
        f"{args.version}?",
        assume_yes=args.yes,
    )
    try:
        return dict(
            admin.rollback(
                dynamo,
                snapshots.bucket,
                collection,
                args.version,
                lease=_lease(dynamo, collection),
                s3_client=snapshots.s3,
            )
        )
    except SnapshotVersionMissingError as error:  # it exists: its objects are missing
        raise OperationFailed(
            f"{error}; nothing changed (snapshot repair may restore them)"
        ) from None


def _flush(args: argparse.Namespace, collection: str) -> dict[str, Any]:
    from receipt_chroma.compaction.config import snapshot_settings_from_env
    from receipt_chroma.snapshots import admin

    dynamo = common.dynamo(args)
    common.confirm(
        f"publish a fully indexed copy of the current {collection} version?",
        assume_yes=args.yes,
    )
    explicit = args.dimension is not None or os.environ.get(DIMENSION.env or "")
    pointer = dynamo.get_snapshot_pointer(collection)
    dimension = (
        DIMENSION.value(args)
        if explicit or pointer is None
        else version_dimension(args, collection, pointer.version)
    )
    settings = snapshot_settings_from_env(
        dimension=dimension, lock_duration_seconds=LOCK_DURATION.value(argparse.Namespace())
    )
    work_dir = Path(WORK_DIR.value(args)) / "flush"
    work_dir.mkdir(parents=True, exist_ok=True)
    return dict(
        admin.flush(
            dynamo,
            BUCKET.value(args, required=True),
            collection,
            lease=_lease(dynamo, collection),
            work_dir=work_dir,
            settings=settings,
            efs=_efs(args, collection),
            s3_client=common.aws(args, "s3"),
        )
    )


def repair_sources(args: argparse.Namespace, collection: str) -> list[Path]:
    """Where verified copies of a collection's files may be: the directories given with
    ``--from``, the warm working copy, the EFS versions and the query cache."""
    sources = [Path(p) for p in args.sources or []]
    sources.append(Path(WORK_DIR.value(args)) / collection)
    root = CHROMA_ROOT.value(args)
    if root:
        sources.append(Path(root) / "snapshots" / collection)
    sources.append(
        common.cache_dir() / "snapshots" / BUCKET.value(args, required=True) / collection
    )
    return sources


def _repair(args: argparse.Namespace, collection: str) -> dict[str, Any]:
    from receipt_chroma.snapshots.repair import repair

    dynamo = common.dynamo(args)
    snapshots = store(args, collection)

    def retained() -> list[str]:
        pointer = dynamo.get_snapshot_pointer(collection)
        if pointer is None:
            return []
        return list(dict.fromkeys([pointer.version, *pointer.history]))

    for source in args.sources or []:
        if not Path(source).is_dir():
            raise UsageError(f"--from {source}: not a directory")
    versions = retained()
    if not versions:
        raise UsageError(f"{collection} has no published snapshot (no pointer item)")
    with common.progress() as bars:
        advance = bars(f"reading every {collection} object", None)
        report = repair(
            snapshots,
            retained_versions=retained,
            lease=_lease(dynamo, collection),
            directories=repair_sources(args, collection),
            dry_run=args.dry_run,
        )
        advance(1)
    common.remember_verified(snapshots.bucket, collection, report.audit.verified)
    for outcome in report.outcomes.values():
        if outcome.repaired:
            common.forget_verified(snapshots.bucket, collection, outcome.sha256)
    current = versions[0]
    return {
        "collection": collection,
        "dry_run": args.dry_run,
        "versions": [
            {
                "version": checked.version,
                "role": "current" if checked.version == current else "retained",
                "state": report.version_state(checked),
                "problems": checked.problems,
                "objects": [
                    {
                        "sha256": sha,
                        "paths": list(report.audit.damaged[sha].paths),
                        "problem": report.audit.damaged[sha].problem,
                        "found": report.audit.damaged[sha].detail,
                        "repaired": report.outcomes[sha].repaired,
                        "detail": report.outcomes[sha].detail,
                    }
                    for sha in checked.damaged
                    if sha in report.outcomes
                ],
            }
            for checked in report.audit.versions
        ],
        "objects_checked": len(report.audit.verified) + len(report.audit.damaged),
        "objects_damaged": len(report.audit.damaged),
        "objects_repaired": sum(o.repaired for o in report.outcomes.values()),
        "searched": report.searched,
        "ok": report.ok,
    }


def render_repair(result: dict[str, Any], stream: IO[str]) -> None:
    common.render_mapping(
        {
            k: result[k]
            for k in ("collection", "objects_checked", "objects_damaged", "objects_repaired")
        },
        stream,
    )
    stream.write(f"searched          {', '.join(result['searched']) or 'nothing'}\n")
    stream.write("versions:\n")
    for entry in result["versions"]:
        stream.write(f"  {entry['version']}  {entry['role']:<8}  {entry['state']}\n")
        described = {o["sha256"] for o in entry["objects"]}
        for item in entry["objects"]:
            verdict = (
                "" if result["dry_run"] else "repaired: " if item["repaired"] else "NOT repaired: "
            )
            stream.write(
                f"    object {item['sha256']} ({', '.join(item['paths'])}) {item['found']}\n"
                f"      {verdict}{item['detail']}\n"
            )
        for problem in entry["problems"]:
            if not any(sha in problem for sha in described):
                stream.write(f"    {problem} (cannot be repaired: only objects are restored)\n")
    if result["dry_run"]:
        stream.write("dry run: nothing was written\n")


def command_snapshot(args: argparse.Namespace, out: Output) -> None:
    from receipt_chroma.snapshots import admin

    collection = args.collection
    if args.action == "list":
        if collection:
            out.emit(_list(args, collection), render_list)
        else:
            out.emit({c: _list(args, c) for c in COLLECTIONS}, render_lists)
        return
    if args.action == "repair":
        result = _repair(args, collection)
        out.emit(result, render_repair)
        if not result["ok"]:
            raise OperationFailed(
                f"{collection}: some retained versions are still damaged (see output)"
            )
        return
    s3 = common.aws(args, "s3")
    bucket = BUCKET.value(args, required=True)
    if args.action == "inspect":
        result = admin.inspect(bucket, collection, args.version, s3_client=s3)
    elif args.action == "verify":
        dimension = version_dimension(args, collection, args.version)
        result = admin.verify(bucket, collection, args.version, dimension, s3_client=s3)
    elif args.action == "download":
        result = admin.download(bucket, collection, args.version, Path(args.to), s3_client=s3)
    elif args.action == "rollback":
        result = _rollback(args, collection)
    else:
        result = _flush(args, collection)
    out.emit({"collection": collection, **result}, common.render_mapping)


def render_list(result: dict[str, Any], stream: IO[str]) -> None:
    common.render_mapping({k: v for k, v in result.items() if k != "versions"}, stream)
    stream.write("versions in S3 (oldest first):\n")
    for entry in result["versions"]:
        detail = entry.get("error") or f"{entry.get('records')} records, {entry.get('bytes')} bytes"
        retained = "in history" if entry["in_history"] else "not in history"
        stream.write(
            f"  {entry['version']}  format {entry['format']}  {retained}  {detail}  "
            f"modified {entry['modified']}\n"
        )


def render_lists(result: dict[str, Any], stream: IO[str]) -> None:
    for index, listing in enumerate(result.values()):
        if index:
            stream.write("\n")
        render_list(listing, stream)


def register(commands: Any) -> None:
    snapshot = commands.add_parser(
        "snapshot", help="list, inspect, verify, download, roll back, flush, repair"
    )
    actions = snapshot.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, text in ACTIONS.items():
        sub = actions.add_parser(action, help=text, description=text)
        needs_collection = action in ("rollback", "flush", "repair")
        sub.add_argument(
            "--collection",
            choices=COLLECTIONS,
            required=needs_collection,
            default=None if action in ("list", "rollback", "flush", "repair") else "words",
            help="the collection"
            + {"list": " (both)", "rollback": "", "flush": "", "repair": ""}.get(
                action, " (words)"
            ),
        )
        if action not in ("list", "flush", "repair"):
            sub.add_argument("version")
        common.add_settings(sub, common.ENDPOINT, common.REGION, BUCKET)
        if action in ("list", "rollback", "flush", "repair"):
            TABLE.add_to(sub)
        if action in ("list", "flush"):
            CHROMA_ROOT.add_to(sub, note="; its versions are listed / written too")
        if action == "repair":
            CHROMA_ROOT.add_to(sub, note="; its version directories are searched for copies")
            WORK_DIR.add_to(sub, note="; the warm working copy is searched for copies")
            sub.add_argument(
                "--from",
                dest="sources",
                action="append",
                metavar="DIR",
                help="another directory holding copies of the collection's files, e.g. a "
                "downloaded version (repeatable)",
            )
            sub.add_argument(
                "--dry-run", action="store_true", help="say what would be restored; write nothing"
            )
        if action == "verify":
            # Only this flag: EMBEDDING_DIMENSION is the compactor's, for new deltas.
            sub.add_argument(
                "--dim",
                dest="dimension",
                type=_positive,
                help="expected embedding dimension (default: the one the version's manifest "
                "records)",
            )
        if action == "flush":
            DIMENSION.add_to(sub, note="; default: the current version's manifest")
            WORK_DIR.add_to(sub)
        if action == "download":
            sub.add_argument("--to", required=True, help="a new or empty directory")
        if action in ("rollback", "flush"):
            sub.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        # list and inspect only read manifests: bounded as a whole by --timeout.
        sub.set_defaults(
            handler=command_snapshot,
            bounded_as_whole=lambda args: args.action in ("list", "inspect"),
        )


def _positive(text: str) -> int:
    try:
        return positive_int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
