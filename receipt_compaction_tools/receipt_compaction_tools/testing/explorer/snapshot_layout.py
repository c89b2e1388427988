"""The collection's snapshots as the contract lays them out in S3 (§6), read without the
product's code: which version a key belongs to, when a version was minted, the objects a
manifest names, and whether a format 2 version verifies."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, datetime

import zstandard

from receipt_compaction_tools.testing.explorer.messages import COLLECTION
from receipt_compaction_tools.testing.explorer.world import ExplorerWorld

PREFIX = f"{COLLECTION}/snapshot/"
OBJECTS = f"{PREFIX}objects/"


def version_minted(version: str) -> datetime | None:
    """When a §6 ``version_id`` (``YYYYMMDD_HHMMSS_ffffff_<hex>``, UTC) was minted."""
    try:
        return datetime.strptime(version[:22], "%Y%m%d_%H%M%S_%f").replace(tzinfo=UTC)
    except ValueError:
        return None


def version_of(key: str) -> str | None:
    """The version a key belongs to (``versions/<id>/…`` or ``timestamped/<id>/…``)."""
    parts = key[len(PREFIX) :].split("/")
    if len(parts) == 3 and parts[0] in ("versions", "timestamped"):
        return parts[1]
    return None


def newest_parts(keys: dict[str, datetime]) -> dict[str, float]:
    """Each version's newest part: its keys' writes and when its id was minted."""
    newest: dict[str, float] = {}
    for key, modified in keys.items():
        version = version_of(key)
        if version is None:
            continue
        minted = version_minted(version)
        moments = [modified.timestamp(), *([minted.timestamp()] if minted else [])]
        newest[version] = max(newest.get(version, 0.0), *moments)
    return newest


def read_object(world: ExplorerWorld, key: str) -> bytes | None:
    try:
        return bytes(world.s3.get_object(Bucket=world.name, Key=f"{PREFIX}{key}")["Body"].read())
    except world.s3.exceptions.NoSuchKey:
        return None


def manifest_objects(world: ExplorerWorld, version: str) -> set[str]:
    body = read_object(world, f"versions/{version}/manifest.json")
    if body is None:
        return set()
    return {str(entry["sha256"]) for entry in json.loads(body).get("files", [])}


def verify_version(
    world: ExplorerWorld, version: str, verified: dict[str, str | None]
) -> str | None:
    """Why a format 2 version does not verify (§6: its manifest against
    ``.manifest_hash``, every object present and hashing to its name), or None.
    ``verified`` remembers the objects already fetched in this pass."""
    manifest = read_object(world, f"versions/{version}/manifest.json")
    recorded = read_object(world, f"versions/{version}/.manifest_hash")
    if manifest is None or recorded is None:
        return "its manifest.json or .manifest_hash is missing"
    if recorded != f"sha256:{hashlib.sha256(manifest).hexdigest()}".encode():
        return ".manifest_hash does not match manifest.json"
    for entry in json.loads(manifest)["files"]:
        sha = str(entry["sha256"])
        if sha not in verified:
            blob = read_object(world, f"objects/{sha}.zst")
            if blob is None:
                verified[sha] = "is missing"
            else:
                with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob)) as reader:
                    data = reader.read()
                digest = hashlib.sha256(data).hexdigest()
                verified[sha] = None if digest == sha else f"hashes to {digest}"
        if verified[sha] is not None:
            return f"object {sha}.zst of {entry['path']} {verified[sha]}"
    return None
