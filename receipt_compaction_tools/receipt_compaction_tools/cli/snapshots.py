"""``receipt-compaction snapshot list|inspect|verify|download|rollback|flush``: thin calls of
``receipt_chroma.snapshots.admin``, which owns the operations (both snapshot formats).
Rollback and flush change the live pointer, so they ask first unless ``--yes``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import IO, Any

from receipt_compaction_tools.cli import common
from receipt_compaction_tools.cli.common import (
    BUCKET,
    CHROMA_ROOT,
    DIMENSION,
    TABLE,
    WORK_DIR,
    Output,
)

ACTIONS = {
    "list": "the pointer, its history, the pointer file and every version in S3",
    "inspect": "record count and metadata keys of a version",
    "verify": "every hash, then open, count and dimension of a version",
    "download": "read and verify a version into a new or empty directory",
    "rollback": "move the pointer to a version in its history (under the lease)",
    "flush": "publish the current version with every record in the HNSW index",
}


def _efs(args: argparse.Namespace, collection: str) -> Any:
    root = CHROMA_ROOT.value(args)
    if not root:
        return None
    from receipt_chroma.compaction.efs_snapshot_manager import EFSSnapshotManager

    return EFSSnapshotManager(Path(root), collection)


def _lease(dynamo: Any, collection: str) -> Any:
    from receipt_chroma.compaction.lease import LockManager

    return lambda: LockManager(dynamo, collection)


def command_snapshot(args: argparse.Namespace, out: Output) -> None:
    from receipt_chroma.snapshots import admin

    collection = args.collection
    bucket = BUCKET.value(args, required=True)
    if args.action == "list":
        result = admin.list_versions(
            common.dynamo(args), bucket, collection, efs=_efs(args, collection)
        )
        out.emit(result, render_list)
        return
    if args.action == "inspect":
        result = admin.inspect(bucket, collection, args.version)
    elif args.action == "verify":
        result = admin.verify(bucket, collection, args.version, DIMENSION.value(args))
    elif args.action == "download":
        result = admin.download(bucket, collection, args.version, Path(args.to))
    elif args.action == "rollback":
        dynamo = common.dynamo(args)
        pointer = dynamo.get_snapshot_pointer(collection)
        current = pointer.version if pointer else None
        common.confirm(
            f"move the {collection} pointer from {current} to {args.version}?",
            assume_yes=args.yes,
        )
        result = admin.rollback(
            dynamo, bucket, collection, args.version, lease=_lease(dynamo, collection)
        )
    else:
        from receipt_chroma.snapshots import SnapshotSettings

        dynamo = common.dynamo(args)
        common.confirm(
            f"publish a fully indexed copy of the current {collection} version?",
            assume_yes=args.yes,
        )
        settings = SnapshotSettings.from_env(dimension=DIMENSION.value(args))
        work_dir = Path(WORK_DIR.value(args)) / "flush"
        work_dir.mkdir(parents=True, exist_ok=True)
        result = admin.flush(
            dynamo,
            bucket,
            collection,
            lease=_lease(dynamo, collection),
            work_dir=work_dir,
            settings=settings,
            efs=_efs(args, collection),
        )
    out.emit(result, common.render_mapping)


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


def register(commands: Any) -> None:
    snapshot = commands.add_parser("snapshot", help="list, inspect, verify, download, roll back")
    actions = snapshot.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, text in ACTIONS.items():
        sub = actions.add_parser(action, help=text, description=text)
        sub.add_argument(
            "--collection",
            choices=["lines", "words"],
            required=action in ("rollback", "flush"),
            default=None if action in ("rollback", "flush") else "words",
            help="the collection" + ("" if action in ("rollback", "flush") else " (words)"),
        )
        if action not in ("list", "flush"):
            sub.add_argument("version")
        common.add_settings(sub, common.ENDPOINT, common.REGION, BUCKET)
        if action in ("list", "rollback", "flush"):
            TABLE.add_to(sub)
        if action in ("list", "flush"):
            CHROMA_ROOT.add_to(sub, note="; its versions are listed / written too")
        if action in ("verify", "flush"):
            DIMENSION.add_to(sub)
        if action == "flush":
            WORK_DIR.add_to(sub)
        if action == "download":
            sub.add_argument("--to", required=True, help="a new or empty directory")
        if action in ("rollback", "flush"):
            sub.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        sub.set_defaults(handler=command_snapshot)
