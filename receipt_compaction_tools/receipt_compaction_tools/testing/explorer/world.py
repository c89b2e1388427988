"""One schedule's world: a fresh table and bucket on the run's moto server, a fresh database
on its Chroma server (server sink), an EFS directory shared by every container and one work
directory per container; the scenario's rows and deltas; the settings every compactor of
the schedule runs with (short leases, contract §7 rev 3's lowered safety margin)."""

from __future__ import annotations

import inspect
import shutil
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from receipt_chroma.compaction import CompactionConfig, EFSSnapshotManager, LockManager
from receipt_chroma.snapshots import SnapshotSettings
from receipt_compaction_tools.local.chroma_server import LocalChromaServer
from receipt_compaction_tools.testing import spec_oracle as oracle
from receipt_compaction_tools.testing.explorer.deltas import DeltaStore
from receipt_compaction_tools.testing.explorer.messages import COLLECTION
from receipt_compaction_tools.testing.explorer.models import PublishedOrigin, Sink
from receipt_compaction_tools.testing.explorer.scenario import DIMENSION, Scenario
from receipt_dynamo import DynamoClient
from receipt_dynamo.schema import table_definition

BATCH_WRITE = 25  # BatchWriteItem's limit

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient
    from types_boto3_s3.client import S3Client


CHROMA_ADMIN_ATTEMPTS = 5


def _retried(call: Callable[[], None]) -> None:
    """A Chroma server database call: ``chroma run`` answers 500 now and then when several
    workers create and drop databases at once (its system database is busy)."""
    for attempt in range(CHROMA_ADMIN_ATTEMPTS):
        try:
            call()
            return
        except urllib.error.HTTPError as error:
            if error.code < 500 or attempt == CHROMA_ADMIN_ATTEMPTS - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


@dataclass(frozen=True)
class Timing:
    """Short leases, so a stall past the lease costs seconds. The effective safety margin
    is min(margin, lease / 4) (contract §7)."""

    lease_seconds: float = 2.0
    heartbeat_seconds: float = 0.4
    safety_margin_seconds: float = 0.4
    # Long enough for a dead holder's lease to run out while the next one waits.
    lock_wait_seconds: float = 5.0
    lock_backoff_seconds: tuple[float, float] = (0.05, 0.15)
    # The compactors' S3 client: a delete must end before the lease's deadline (contract
    # §6 rev 3), so its worst case — one attempt, connect plus read — fits well inside a
    # lease (moto answers in milliseconds to a few hundred).
    s3_connect_timeout_seconds: float = 0.25
    s3_read_timeout_seconds: float = 0.5

    @property
    def orphan_age_seconds(self) -> float:
        """Contract §6: orphans are deleted once older than twice the lease."""
        return 2 * self.lease_seconds


@dataclass
class Services:
    """What a whole run shares: the moto server (``AWS_ENDPOINT_URL`` already points at
    it), the Chroma server for the server sink, the deltas, a scratch directory."""

    root: Path
    deltas: DeltaStore
    chroma: LocalChromaServer | None = None
    # The base world's first publish, once made (``origin.py``).
    origin: PublishedOrigin | None = None


class ExplorerWorld:
    def __init__(self, services: Services, scenario: Scenario, sink: Sink, timing: Timing) -> None:
        self.services = services
        self.scenario = scenario
        self.sink = sink
        self.timing = timing
        self.name = f"explore-{uuid.uuid4().hex[:10]}"
        self.root = services.root / self.name
        self.efs_root = self.root / "efs"
        self.ddb: DynamoDBClient = boto3.client("dynamodb")
        self.s3: S3Client = boto3.client("s3")
        self.database: str | None = None
        self._containers = 0

    # --- setting up -----------------------------------------------------------------------

    def create(self) -> None:
        self.root.mkdir(parents=True)
        # The table as deployed, without its stream: messages are built here, and moto
        # copies a stream with the table on every TransactWriteItems.
        definition = table_definition(self.name)
        definition.pop("StreamSpecification", None)
        self.ddb.create_table(**definition)
        self.s3.create_bucket(Bucket=self.name)
        for image_id, receipt_id, run in self.scenario.runs.values():
            self.services.deltas.place(self.s3, self.name, image_id, receipt_id, run)
        if self.sink is Sink.SERVER:
            chroma = self._chroma()
            _retried(lambda: chroma.create_database(self.name))
            self.database = self.name

    def write_rows(self, before: oracle.TableModel, after: oracle.TableModel) -> None:
        """Make the table go from ``before`` to ``after`` (only what differs is written)."""
        old, new = before.items(), after.items()
        requests: list[Any] = [
            {"DeleteRequest": {"Key": {"PK": {"S": pk}, "SK": {"S": sk}}}}
            for pk, sk in sorted(set(old) - set(new))
        ]
        requests += [
            {"PutRequest": {"Item": item}}
            for key, item in sorted(new.items())
            if old.get(key) != item
        ]
        self.batch_write(requests)

    def batch_write(self, requests: list[Any]) -> None:
        for start in range(0, len(requests), BATCH_WRITE):
            unprocessed: Any = {self.name: requests[start : start + BATCH_WRITE]}
            while unprocessed:
                response = self.ddb.batch_write_item(RequestItems=unprocessed)
                unprocessed = response.get("UnprocessedItems")

    def _chroma(self) -> LocalChromaServer:
        if self.services.chroma is None:
            raise RuntimeError("the server sink needs the run's Chroma server")
        return self.services.chroma

    def close(self) -> None:
        """Drop the world's table, objects and files. Its Chroma database is kept until the
        worker's server stops: chroma 1.5.9 gave records of a dropped database's collection
        to a later database's upsert of the same ids (label keys its own writes never set:
        I2 on about one in three server-sink schedules after the first ~90; none in 142
        with databases kept)."""
        shutil.rmtree(self.root, ignore_errors=True)
        self.ddb.delete_table(TableName=self.name)
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.name):
            keys: list[Any] = [{"Key": entry["Key"]} for entry in page.get("Contents", [])]
            if keys:
                self.s3.delete_objects(Bucket=self.name, Delete={"Objects": keys, "Quiet": True})
        self.s3.delete_bucket(Bucket=self.name)

    # --- the compactors' settings and clients ----------------------------------------------

    def new_container(self) -> Path:
        self._containers += 1
        return self.root / f"container-{self._containers}"

    def config(self, work_dir: Path) -> CompactionConfig:
        """Built from contract §8 variables, as a deployed compactor builds it."""
        timing = self.timing
        env = {
            "DYNAMODB_TABLE_NAME": self.name,
            "CHROMADB_BUCKET": self.name,
            "CHROMA_ROOT": str(self.efs_root),
            "CHROMA_WORK_DIR": str(work_dir),
            "EMBEDDING_DIMENSION": str(DIMENSION),
            "LOCK_DURATION_SECONDS": str(timing.lease_seconds),
            "HEARTBEAT_INTERVAL_SECONDS": str(timing.heartbeat_seconds),
            "LOCK_WAIT_SECONDS": str(timing.lock_wait_seconds),
            "LEASE_SAFETY_MARGIN_SECONDS": str(timing.safety_margin_seconds),
            "CHROMA_SINK": self.sink.value,
        }
        if self.sink is Sink.SERVER:
            chroma = self._chroma()
            assert self.database is not None
            env |= chroma.environment(self.database)
        config = CompactionConfig.from_env(env)
        return replace(config, lock_backoff_seconds=timing.lock_backoff_seconds)

    def dynamo(self) -> DynamoClient:
        """A process's own DynamoDB client (its own boto3 client, so its own hooks)."""
        return DynamoClient(self.name)

    def s3_client(self) -> S3Client:
        """A process's own S3 client, with the schedule's timeouts and one attempt."""
        timing = self.timing
        config = Config(
            connect_timeout=timing.s3_connect_timeout_seconds,
            read_timeout=timing.s3_read_timeout_seconds,
            retries={"total_max_attempts": 1},
        )
        return boto3.client("s3", config=config)

    def lease(self, dynamo: DynamoClient) -> LockManager:
        """The lease an operator's ``snapshot flush`` runs under, with the schedule's times."""
        timing = self.timing
        margin: dict[str, Any] = {}
        # Contract §7 rev 3's setting; the commit before it had a fixed quarter-lease margin.
        if "safety_margin_seconds" in inspect.signature(LockManager).parameters:
            margin["safety_margin_seconds"] = timing.safety_margin_seconds
        return LockManager(
            dynamo,
            COLLECTION,
            duration_seconds=timing.lease_seconds,
            heartbeat_interval_seconds=timing.heartbeat_seconds,
            wait_seconds=timing.lock_wait_seconds,
            backoff_seconds=timing.lock_backoff_seconds,
            **margin,
        )

    def snapshot_settings(self) -> SnapshotSettings:
        return SnapshotSettings(
            dimension=DIMENSION, lock_duration_seconds=self.timing.lease_seconds
        )

    def efs(self) -> EFSSnapshotManager:
        return EFSSnapshotManager(self.efs_root, COLLECTION)

    # --- the lease, read as the explorer (strongly consistent) -------------------------------

    def wait_for_lease_expiry(self) -> None:
        """Until the lock row shows no live owner (a stalled holder's lease ran out)."""
        item = self.ddb.get_item(
            TableName=self.name,
            Key={
                "PK": {"S": f"LOCK#{COLLECTION}#chroma-{COLLECTION}-compaction"},
                "SK": {"S": "LOCK"},
            },
            ConsistentRead=True,
        ).get("Item")
        if item is None or "owner" not in item:
            return
        expires = datetime.fromisoformat(item["expires"]["S"]).timestamp()
        time.sleep(max(0.0, expires - time.time()) + 0.05)
