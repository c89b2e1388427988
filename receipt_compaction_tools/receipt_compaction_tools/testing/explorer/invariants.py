"""The invariants of issue 21, checked from the contract alone (S3 layout and hashes of §6,
records of §4, the convergence rule of §5.4 via the independent ``spec_oracle``):

- I1 the pointer's ``version`` and every ``history`` version verify (manifest hash, every
  object present, each object's sha256);
- I2 the collection equals the oracle's expectation (0 missing, 0 extra, 0 stale);
- I3 every acknowledged message's effect is in what was published when it was
  acknowledged;
- I4 no two publishes share a base (the pointer's writes form one chain);
- I5 ``latest-pointer.txt`` never goes backwards, and a reader following EFS ``.version``
  never opens a missing or partial directory;
- I6 after settling, S3 holds only the retained versions, their objects and orphans younger
  than twice the lease.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import zstandard

from receipt_compaction_tools.testing import spec_oracle as oracle
from receipt_compaction_tools.testing.explorer.messages import COLLECTION, QueuedMessage
from receipt_compaction_tools.testing.explorer.models import Sink, Violation
from receipt_compaction_tools.testing.explorer.observers import POINTER_FILE, History, efs_problem
from receipt_compaction_tools.testing.explorer.scenario import DIMENSION, Scenario
from receipt_compaction_tools.testing.explorer.world import ExplorerWorld
from receipt_compaction_tools.testing.published import (
    PublishedRecord,
    download_version,
    read_collection,
    read_server_collection,
)

PREFIX = f"{COLLECTION}/snapshot/"
OBJECTS = f"{PREFIX}objects/"
# S3 LastModified and version ids are compared with the run's own clock; the margin keeps
# an orphan written within it of the horizon out of the check (it may go either way).
HORIZON_SLACK_SECONDS = 0.25
Records = dict[str, PublishedRecord]
ABSENT = "<absent>"


@dataclass(frozen=True)
class Pointer:
    version: str
    history: tuple[str, ...]


def version_minted(version: str) -> datetime | None:
    """When a §6 ``version_id`` (``YYYYMMDD_HHMMSS_ffffff_<hex>``, UTC) was minted."""
    try:
        return datetime.strptime(version[:22], "%Y%m%d_%H%M%S_%f").replace(tzinfo=UTC)
    except ValueError:
        return None


class Checks:
    def __init__(self, world: ExplorerWorld, scenario: Scenario, history: History) -> None:
        self.world = world
        self.scenario = scenario
        self.history = history
        self.violations: list[Violation] = []
        self._versions: dict[str, Records | str] = {}

    def fail(self, invariant: str, detail: str) -> None:
        self.violations.append(Violation(invariant, detail))

    # --- reading what is published --------------------------------------------------------

    def pointer(self) -> Pointer | None:
        item = self.world.ddb.get_item(
            TableName=self.world.name,
            Key={"PK": {"S": f"SNAPSHOT#{COLLECTION}"}, "SK": {"S": "POINTER"}},
            ConsistentRead=True,
        ).get("Item")
        if item is None:
            return None
        history = tuple(str(v["S"]) for v in item.get("history", {}).get("L", []))
        return Pointer(str(item["version"]["S"]), history)

    def version_records(self, version: str) -> Records | str:
        """The records of a verified version, or why it does not verify."""
        if version not in self._versions:
            directory = Path(tempfile.mkdtemp(dir=self.world.root, prefix="read-"))
            try:
                download_version(self.world.s3, self.world.name, COLLECTION, version, directory)
                self._versions[version] = read_collection(directory, COLLECTION)
            except Exception as error:  # any way a version fails to read is the finding
                self._versions[version] = f"{type(error).__name__}: {error}"
            finally:
                shutil.rmtree(directory, ignore_errors=True)
        return self._versions[version]

    def published(self) -> tuple[str, Records | str]:
        """(what, records or why they cannot be read) of what readers get now."""
        if self.world.sink is Sink.SERVER:
            chroma = self.world.services.chroma
            assert chroma is not None, "the server sink needs the run's Chroma server"
            assert self.world.database is not None, "the world has no database"
            records = read_server_collection(
                COLLECTION, host=chroma.host, port=chroma.port, database=self.world.database
            )
            return "the server's collection", records
        pointer = self.pointer()
        if pointer is None:
            return "nothing published", {}
        return f"version {pointer.version}", self.version_records(pointer.version)

    # --- I3 -------------------------------------------------------------------------------

    def acknowledged(
        self, actor: str, messages: Sequence[QueuedMessage], model: oracle.TableModel
    ) -> None:
        if not messages:
            return
        what, records = self.published()
        if isinstance(records, str):
            ids = ", ".join(m.message_id for m in messages)
            self.fail("I3", f"{actor} acknowledged {ids}; {what} does not read: {records}")
            return
        for message in messages:
            for problem in effect_problems(message, records, model, self.scenario):
                self.fail("I3", f"{actor} acknowledged {message.message_id}; {what}: {problem}")

    # --- after settling ---------------------------------------------------------------------

    def listing(self) -> dict[str, datetime]:
        keys: dict[str, datetime] = {}
        paginator = self.world.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.world.name, Prefix=PREFIX):
            for entry in page.get("Contents", []):
                keys[entry["Key"]] = entry["LastModified"]
        return keys

    def settled(self, model: oracle.TableModel, *, converged: bool) -> None:
        """I2 (both sinks, once every message was acknowledged); I1, I4 and I5 (snapshot
        sink, whether or not the system converged)."""
        if converged:
            what, records = self.published()
            if isinstance(records, str):
                self.fail("I2", f"{what} does not read: {records}")
            else:
                for problem in collection_problems(records, model, self.scenario):
                    self.fail("I2", f"{what}: {problem}")
        if self.world.sink is Sink.SNAPSHOT:
            self._versions.clear()  # read everything again, as it is now
            self._check_versions()
            self._check_commits()
            self._check_derived_caches()

    def _check_versions(self) -> None:
        pointer = self.pointer()
        if pointer is None:
            return
        verified: dict[str, str | None] = {}  # sha256 → why its object fails, if it does
        for version in dict.fromkeys((pointer.version, *pointer.history)):
            problem = verify_version(self.world, version, verified)
            if problem is not None:
                role = "the pointer's version" if version == pointer.version else "in history"
                self.fail("I1", f"{version} ({role}) does not verify: {problem}")

    def _check_commits(self) -> None:
        commits = self.history.commits
        bases = [c.previous_version for c in commits if not c.adopted]
        for base in sorted({b or "" for b in bases}):
            count = bases.count(base or None)
            if count > 1:
                self.fail("I4", f"{count} publishes on the base {base or '(no pointer)'}")
        for earlier, later in itertools.pairwise(commits):
            if later.previous_version != earlier.version or later.adopted:
                self.fail(
                    "I4",
                    f"{later.actor} wrote {later.version} on {later.previous_version}, "
                    f"but the pointer was at {earlier.version}",
                )

    def _check_derived_caches(self) -> None:
        order = {c.version: i for i, c in reversed(list(enumerate(self.history.commits)))}
        newest = -1
        for actor, written in self.history.pointer_files:
            if written not in order:
                self.fail("I5", f"{actor} wrote latest-pointer.txt = {written!r}, never committed")
                continue
            if order[written] < newest:
                self.fail("I5", f"{actor} moved latest-pointer.txt back to {written}")
            newest = max(newest, order[written])
        pointer = self.pointer()
        if pointer is not None:
            try:
                body = self.world.s3.get_object(Bucket=self.world.name, Key=POINTER_FILE)[
                    "Body"
                ].read()
            except self.world.s3.exceptions.NoSuchKey:
                body = b""
            if body != pointer.version.encode("ascii"):
                self.fail(
                    "I5",
                    f"after settling latest-pointer.txt is {body!r}, the item {pointer.version}",
                )
        problem = efs_problem(self.world.efs_root, hashed=True)
        if problem is not None:
            self.fail("I5", f"after settling: {problem}")

    def retention(self, before: dict[str, datetime], final_started: float) -> bool:
        """I6, once the last publish ran its retention. An orphan is a version the pointer
        does not retain (with the objects only it names), or an object no manifest names;
        it is old once its newest part is older than the horizon. Returns whether that
        retention had something old to delete (otherwise I6 held without deleting)."""
        pointer = self.pointer()
        if pointer is None:
            return False
        retained = set(pointer.history) | {pointer.version}
        horizon = final_started - self.world.timing.orphan_age_seconds - HORIZON_SLACK_SECONDS
        listing = self.listing()
        young = {v for v, at in _versions(listing).items() if v not in retained and at > horizon}
        named: set[str] = set()
        for version in retained | young:
            named |= manifest_objects(self.world, version)

        def orphaned(keys: dict[str, datetime]) -> list[str]:
            versions = _versions(keys)
            found = []
            for key, modified in sorted(keys.items()):
                version = _version_of(key)
                if version is not None:
                    old = version not in retained and versions[version] <= horizon
                else:
                    sha = key[len(OBJECTS) :].removesuffix(".zst")
                    old = key.startswith(OBJECTS) and sha not in named
                    old = old and modified.timestamp() <= horizon
                if old:
                    found.append(key)
            return found

        for key in orphaned(listing):
            age = final_started - listing[key].timestamp()
            self.fail(
                "I6",
                f"{key} is neither retained nor young (written {age:.1f} s before the "
                "last publish)",
            )
        return bool(orphaned(before))


def _version_of(key: str) -> str | None:
    """The version a key belongs to (``versions/<id>/…`` or ``timestamped/<id>/…``)."""
    parts = key[len(PREFIX) :].split("/")
    if len(parts) == 3 and parts[0] in ("versions", "timestamped"):
        return parts[1]
    return None


def _versions(keys: dict[str, datetime]) -> dict[str, float]:
    """Each version's newest part: its keys' writes and when its id was minted."""
    newest: dict[str, float] = {}
    for key, modified in keys.items():
        version = _version_of(key)
        if version is None:
            continue
        minted = version_minted(version)
        moments = [modified.timestamp(), *([minted.timestamp()] if minted else [])]
        newest[version] = max(newest.get(version, 0.0), *moments)
    return newest


def _get(world: ExplorerWorld, key: str) -> bytes | None:
    try:
        return bytes(world.s3.get_object(Bucket=world.name, Key=f"{PREFIX}{key}")["Body"].read())
    except world.s3.exceptions.NoSuchKey:
        return None


def manifest_objects(world: ExplorerWorld, version: str) -> set[str]:
    body = _get(world, f"versions/{version}/manifest.json")
    if body is None:
        return set()
    return {str(entry["sha256"]) for entry in json.loads(body).get("files", [])}


def verify_version(
    world: ExplorerWorld, version: str, verified: dict[str, str | None]
) -> str | None:
    """Why a format 2 version does not verify (§6: its manifest against
    ``.manifest_hash``, every object present and hashing to its name), or None.
    ``verified`` remembers the objects already fetched in this pass."""
    manifest = _get(world, f"versions/{version}/manifest.json")
    recorded = _get(world, f"versions/{version}/.manifest_hash")
    if manifest is None or recorded is None:
        return "its manifest.json or .manifest_hash is missing"
    if recorded != f"sha256:{hashlib.sha256(manifest).hexdigest()}".encode():
        return ".manifest_hash does not match manifest.json"
    for entry in json.loads(manifest)["files"]:
        sha = str(entry["sha256"])
        if sha not in verified:
            blob = _get(world, f"objects/{sha}.zst")
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


# --- what a message must have done (I3), and the whole collection (I2) ---------------------


def _receipt_of(record_id: str) -> tuple[str, int]:
    _, image_id, receipt_id, _, _ = oracle.parse_record_id(record_id)
    return image_id, receipt_id


def _holder_problem(
    record_id: str, record: PublishedRecord, run: oracle.RunRow, scenario: Scenario
) -> str | None:
    """The record must hold the vector of ``run`` or of a newer run holding it (§5.4)."""
    holder_id = record.metadata.get("embedding_run_id")
    holder = scenario.runs.get(str(holder_id))
    if holder is None:
        return f"{record_id} names run {holder_id!r}, which made no delta here"
    image_id, receipt_id, holder_run = holder
    ids = oracle.run_record_ids(image_id, receipt_id, holder_run, COLLECTION)
    if (image_id, receipt_id) != _receipt_of(record_id) or record_id not in ids:
        return f"{record_id} names run {holder_id}, whose delta does not hold it"
    if holder_run.order < run.order:
        return f"{record_id} still holds older run {holder_id}, not {run.run_id}"
    expected = oracle.embedding(holder_run.run_id, record_id, DIMENSION)
    if max(abs(a - b) for a, b in zip(expected, record.embedding, strict=True)) > 1e-6:
        return f"{record_id} names run {holder_id} but holds another vector"
    return None


def effect_problems(
    message: QueuedMessage, records: Records, model: oracle.TableModel, scenario: Scenario
) -> list[str]:
    data: dict[str, Any] = message.entity_data
    if message.entity_type == "COMPACTION_RUN":
        image_id, receipt_id, run = scenario.runs[str(data["run_id"])]
        receipt = model.receipts.get((image_id, receipt_id))
        problems = []
        for line_id, word_id in sorted(run.word_ids):
            if receipt is None or not receipt.exists or (line_id, word_id) not in receipt.words:
                continue
            record_id = oracle.word_record_id(image_id, receipt_id, line_id, word_id)
            if record_id not in records:
                problems.append(f"{record_id} of run {run.run_id} is missing")
                continue
            problem = _holder_problem(record_id, records[record_id], run, scenario)
            if problem is not None:
                problems.append(problem)
        return problems
    key = (str(data["image_id"]), int(data["receipt_id"]))
    receipt = model.receipts[key]
    if message.entity_type == "RECEIPT_METADATA":
        want = oracle.merchant_keys(receipt.metadata)
        return [
            f"{record_id}: merchant keys {got} != {want}"
            for record_id, record in sorted(records.items())
            if _receipt_of(record_id) == key
            for got in [{k: v for k, v in record.metadata.items() if k in oracle.MERCHANT_KEYS}]
            if got != want
        ]
    word = (int(data["line_id"]), int(data["word_id"]))
    record_id = oracle.word_record_id(*key, *word)
    if message.entity_type == "RECEIPT_WORD_LABEL":
        if record_id not in records:
            return []
        want = oracle.label_keys(
            row for (line, word_no, _), row in receipt.labels.items() if (line, word_no) == word
        )
        metadata = records[record_id].metadata
        got = {k: v for k, v in metadata.items() if k in oracle.LABEL_KEYS}
        return [] if got == want else [f"{record_id}: label keys {got} != {want}"]
    if message.entity_type == "RECEIPT_WORD" and word not in receipt.words:
        return [f"{record_id} was removed but is still there"] if record_id in records else []
    return []


def collection_problems(
    records: Records, model: oracle.TableModel, scenario: Scenario
) -> list[str]:
    expected = oracle.expected_collection(model, COLLECTION)
    problems = [f"missing {record_id}" for record_id in sorted(set(expected) - set(records))]
    problems += [f"extra {record_id}" for record_id in sorted(set(records) - set(expected))]
    for record_id in sorted(set(expected) & set(records)):
        want, got = expected[record_id], records[record_id]
        vector = oracle.embedding(want.run_id, record_id, DIMENSION)
        if max(abs(a - b) for a, b in zip(vector, got.embedding, strict=True)) > 1e-6:
            problems.append(f"stale {record_id}: not the vector of run {want.run_id}")
        if got.document != want.document:
            problems.append(f"stale {record_id}: document {got.document!r} != {want.document!r}")
        if got.metadata != want.metadata:
            keys = sorted(
                k
                for k in set(got.metadata) | set(want.metadata)
                if got.metadata.get(k) != want.metadata.get(k)
            )
            detail = ", ".join(
                f"{k}={got.metadata.get(k, ABSENT)!r} (want {want.metadata.get(k, ABSENT)!r})"
                for k in keys
            )
            problems.append(f"stale {record_id}: {detail}")
    return problems
