"""A holder that lost its lease can never break a published version (contract §6 rev 3,
"Who may delete" and "Bootstrap and adoption").

Each test replays one interleaving found on revision 2 with real cycles (moto server, real
Chroma, short leases): compactors run in threads and pause at a stage; a paused holder's
heartbeat is frozen too (a stall freezes the whole process, not one thread). What every
test checks afterwards is written from the contract, independently of the product: the
pointer's version and every version in its history have a manifest whose bytes hash to
``.manifest_hash`` and name objects that exist and decompress to their sha256.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import zstandard

from receipt_chroma.compaction import CompactionCycle, CycleResult, FailureCause
from receipt_compaction_tools.testing.synthetic import SyntheticReceipt
from receipt_compaction_tools.testing.world import CompactionWorld
from receipt_dynamo import DynamoClient
from receipt_dynamo.aws_clients import ClientTimeouts, aws_client
from receipt_dynamo.constants import ValidationStatus
from receipt_dynamo.testing import IMAGE_ID, make_label
from receipt_dynamo_stream import StreamMessage

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

LEASE = 2.0  # seconds; orphans may be deleted once older than 2 x LEASE
# S3 calls whose worst case (0.3 + 0.9 s, one attempt) fits the 1.7 s a confirmed 2 s lease
# leaves before its deadline: the holders in these tests really delete.
QUICK = ClientTimeouts(connect_seconds=0.3, read_seconds=0.9, max_attempts=1)
Messages = list[tuple[str, StreamMessage]]


@pytest.fixture
def world(aws_endpoint: str, tmp_path: Path) -> CompactionWorld:
    made = CompactionWorld(tmp_path)
    made.s3 = aws_client("s3", timeouts=QUICK)
    made.config = replace(
        made.config,
        lock_duration_seconds=LEASE,
        heartbeat_interval_seconds=0.3,
        lease_safety_margin_seconds=0.3,
        lock_wait_seconds=3 * LEASE,
        lock_backoff_seconds=(0.05, 0.1),
    )
    return made


@dataclass
class Compactor:
    """One container: its own clients (so its calls can be frozen) and working copy."""

    world: CompactionWorld
    name: str
    pause_at: set[str] = field(default_factory=set)
    frozen: threading.Event = field(default_factory=threading.Event)
    thawed: threading.Condition = field(default_factory=threading.Condition)
    reached: dict[str, threading.Event] = field(default_factory=dict)
    resume: dict[str, threading.Event] = field(default_factory=dict)
    result: CycleResult | None = None
    thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        dynamo = DynamoClient(self.world.table)
        dynamo.client.meta.events.register("before-call.*.*", self._wait_while_frozen)
        for stage in self.pause_at:
            self.reached[stage], self.resume[stage] = threading.Event(), threading.Event()
        self.cycle = CompactionCycle(
            replace(self.world.config, work_dir=self.world.root / self.name),
            "words",
            dynamo=dynamo,
            s3_client=aws_client("s3", timeouts=QUICK),
            on_stage=self._on_stage,
        )

    def _wait_while_frozen(self, **_: Any) -> None:
        with self.thawed:
            self.thawed.wait_for(lambda: not self.frozen.is_set(), timeout=120)

    def _on_stage(self, stage: str) -> None:
        if stage in self.pause_at:
            self.reached[stage].set()
            self.resume[stage].wait(timeout=120)

    def freeze(self) -> None:
        """Every later AWS call of this container (heartbeats included) waits."""
        self.frozen.set()

    def thaw(self) -> None:
        with self.thawed:
            self.frozen.clear()
            self.thawed.notify_all()

    def start(self, messages: Messages) -> Compactor:
        def run() -> None:
            self.result = self.cycle.run(messages)

        self.thread = threading.Thread(target=run, name=self.name, daemon=True)
        self.thread.start()
        return self

    def wait_at(self, stage: str) -> None:
        assert self.reached[stage].wait(timeout=60), f"{self.name} never reached {stage}"

    def go_on(self, stage: str) -> None:
        self.resume[stage].set()

    def finish(self) -> CycleResult:
        assert self.thread is not None
        self.thread.join(timeout=120)
        assert self.result is not None, f"{self.name} did not finish"
        return self.result


def wait_for_lease_expiry(world: CompactionWorld) -> None:
    """Until the lock row's ``expires`` has passed (the holder is frozen)."""
    lock = world.dynamo.get_compaction_lock("words")
    assert lock is not None
    expires = datetime.fromisoformat(lock.expires).timestamp()
    time.sleep(max(0.0, expires - time.time()) + 0.2)


# --- what the contract says a published version is ----------------------------------------


def s3_object(world: CompactionWorld, key: str) -> bytes | None:
    try:
        body: bytes = world.s3.get_object(Bucket=world.bucket, Key=key)["Body"].read()
    except world.s3.exceptions.NoSuchKey:
        return None
    return body


def version_defects(world: CompactionWorld, version: str) -> list[str]:
    """What is wrong with a format 2 version in S3 (§6 layout), read with hashlib/zstd."""
    prefix = f"words/snapshot/versions/{version}/"
    manifest = s3_object(world, prefix + "manifest.json")
    recorded = s3_object(world, prefix + ".manifest_hash")
    if manifest is None or recorded is None:
        return [f"{version}: manifest or .manifest_hash missing"]
    if recorded.decode() != "sha256:" + hashlib.sha256(manifest).hexdigest():
        return [f"{version}: manifest does not hash to .manifest_hash"]
    defects = []
    for entry in json.loads(manifest)["files"]:
        body = s3_object(world, f"words/snapshot/objects/{entry['sha256']}.zst")
        if body is None:
            defects.append(f"{version}: object of {entry['path']} missing")
            continue
        data = zstandard.ZstdDecompressor().decompressobj().decompress(body)
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            defects.append(f"{version}: object of {entry['path']} does not match its sha256")
    return defects


def published_defects(world: CompactionWorld) -> list[str]:
    pointer = world.dynamo.get_snapshot_pointer("words")
    assert pointer is not None
    versions = [pointer.version, *pointer.history]
    return [
        defect for version in dict.fromkeys(versions) for defect in version_defects(world, version)
    ]


def plant_orphan(world: CompactionWorld) -> str:
    """An object no manifest names (a refused publish's upload), made 2 x LEASE ago."""
    body = b"bytes of a refused publish"
    key = f"words/snapshot/objects/{hashlib.sha256(body).hexdigest()}.zst"
    world.s3.put_object(
        Bucket=world.bucket, Key=key, Body=zstandard.ZstdCompressor().compress(body)
    )
    time.sleep(2 * LEASE + 0.2)
    return key


def label_messages(world: CompactionWorld, receipt: SyntheticReceipt, label: str) -> Messages:
    """A VALID label: every one changes the word's ``valid_labels_array`` (a write)."""
    valid = make_label(IMAGE_ID, 1, 1, 1, label=label, validation_status=ValidationStatus.VALID)
    world.dynamo.put_entities([valid])
    return world.pump()["words"]


@pytest.fixture
def receipt(world: CompactionWorld) -> SyntheticReceipt:
    made = SyntheticReceipt(IMAGE_ID, 1, lines=1, words_per_line=2, dimension=world.dimension)
    world.add_receipt(made)
    return made


def test_a_holder_resuming_after_losing_its_lease_deletes_nothing_published(
    world: CompactionWorld, receipt: SyntheticReceipt
) -> None:
    """Defect 1: A commits V_A and stalls after syncing the pointer file; B publishes V_B
    on top; more than 2 x the lease later A resumes its EFS write, marks and retention."""
    orphan = plant_orphan(world)
    assert world.cycle("words", work="seed").run(world.pump()["words"]).failures == []
    a = Compactor(world, "a", pause_at={"pointer_file_synced"})
    a.start(label_messages(world, receipt, "TOTAL"))
    a.wait_at("pointer_file_synced")
    a.freeze()
    wait_for_lease_expiry(world)

    b = world.cycle("words", work="b").run(label_messages(world, receipt, "TAX"))
    assert b.failures == []
    assert b.published_version is not None
    assert b.retention_skipped == 0  # B holds its lease: its retention deletes …
    assert s3_object(world, orphan) is None  # … the orphan older than 2 x the lease
    time.sleep(2 * LEASE + 0.5)  # V_B is now older than the orphan horizon
    a.thaw()
    a.go_on("pointer_file_synced")
    stale = a.finish()

    pointer = world.dynamo.get_snapshot_pointer("words")
    assert pointer is not None
    assert pointer.version == b.published_version
    assert published_defects(world) == []
    assert stale.retention_skipped == 1, stale
    cold = world.cycle("words", work="cold").run(label_messages(world, receipt, "DATE"))
    assert cold.cause is None, cold
    assert cold.failures == [], cold


def test_a_holder_resuming_after_losing_its_lease_never_moves_the_derived_caches_back(
    world: CompactionWorld, receipt: SyntheticReceipt
) -> None:
    """A commits V_A and stalls before writing ``latest-pointer.txt``; B publishes V_B on
    top; A resumes. A's pointer file comes from the item's current value (V_B), and its
    EFS write is refused once its deadline passed: both caches keep naming V_B (contract
    §6: derived caches may lag, never go backwards)."""
    assert world.cycle("words", work="seed").run(world.pump()["words"]).failures == []
    a = Compactor(world, "a", pause_at={"committed"})
    a.start(label_messages(world, receipt, "TOTAL"))
    a.wait_at("committed")
    a.freeze()
    wait_for_lease_expiry(world)
    b = world.cycle("words", work="b").run(label_messages(world, receipt, "TAX"))
    assert b.failures == []
    assert b.published_version is not None
    a.thaw()
    a.go_on("committed")
    stale = a.finish()

    assert stale.failures == []  # V_A was committed: its messages' effect is published
    assert stale.published_version not in (None, b.published_version)
    assert any(e.startswith("efs: not written") for e in stale.derived_cache_errors), stale
    assert s3_object(world, "words/snapshot/latest-pointer.txt") == b.published_version.encode()
    efs_version = world.root / "efs" / "snapshots" / "words" / ".version"
    assert efs_version.read_text() == b.published_version
    assert published_defects(world) == []


def test_a_lease_taken_over_mid_bootstrap_never_publishes_a_version_with_missing_objects(
    world: CompactionWorld, receipt: SyntheticReceipt
) -> None:
    """Defect 2: A bootstraps and stalls once it applied; B takes the lease over and
    bootstraps too. A uploads its objects and manifest before B checks which objects S3
    lacks; A's swap is refused while B has not written its manifest yet."""
    messages = world.pump()["words"]
    a = Compactor(world, "a", pause_at={"applied", "manifest_written"})
    b = Compactor(world, "b", pause_at={"checked", "objects_uploaded"})
    a.start(messages)
    a.wait_at("applied")
    a.freeze()
    wait_for_lease_expiry(world)
    b.start(messages)
    b.wait_at("checked")  # B holds the lease (its heartbeat runs) and found S3 empty

    a.thaw()
    a.go_on("applied")
    a.wait_at("manifest_written")  # A's objects and manifest are in S3
    b.go_on("checked")
    b.wait_at("objects_uploaded")  # B skipped the objects A had uploaded
    a.go_on("manifest_written")
    refused = a.finish()
    assert refused.cause is FailureCause.LEASE_LOST, refused
    b.go_on("objects_uploaded")
    first = b.finish()

    assert first.failures == [], first
    assert first.published_version is not None, first
    assert published_defects(world) == []
    cold = world.cycle("words", work="cold").run(label_messages(world, receipt, "TOTAL"))
    assert cold.cause is None, cold
    assert cold.failures == [], cold


def test_a_refused_publishs_uploads_age_out_even_in_cycles_that_publish_nothing(
    world: CompactionWorld, receipt: SyntheticReceipt
) -> None:
    """A refused publish deletes nothing; the next holder's retention removes its uploads
    once older than 2 x the lease, even when the collection has gone quiet."""
    seeded = world.cycle("words", work="seed").run(world.pump()["words"])
    assert seeded.failures == []
    repeat = label_messages(world, receipt, "TOTAL")
    assert world.cycle("words", work="seed").run(repeat).published_version is not None
    orphan = plant_orphan(world)

    quiet = world.cycle("words", work="seed").run(repeat)  # the same message again

    assert quiet.failures == []
    assert quiet.published_version is None  # nothing to write …
    assert quiet.retention_skipped == 0
    assert s3_object(world, orphan) is None  # … and the orphan is gone
    assert published_defects(world) == []
