"""``receipt-compaction snapshot repair``: restore missing or corrupt objects of the
retained versions from verified local copies, under the collection's lease (contract §6,
"Repair"); a manifest that does not verify is never rewritten."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from receipt_compaction_tools.cli import clients
from receipt_compaction_tools.cli.exceptions import UsageError
from receipt_compaction_tools.cli.local_state import (
    cache_dir,
    forget_verified,
    remember_verified,
)
from receipt_compaction_tools.cli.output import progress, render_mapping
from receipt_compaction_tools.cli.settings import BUCKET, CHROMA_ROOT, WORK_DIR
from receipt_compaction_tools.cli.snapshot_access import lease, store


def repair_sources(args: argparse.Namespace, collection: str) -> list[Path]:
    """Where verified copies of a collection's files may be: the directories given with
    ``--from``, the warm working copy, the EFS versions and the query cache."""
    sources = [Path(p) for p in args.sources or []]
    sources.append(Path(WORK_DIR.value(args)) / collection)
    root = CHROMA_ROOT.value(args)
    if root:
        sources.append(Path(root) / "snapshots" / collection)
    sources.append(cache_dir() / "snapshots" / BUCKET.value(args, required=True) / collection)
    return sources


def _retained_versions(dynamo: Any, collection: str) -> Callable[[], list[str]]:
    """The versions the pointer retains, read again each time it is called."""

    def retained() -> list[str]:
        pointer = dynamo.get_snapshot_pointer(collection)
        if pointer is None:
            return []
        return list(dict.fromkeys([pointer.version, *pointer.history]))

    return retained


def repair_collection(args: argparse.Namespace, collection: str) -> dict[str, Any]:
    from receipt_chroma.snapshots import repair_versions

    dynamo = clients.dynamo(args)
    snapshots = store(args, collection)
    retained = _retained_versions(dynamo, collection)
    for source in args.sources or []:
        if not Path(source).is_dir():
            raise UsageError(f"--from {source}: not a directory")
    versions = retained()
    if not versions:
        raise UsageError(f"{collection} has no published snapshot (no pointer item)")
    with progress() as bars:
        advance = bars(f"reading every {collection} object", None)
        report = repair_versions(
            snapshots,
            retained_versions=retained,
            lease=lease(dynamo, collection),
            directories=repair_sources(args, collection),
            dry_run=args.dry_run,
        )
        advance(1)
    remember_verified(snapshots.bucket, collection, report.audit.verified)
    for outcome in report.outcomes.values():
        if outcome.repaired:
            forget_verified(snapshots.bucket, collection, outcome.sha256)
    return repair_result(collection, args.dry_run, versions[0], report)


def _damaged_objects(checked: Any, report: Any) -> list[dict[str, Any]]:
    """The damaged objects of one checked version, with what repair did to each."""
    return [
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
    ]


def repair_result(collection: str, dry_run: bool, current: str, report: Any) -> dict[str, Any]:
    """The command's result: per retained version its state, problems and objects."""
    return {
        "collection": collection,
        "dry_run": dry_run,
        "versions": [
            {
                "version": checked.version,
                "role": "current" if checked.version == current else "retained",
                "state": report.version_state(checked),
                "problems": checked.problems,
                "objects": _damaged_objects(checked, report),
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
    render_mapping(
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
