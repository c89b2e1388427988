"""The base world's first published version, made once per run by a real cycle and then
copied into each schedule's world (S3 objects, table items, the EFS directory): the same
bytes the product published, without paying a cycle per schedule."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from receipt_compaction_tools.testing.explorer.messages import COLLECTION
from receipt_compaction_tools.testing.explorer.models import PublishedOrigin

if TYPE_CHECKING:
    from receipt_compaction_tools.testing.explorer.world import ExplorerWorld


def capture(world: ExplorerWorld, keep_in: Path) -> PublishedOrigin:
    """What ``world`` holds once its origin was published."""
    objects = {}
    paginator = world.s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=world.name, Prefix=f"{COLLECTION}/snapshot/"):
        for entry in page.get("Contents", []):
            key = entry["Key"]
            objects[key] = world.s3.get_object(Bucket=world.name, Key=key)["Body"].read()
    items: list[dict[str, Any]] = []
    scans = world.ddb.get_paginator("scan")
    for scanned in scans.paginate(TableName=world.name, ConsistentRead=True):
        items += scanned["Items"]
    efs = keep_in / "origin-efs"
    shutil.rmtree(efs, ignore_errors=True)
    shutil.copytree(world.efs_root, efs, symlinks=True)
    return PublishedOrigin(objects, items, efs)


def plant(origin: PublishedOrigin, world: ExplorerWorld) -> None:
    for key, body in origin.objects.items():
        world.s3.put_object(Bucket=world.name, Key=key, Body=body)
    world.batch_write([{"PutRequest": {"Item": item}} for item in origin.items])
    shutil.rmtree(world.efs_root, ignore_errors=True)
    shutil.copytree(origin.efs, world.efs_root, symlinks=True)
