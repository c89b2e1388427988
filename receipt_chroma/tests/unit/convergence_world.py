"""The convergence model's world (``test_convergence_model``): a real moto table and bucket
and real Chroma, the table writes with the stream records DynamoDB makes for them, the
producer's deltas (made once per run and cached), the Chroma write faults injected into
the compactor, and what each delivered cycle did, for the failure report."""

from __future__ import annotations

import dataclasses
import shutil
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from chromadb.api.models.Collection import Collection
from hypothesis import strategies as st

from receipt_chroma.compaction import CompactionConfig, write_delta
from receipt_compaction_tools.testing import spec_oracle as oracle
from receipt_compaction_tools.testing.published import (
    PublishedRecord,
    download_version,
    read_collection,
)
from receipt_dynamo import DynamoClient, create_table
from receipt_dynamo.testing import stream_record
from receipt_dynamo_stream import StreamMessage

DIMENSION = 4
TABLE = "receipts-convergence"
BUCKET = "chroma-convergence"

# Receipt slots: two receipts of one image (v4 id) and one of another image (v5 id).
IMAGE_A = "3f2a8c1e-5b7d-4e09-9c3a-6d1f0b2e4a58"
IMAGE_B = str(uuid.uuid5(uuid.NAMESPACE_URL, "https://example.invalid/convergence/image-b"))
SLOTS = ((IMAGE_A, 1), (IMAGE_A, 2), (IMAGE_B, 1))
MAX_RECEIPTS = 2
RUN_NAMESPACE = uuid.UUID("6f1d2c3b-4a59-4e8f-9d0c-1b2a3c4d5e6f")

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
INVALID_TIMESTAMP = "not-a-time"
TIME_STYLES = ("utc", "offset", "naive", "zulu", "plus")
LABEL_NAMES = ("TOTAL", "TAX", "DATE")
LABEL_STATUSES = ("PENDING", "VALID", "PENDING", "VALID", "INVALID", "NONE", "NEEDS_REVIEW", None)

# A row written: its key, the image it had (None: new) and the image it gets (None: deleted).
RowChange = tuple[tuple[str, str], dict[str, Any] | None, dict[str, Any] | None]

CLEAN_ROUNDS_MAX = 2  # drain rounds without faults before the queues must be empty


def write_instant(moment: datetime, style: str) -> str:
    """One instant in the ways upstream writers spell it (all read by fromisoformat)."""
    if style == "utc":
        return moment.astimezone(UTC).isoformat(timespec="microseconds")
    if style == "offset":
        return moment.astimezone(timezone(timedelta(hours=-5))).isoformat(timespec="microseconds")
    if style == "naive":
        return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")
    if style == "zulu":
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat()


timestamps = st.builds(
    lambda minutes, style: write_instant(T0 + timedelta(minutes=minutes), style),
    st.sampled_from([0, 30, 60, 90]),
    st.sampled_from(TIME_STYLES),
)
# About one row in five is invalid (an unparseable timestamp).
maybe_invalid_timestamps = st.one_of(timestamps, timestamps, timestamps, st.just(INVALID_TIMESTAMP))


def subsets(rows: frozenset[Any], phantoms: frozenset[Any]) -> st.SearchStrategy[frozenset[Any]]:
    """The ids a delta holds: mostly the receipt's rows in common shapes (all, all but one,
    one), sometimes with ids that never get rows, sometimes any subset."""
    ordered = sorted(rows)
    universe = sorted(rows | phantoms)
    menu = [frozenset(rows), frozenset(rows | phantoms), frozenset()]
    menu += [frozenset(rows - {row}) for row in ordered] + [frozenset({row}) for row in ordered]
    return st.one_of(
        st.sampled_from(menu),
        st.frozensets(st.sampled_from(universe)) if universe else st.just(frozenset()),
    )


# --- deltas: produced by the product's producer, cached across examples ------------------


class CapturedUploads:
    """The S3 client handed to the producer: it keeps the bytes of every file the producer
    uploads instead of sending them, so that the example places the delta in the bucket
    when it decides (or never), and later examples reuse it. Any other S3 call fails."""

    def __init__(self) -> None:
        self.uploads: dict[str, bytes] = {}

    def upload_file(self, filename: str, bucket: str, key: str) -> None:
        self.uploads[key] = Path(filename).read_bytes()


class DeltaCache:
    """Delta objects by content. ``write_delta`` costs a Chroma directory per call; a delta
    is a function of (collection, run, ids), and run ids repeat across examples."""

    LIMIT = 4000

    def __init__(self) -> None:
        self.entries: dict[tuple[Any, ...], tuple[str, list[tuple[str, bytes]]]] = {}
        self.misses = 0
        self.hits = 0

    def produce(
        self, image_id: str, receipt_id: int, run: oracle.RunRow, collection: str
    ) -> tuple[str, list[tuple[str, bytes]]]:
        ids = oracle.run_record_ids(image_id, receipt_id, run, collection)
        key = (collection, run.run_id, tuple(ids))
        if key in self.entries:
            self.hits += 1
            return self.entries[key]
        self.misses += 1
        records = oracle.delta_records(image_id, receipt_id, run, collection, DIMENSION)
        producer = CapturedUploads()
        prefix = write_delta(
            records,
            collection,
            bucket=BUCKET,
            run_id=run.run_id,
            s3_client=producer,
        )
        objects = sorted(producer.uploads.items())
        assert objects, f"write_delta uploaded nothing for {prefix}"
        if len(self.entries) >= self.LIMIT:
            self.entries.clear()
        self.entries[key] = (prefix, objects)
        return prefix, objects


DELTAS = DeltaCache()
STATS: dict[str, int] = {}


def count(name: str, amount: int = 1) -> None:
    STATS[name] = STATS.get(name, 0) + amount


# --- fault injection -----------------------------------------------------------------------


@dataclasses.dataclass
class Fault:
    """What goes wrong in one cycle: nothing, a Chroma write raising on its ``call``-th
    invocation (``after``: once the write is done), or the lease lost at stage 'applied'."""

    kind: str = "none"
    call: int = 1
    after: bool = False

    def __str__(self) -> str:
        if self.kind == "chroma":
            return f"chroma write #{self.call} raises {'after' if self.after else 'before'}"
        return self.kind


FAULTS = st.one_of(
    # Most cycles make one or two Chroma writes: the first is the likeliest target.
    st.builds(Fault, st.just("chroma"), st.sampled_from([1, 1, 2, 3]), st.booleans()),
    st.just(Fault("lease")),
)


class InjectedChromaError(RuntimeError):
    pass


class ChromaWriteFaults:
    """Patches chromadb's Collection write methods (the library, never our modules)."""

    METHODS = ("add", "upsert", "update", "delete", "modify")

    def __init__(self) -> None:
        self.armed: Fault | None = None
        self.calls = 0
        self.fired = False

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in self.METHODS:
            monkeypatch.setattr(Collection, name, self._wrap(getattr(Collection, name), name))

    def _wrap(self, original: Callable[..., Any], name: str) -> Callable[..., Any]:
        faults = self

        def write(collection: Any, *args: Any, **kwargs: Any) -> Any:
            fault = faults.armed
            if fault is None or fault.kind != "chroma" or faults.fired:
                return original(collection, *args, **kwargs)
            faults.calls += 1
            if faults.calls != fault.call:
                return original(collection, *args, **kwargs)
            faults.fired = True
            if fault.after:
                original(collection, *args, **kwargs)
            raise InjectedChromaError(f"injected: Collection.{name} call #{fault.call} failed")

        return write

    def arm(self, fault: Fault) -> None:
        self.armed, self.calls, self.fired = fault, 0, False

    def disarm(self) -> None:
        self.armed = None


# --- one example's world -------------------------------------------------------------------


@dataclasses.dataclass
class Aws:
    """One in-process moto for the whole test and clients made once (a client costs tens of
    milliseconds); every example starts from an empty account (``fresh``)."""

    mock: Any
    ddb: Any
    s3: Any

    def fresh(self) -> None:
        self.mock.reset()


class World:
    """One example's table, buckets, EFS and work directories, in a freshly reset moto
    account, and the stream records of the example's writes not yet turned into messages."""

    def __init__(self, aws: Aws, root: Path) -> None:
        aws.fresh()
        self.root = root
        self.ddb, self.s3 = aws.ddb, aws.s3
        create_table(TABLE, client=self.ddb)
        self.s3.create_bucket(Bucket=BUCKET)
        self.dynamo = DynamoClient(TABLE)
        self.stream: list[dict[str, Any]] = []
        self.config = CompactionConfig(
            table_name=TABLE,
            bucket=BUCKET,
            chroma_root=root / "efs",
            work_dir=root / "work-0",
            dimension=DIMENSION,
            lock_duration_seconds=60,
            heartbeat_interval_seconds=20,
            lock_wait_seconds=2,
            lock_backoff_seconds=(0.01, 0.05),
        )

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def stream_records(self) -> list[dict[str, Any]]:
        """The stream records written since the last call, oldest first."""
        records, self.stream = self.stream, []
        return records

    def write(self, changes: list[RowChange]) -> None:
        """Write rows in order (a row without a new image is deleted) and record the stream
        record DynamoDB makes for each write, as Lambda delivers it.

        The records are built here rather than read back through moto's stream API (the
        stream's own shape is proven by receipt_dynamo_stream's tests and the integration
        tests, which read moto's real stream). An old image is the row this example wrote;
        the compactor changes only its runs' state, and neither a run's MODIFY nor its
        REMOVE makes a message (SPEC §3.3), nor do its lease and pointer rows.
        """
        requests: list[dict[str, Any]] = [
            {"DeleteRequest": {"Key": {"PK": {"S": pk}, "SK": {"S": sk}}}}
            if new is None
            else {"PutRequest": {"Item": new}}
            for (pk, sk), _, new in changes
        ]
        for start in range(0, len(requests), 25):
            chunk = requests[start : start + 25]
            response = self.ddb.batch_write_item(RequestItems={TABLE: chunk})
            assert not response.get("UnprocessedItems"), response["UnprocessedItems"]
        created = int(time.time())
        for _, old, new in changes:
            event = "REMOVE" if new is None else "MODIFY" if old is not None else "INSERT"
            self.stream.append(stream_record(event, old=old, new=new, created=created))

    def image_items(self) -> dict[tuple[str, str], dict[str, Any]]:
        items: dict[tuple[str, str], dict[str, Any]] = {}
        for page in self.ddb.get_paginator("scan").paginate(TableName=TABLE, ConsistentRead=True):
            for item in page["Items"]:
                if item["PK"]["S"].startswith("IMAGE#"):
                    items[(item["PK"]["S"], item["SK"]["S"])] = item
        return items

    def steal_lease(self, collection: str) -> None:
        """Another owner took the lease (and crashed): owner and token no longer match."""
        self.ddb.update_item(
            TableName=TABLE,
            Key={
                "PK": {"S": f"LOCK#{collection}#chroma-{collection}-compaction"},
                "SK": {"S": "LOCK"},
            },
            UpdateExpression=(
                "SET #owner = :thief, fencing_token = fencing_token + :one, expires = :past"
            ),
            ExpressionAttributeNames={"#owner": "owner"},
            ExpressionAttributeValues={
                ":thief": {"S": str(uuid.uuid4())},
                ":one": {"N": "1"},
                ":past": {"S": "2000-01-01T00:00:00.000000+00:00"},
            },
        )

    def published(self, collection: str) -> dict[str, PublishedRecord] | None:
        """The collection at the version the pointer item names (None: never published)."""
        item = self.ddb.get_item(
            TableName=TABLE,
            Key={"PK": {"S": f"SNAPSHOT#{collection}"}, "SK": {"S": "POINTER"}},
            ConsistentRead=True,
        ).get("Item")
        if item is None:
            return None
        version = item["version"]["S"]
        pointer_file = self.s3.get_object(
            Bucket=BUCKET, Key=f"{collection}/snapshot/latest-pointer.txt"
        )["Body"].read()
        assert pointer_file == version.encode("ascii"), (
            f"{collection}: latest-pointer.txt says {pointer_file!r}, the pointer item {version}"
        )
        directory = self.root / f"published-{collection}-{uuid.uuid4().hex[:8]}"
        try:
            download_version(self.s3, BUCKET, collection, version, directory)
            return read_collection(directory, collection)
        finally:
            shutil.rmtree(directory, ignore_errors=True)


# --- the state machine ---------------------------------------------------------------------


@dataclasses.dataclass
class Shape:
    """The ids a receipt was created with, and ids of the receipt that never get rows."""

    line_ids: frozenset[int]
    word_ids: frozenset[tuple[int, int]]
    phantom_lines: frozenset[int]
    phantom_words: frozenset[tuple[int, int]]


@dataclasses.dataclass
class Delivery:
    collection: str
    container: int
    batch: list[str]
    fault: str
    failed: list[str]
    cause: str | None
    published: str | None
    runs: list[str]


def describe_message(message: StreamMessage) -> str:
    data = message.entity_data
    name = f"{message.entity_type.value}/{message.event_name.value}"
    if "run_id" in data:
        return f"{name} run {str(data['run_id'])[:8]} r{data.get('receipt_id')}"
    where = ".".join(str(data[k]) for k in ("receipt_id", "line_id", "word_id") if k in data)
    return f"{name} {where}{' ' + str(data['label']) if 'label' in data else ''}"


def describe_runs(result: Any) -> list[str]:
    """What the cycle did with each run (as far as its result says)."""
    described = []
    for run in getattr(getattr(result, "update", None), "runs", None) or []:
        fields = {
            name: getattr(run, name, None)
            for name in ("merged_vectors", "held_by_newer", "skipped_reason", "error")
        }
        detail = " ".join(f"{k}={v}" for k, v in fields.items() if v not in (None, 0))
        described.append(f"{str(getattr(run, 'run_id', '?'))[:8]} {detail or 'no-op'}")
    return described
