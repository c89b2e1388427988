"""``receipt-compaction snapshot list|inspect|verify|download|rollback|flush|repair``: thin
calls of ``receipt_chroma.snapshots`` (``admin`` and ``repair``), which own the operations
(both snapshot formats). Rollback and flush change the live pointer, so they ask first
unless ``--yes``. Repair only restores objects to the bytes their names promise (contract
§6, "Repair"), under the collection's lease."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import IO, Any

from receipt_compaction_tools.cli import clients
from receipt_compaction_tools.cli.exceptions import OperationFailed, UsageError
from receipt_compaction_tools.cli.local_state import verified_etags
from receipt_compaction_tools.cli.output import Output, confirm, render_mapping
from receipt_compaction_tools.cli.settings import (
    BUCKET,
    CHROMA_ROOT,
    DIMENSION,
    ENDPOINT,
    REGION,
    TABLE,
    WORK_DIR,
    add_settings,
    positive_int,
)
from receipt_compaction_tools.cli.snapshot_access import (
    LOCK_DURATION,
    efs,
    lease,
    store,
    version_dimension,
)
from receipt_compaction_tools.cli.snapshot_repair import render_repair, repair_collection

COLLECTIONS = ("lines", "words")
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


def _list(args: argparse.Namespace, collection: str) -> dict[str, Any]:
    from receipt_chroma.snapshots import admin

    return dict(
        admin.list_versions(
            clients.dynamo(args),
            BUCKET.value(args, required=True),
            collection,
            efs=efs(args, collection),
            s3_client=clients.aws(args, "s3"),
        )
    )


def _refuse_unless_verifies(snapshots: Any, collection: str, version: str) -> None:
    """What verify would say (exit 1) about a retained version, before anything changes."""
    from receipt_chroma.snapshots import audit_versions

    checked = audit_versions(
        snapshots,
        [version],
        verified_etags=verified_etags(snapshots.bucket, collection),
    ).versions[0]
    if not checked.ok:
        # Repair restores objects only; a manifest that does not verify stays as it is.
        repairable = len(checked.problems) == len(checked.damaged)
        remedy = (
            "snapshot repair restores its objects"
            if repairable
            else "it cannot be repaired: roll back to another version that verifies"
        )
        raise OperationFailed(
            f"{collection} version {version} does not verify: "
            f"{'; '.join(checked.problems)}; nothing changed ({remedy})"
        )


def _rollback(args: argparse.Namespace, collection: str) -> dict[str, Any]:
    """Rollback, with the exit status of verify for the same version: one that does not
    exist (or is not retained) is refused before anything changes (2); a retained one
    whose objects are missing does not verify (1)."""
    from receipt_chroma.exceptions import SnapshotVersionMissingError
    from receipt_chroma.snapshots import admin

    dynamo = clients.dynamo(args)
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
    _refuse_unless_verifies(snapshots, collection, args.version)
    confirm(
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
                lease=lease(dynamo, collection),
                s3_client=snapshots.s3,
            )
        )
    except SnapshotVersionMissingError as error:  # it exists: its objects are missing
        raise OperationFailed(
            f"{error}; nothing changed (snapshot repair may restore them)"
        ) from None


def _flush(args: argparse.Namespace, collection: str) -> dict[str, Any]:
    from receipt_chroma.compaction import snapshot_settings_from_env
    from receipt_chroma.snapshots import admin

    dynamo = clients.dynamo(args)
    confirm(
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
            lease=lease(dynamo, collection),
            work_dir=work_dir,
            settings=settings,
            efs=efs(args, collection),
            s3_client=clients.aws(args, "s3"),
        )
    )


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
        result = repair_collection(args, collection)
        out.emit(result, render_repair)
        if not result["ok"]:
            raise OperationFailed(
                f"{collection}: some retained versions are still damaged (see output)"
            )
        return
    s3 = clients.aws(args, "s3")
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
    out.emit({"collection": collection, **result}, render_mapping)


def render_list(result: dict[str, Any], stream: IO[str]) -> None:
    render_mapping({k: v for k, v in result.items() if k != "versions"}, stream)
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
        add_settings(sub, ENDPOINT, REGION, BUCKET)
        if action in ("list", "rollback", "flush", "repair"):
            TABLE.add_to(sub)
        _add_action_arguments(sub, action)
        # list and inspect only read manifests: bounded as a whole by --timeout.
        sub.set_defaults(
            handler=command_snapshot,
            bounded_as_whole=lambda args: args.action in ("list", "inspect"),
        )


def _add_action_arguments(sub: argparse.ArgumentParser, action: str) -> None:
    """The settings and flags only some actions take."""
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
            help="expected embedding dimension (default: the one the version's manifest records)",
        )
    if action == "flush":
        DIMENSION.add_to(sub, note="; default: the current version's manifest")
        WORK_DIR.add_to(sub)
    if action == "download":
        sub.add_argument("--to", required=True, help="a new or empty directory")
    if action in ("rollback", "flush"):
        sub.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def _positive(text: str) -> int:
    try:
        return positive_int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
