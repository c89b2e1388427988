"""Snapshot commands on a damaged snapshot (issue 23): ``verify`` and ``rollback`` agree on
a version that does not exist; a corrupt or missing object is flagged by ``status`` and
restored by ``snapshot repair`` under the collection's lease, from a verified copy (the
warm working copy, the EFS tier); a manifest that does not verify is reported and never
rewritten.

The stack is built by ``demo --endpoint-url … --print-env`` (``on_call_stack``)."""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path

import pytest
import zstandard
from on_call_stack import cli, exports, manifest, object_key, retained, s3, shell

from receipt_dynamo import DynamoClient

pytestmark = pytest.mark.integration
__all__ = ["exports", "shell"]  # the fixtures, from the stack's module

# --- snapshots: dimension, exit codes, corruption and repair --------------------------------


def test_verify_and_rollback_agree_on_a_missing_version(
    shell: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    absent = "20200101_000000_000000_deadbeef"
    verify = cli(capsys, "snapshot", "verify", absent, "--collection", "lines")
    rollback = cli(capsys, "snapshot", "rollback", absent, "--collection", "lines", "--yes")
    assert (verify.code, rollback.code) == (2, 2)
    assert f"lines version {absent} does not exist" in verify.error_line
    assert rollback.error_line == verify.error_line


def _damage(bucket: str, collection: str, sha: str, *, remove: bool = False) -> bytes:
    """Corrupt (or remove) an object; returns its original stored bytes."""
    key = object_key(collection, sha)
    original: bytes = s3().get_object(Bucket=bucket, Key=key)["Body"].read()
    if remove:
        s3().delete_object(Bucket=bucket, Key=key)
    else:
        s3().put_object(Bucket=bucket, Key=key, Body=zstandard.compress(b"not the file"))
    return original


def _shared_object(bucket: str, collection: str, versions: list[str]) -> tuple[str, str]:
    """(sha256, path) of a file every version in ``versions`` shares."""
    files = [
        {f["sha256"]: f["path"] for f in manifest(bucket, collection, v)["files"]} for v in versions
    ]
    shared = sorted(set.intersection(*(set(f) for f in files)))
    assert shared, "the demo's versions share their HNSW files"
    return shared[0], files[0][shared[0]]


def _lease_token(shell: dict[str, str], collection: str) -> int:
    lock = DynamoClient(shell["DYNAMODB_TABLE_NAME"]).get_compaction_lock(collection)
    assert lock is not None
    return int(lock.fencing_token)


def test_a_corrupt_object_is_flagged_and_repaired_under_the_lease(
    shell: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    bucket = shell["CHROMADB_BUCKET"]
    versions = retained(shell, "words")
    assert len(versions) == 2
    sha, path = _shared_object(bucket, "words", versions)
    assert cli(capsys, "status", "--deep", "--collection", "words").code == 0  # remembered
    good_copy = tmp_path / "good"
    assert cli(capsys, "snapshot", "download", versions[0], "--to", str(good_copy)).code == 0
    _damage(bucket, "words", sha)

    # A cheap status sees the rewritten object; --deep reads it, per version, and goes on.
    cheap = cli(capsys, "status", "--collection", "words", "--json")
    assert cheap.code == 1
    assert "2 retained version(s) do not verify" in cheap.error_line
    flagged = cheap.json["collections"]["words"]["snapshot"]["versions"]
    assert [v["ok"] for v in flagged] == [False, False]
    assert all(
        f"object {sha} for {path} changed since it last verified" in v["problems"][0]
        for v in flagged
    )
    deep = cli(capsys, "status", "--deep", "--json")
    assert deep.code == 1
    words = deep.json["collections"]["words"]
    assert [(v["version"], v["role"], v["ok"]) for v in words["snapshot"]["versions"]] == [
        (versions[0], "current", False),
        (versions[1], "retained", False),
    ]
    assert "does not match its manifest" in words["snapshot"]["versions"][0]["problems"][0]
    assert words["unindexed"]["source"].startswith("not measured")
    assert deep.json["collections"]["lines"]["snapshot"]["ok"] is True  # the rest reported
    assert cli(capsys, "snapshot", "verify", versions[1]).code == 1  # the rollback target too
    refused = cli(capsys, "snapshot", "rollback", versions[1], "--collection", "words", "--yes")
    assert refused.code == 1  # as verify says, and nothing changed
    assert f"words version {versions[1]} does not verify: object {sha}" in refused.error_line
    assert retained(shell, "words") == versions

    # Nothing local holds the file (status --deep reads a private copy it removes, and
    # whatever else the cache held is gone): repair names every version and why, and
    # writes nothing.
    shutil.rmtree(Path(shell["HOME_DIR"]) / "cache", ignore_errors=True)
    unfixed = cli(capsys, "snapshot", "repair", "--collection", "words", "--json")
    assert unfixed.code == 1
    assert [v["state"] for v in unfixed.json["versions"]] == ["damaged", "damaged"]
    assert unfixed.json["versions"][0]["objects"][0]["detail"] == (
        "no verified local copy holds its sha256"
    )

    # Another holder has the lease: repair waits for it, then gives up, writing nothing.
    dynamo = DynamoClient(shell["DYNAMODB_TABLE_NAME"])
    other = dynamo.acquire_lease("words", owner=str(uuid.uuid4()), duration_seconds=60)
    monkeypatch.setenv("LOCK_WAIT_SECONDS", "1")
    try:
        blocked = cli(
            capsys, "snapshot", "repair", "--collection", "words", "--from", str(good_copy)
        )
    finally:
        dynamo.release_lease("words", owner=other.owner or "")
    assert blocked.code == 1
    assert "lease" in blocked.error_line
    waiting = [line for line in blocked.err.splitlines() if line.startswith("waiting")]
    assert waiting == [
        f"waiting up to 1 s for the words lease: lease on words is held by {other.owner} "
        f"until {other.expires} (token {other.fencing_token})"
    ]
    assert cli(capsys, "snapshot", "verify", versions[0]).code == 1

    before = _lease_token(shell, "words")
    repaired = cli(
        capsys, "snapshot", "repair", "--collection", "words", "--from", str(good_copy), "--json"
    )
    assert repaired.code == 0, repaired.err
    assert [v["state"] for v in repaired.json["versions"]] == ["repaired", "repaired"]
    assert repaired.json["objects_repaired"] == 1
    assert _lease_token(shell, "words") == before + 1  # written under a lease of its own
    for version in versions:
        assert cli(capsys, "snapshot", "verify", version).code == 0
    assert cli(capsys, "status", "--collection", "words").code == 0


def test_a_missing_object_is_restored_from_the_efs_tier(
    shell: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version directory on EFS is never opened in place: its files keep their bytes."""
    bucket = shell["CHROMADB_BUCKET"]
    monkeypatch.setenv("CHROMA_ROOT", str(Path(shell["HOME_DIR"]) / "efs"))
    flushed = cli(capsys, "snapshot", "flush", "--collection", "lines", "--yes", "--json")
    assert flushed.json["published"] is True  # written to S3 and to the EFS tier
    current = flushed.json["version"]
    sqlite = next(
        f for f in manifest(bucket, "lines", current)["files"] if f["path"] == "chroma.sqlite3"
    )
    _damage(bucket, "lines", sqlite["sha256"], remove=True)
    flagged = cli(capsys, "status", "--collection", "lines", "--json")
    assert flagged.code == 1  # a missing object needs no memory: it is listed as absent
    problem = flagged.json["collections"]["lines"]["snapshot"]["versions"][0]["problems"][0]
    assert problem == f"object {sqlite['sha256']} for chroma.sqlite3 is missing"
    shown = cli(capsys, "status", "--collection", "lines")
    assert "present" not in shown.out
    assert "(manifest hashes, objects listed; snapshot repair restores their objects)" in (
        shown.out
    )
    repaired = cli(capsys, "snapshot", "repair", "--collection", "lines", "--json")
    assert repaired.code == 0, repaired.out
    (item,) = repaired.json["versions"][0]["objects"]
    assert item["problem"] == "missing"
    assert item["detail"].startswith(f"restored from {os.environ['CHROMA_ROOT']}/snapshots/lines/")
    assert cli(capsys, "snapshot", "verify", current, "--collection", "lines").code == 0


def test_a_manifest_that_does_not_verify_is_reported_never_rewritten(
    shell: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = shell["CHROMADB_BUCKET"]
    older = retained(shell, "lines")[-1]
    key = f"lines/snapshot/versions/{older}/manifest.json"
    original = s3().get_object(Bucket=bucket, Key=key)["Body"].read()
    s3().put_object(Bucket=bucket, Key=key, Body=original + b" ")
    try:
        reported = cli(capsys, "status", "--collection", "lines")
        assert reported.code == 1
        assert "snapshot repair restores" not in reported.err + reported.out
        remedy = (
            f"{older}: a manifest or version that does not verify cannot be repaired — "
            "snapshot rollback to a version that verifies, or restore its keys from a backup"
        )
        assert remedy in reported.error_line
        assert f"DO NOT VERIFY (manifest hashes, objects listed; {remedy})" in reported.out
        refused = cli(capsys, "snapshot", "rollback", older, "--collection", "lines", "--yes")
        assert refused.code == 1
        assert refused.error_line.endswith(
            "nothing changed (it cannot be repaired: roll back to another version that verifies)"
        )
        result = cli(capsys, "snapshot", "repair", "--collection", "lines")
        assert result.code == 1
        assert f"{older}  retained  damaged" in result.out
        assert "(cannot be repaired: only objects are restored)" in result.out
        stored = s3().get_object(Bucket=bucket, Key=key)["Body"].read()
        assert stored == original + b" "  # untouched
    finally:
        s3().put_object(Bucket=bucket, Key=key, Body=original)
    digest = hashlib.sha256(original).hexdigest()
    assert (
        s3()
        .get_object(Bucket=bucket, Key=f"lines/snapshot/versions/{older}/.manifest_hash")["Body"]
        .read()
        == f"sha256:{digest}".encode()
    )
