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

import itertools
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from receipt_compaction_tools.testing import spec_oracle as oracle
from receipt_compaction_tools.testing.explorer.expectations import (
    Records,
    collection_problems,
    effect_problems,
)
from receipt_compaction_tools.testing.explorer.messages import COLLECTION, QueuedMessage
from receipt_compaction_tools.testing.explorer.models import Sink, Violation
from receipt_compaction_tools.testing.explorer.observers import POINTER_FILE, History, efs_problem
from receipt_compaction_tools.testing.explorer.scenario import Scenario
from receipt_compaction_tools.testing.explorer.snapshot_layout import (
    OBJECTS,
    PREFIX,
    manifest_objects,
    newest_parts,
    verify_version,
    version_of,
)
from receipt_compaction_tools.testing.explorer.world import ExplorerWorld
from receipt_compaction_tools.testing.published import (
    download_version,
    read_collection,
    read_server_collection,
)

# S3 LastModified and version ids are compared with the run's own clock; the margin keeps
# an orphan written within it of the horizon out of the check (it may go either way).
HORIZON_SLACK_SECONDS = 0.25


@dataclass(frozen=True)
class Pointer:
    version: str
    history: tuple[str, ...]


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
        young = {v for v, at in newest_parts(listing).items() if v not in retained and at > horizon}
        named: set[str] = set()
        for version in retained | young:
            named |= manifest_objects(self.world, version)

        def orphaned(keys: dict[str, datetime]) -> list[str]:
            versions = newest_parts(keys)
            found = []
            for key, modified in sorted(keys.items()):
                version = version_of(key)
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
