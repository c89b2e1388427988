"""A full compaction cycle under a realistic batch, cold (S3) and warm, side by side.

1,000 messages over 100 receipts (200 words each) against a 20,000-word snapshot:
~800 label changes and ~200 merchant changes, several per receipt, shuffled as a Standard
queue delivers them. Each cycle is split into lease / working copy / apply / publish.
In the same run, the minimum work a perfect compactor must do is timed: one
``collection.update`` per receipt carrying that receipt's final metadata.

Targets: apply <= 1.5x that minimum; a warm cycle >= 3x faster than a cold one.
AWS is a moto server in its own process (so the emulator's work never holds this
process's GIL); Chroma is real. moto's DynamoDB is far slower than the service and its
speed follows whatever else the machine runs, and the apply ratio used to be the small
difference of two large numbers (cycle time minus DynamoDB time), swinging from 1.3x to
2.0x between runs. So the timed rounds do not depend on the emulator: an untimed pass
records every row read's answers, and each timed round is served them from memory —
same requests, same answers, in the same order (``benchlib.DynamoReplay``). Every round
starts from the same published base (pointer reset; a warm round's working copy put back,
a cold round's work directory and EFS empty), cold and warm alternate, and the minimum is
timed in the same round; every round and the spread are reported.

The same run then applies the same batch to a Chroma server (``CHROMA_SINK=server``, a
local ``chroma run`` seeded from the published base as a migration does) against the
server's own minimum, and times the delta merge of ``BENCH_MERGE_RECEIPTS`` re-embedded
receipts into that server against one raw upsert of the same records into the same
server. Targets there: apply <= 1.5x the server's minimum; merge >= 0.85x the raw upsert's
throughput. Prints JSON (``bench/results/compaction_cycle.json``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import numpy as np
from benchlib import (
    Clock,
    DynamoReplay,
    create_bench_table,
    set_words_pointer,
    spread,
    use_local_credentials,
)

from receipt_chroma import ChromaClient
from receipt_chroma import server_migration as migration
from receipt_chroma.chroma_server import ChromaServer
from receipt_chroma.compaction import (
    CompactionConfig,
    CompactionCycle,
    CycleResult,
    EFSSnapshotManager,
    MergeTarget,
    label_metadata_by_record,
    merchant_metadata,
    merge_compaction_deltas,
    produce_compaction_run,
)
from receipt_chroma.ids import VectorKey
from receipt_chroma.snapshots import (
    CollectionSnapshots,
    Manifest,
    S3SnapshotStore,
    SnapshotSettings,
    SnapshotStats,
    prepare_directory,
    write_version,
)
from receipt_compaction_tools.aws.local_aws import LocalAwsServer
from receipt_compaction_tools.local.chroma_server import LocalChromaServer
from receipt_compaction_tools.local.environment import environment
from receipt_compaction_tools.testing.synthetic import embedding_for
from receipt_dynamo import DynamoClient
from receipt_dynamo.entities import SnapshotPointer
from receipt_dynamo.testing import (
    make_label,
    make_metadata,
    make_receipt,
    make_word,
    stream_record,
)
from receipt_dynamo_stream import build_messages
from receipt_dynamo_stream.compactor_defaults import SinkKind

RECEIPTS = int(os.environ.get("BENCH_RECEIPTS", "100"))
WORDS_PER_RECEIPT = 200
LABEL_CHANGES = 800
MERCHANT_CHANGES = 200
DIMENSION = int(os.environ.get("BENCH_DIMENSION", "1536"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
MERGE_RECEIPTS = int(os.environ.get("BENCH_MERGE_RECEIPTS", "20"))
# Why a run was made below the default size (recorded in the JSON), if it was.
SIZE_NOTE = os.environ.get("BENCH_SIZE_NOTE", "").strip() or None
BUCKET = "bench-cycle"
LOGGER = logging.getLogger("bench")
LOGGER.addHandler(logging.NullHandler())
LOGGER.propagate = False
STATUSES = ["PENDING", "VALID", "INVALID"]
LABELS = ["TOTAL", "TAX", "DATE", "MERCHANT_NAME", "PRODUCT_NAME"]


def _image(n: int) -> str:
    return str(uuid.UUID(int=n + 1, version=4))


def _word_keys(n: int) -> list[VectorKey]:
    return [VectorKey(_image(n), 1, 1 + w // 10, 1 + w % 10) for w in range(WORDS_PER_RECEIPT)]


def build_world(root: Path, rng: random.Random) -> tuple[DynamoClient, list[Any]]:
    create_bench_table("bench")
    dynamo = DynamoClient("bench")
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    rows: list[Any] = []
    for n in range(RECEIPTS):
        rows.append(make_receipt(_image(n), 1))
        rows += [make_word(k.image_id, 1, k.line_id, k.word_id or 1) for k in _word_keys(n)]
        rows.append(make_metadata(_image(n), 1))
    dynamo.put_entities(rows)

    # The published base snapshot: every word with its receipt's merchant keys.
    base = CollectionSnapshots.create(
        collection="words",
        dynamo=dynamo,
        s3_client=boto3.client("s3"),
        bucket=BUCKET,
        work_dir=root / "base",
        efs=None,
        settings=SnapshotSettings(dimension=DIMENSION),
    )
    with ChromaClient(base.working.path, mode="write") as client:
        collection = client.get_or_create_collection("words")
        keys = [k for n in range(RECEIPTS) for k in _word_keys(n)]
        ids = [k.vector_id for k in keys]
        merchant = merchant_metadata(make_metadata(_image(0), 1))
        client.upsert(
            collection,
            ids,
            [embedding_for(i, DIMENSION) for i in ids],
            metadatas=[
                {
                    **k.base_metadata(),
                    "text": "w",
                    **{a: b for a, b in merchant.items() if b is not None},
                }
                for k in keys
            ],
        )
    check = prepare_directory(base, SnapshotStats(), force_flush=True)
    manifest, _, _ = write_version(
        base, base.working.path, check, base_version=None, stats=SnapshotStats()
    )
    base.working.relabel(manifest.version_id, manifest)  # the pristine base, kept for rounds
    set_words_pointer(dynamo, manifest.version_id)
    base.store.sync_pointer_file(lambda: manifest.version_id)

    # The batch: label churn and merchant corrections applied to the table, then their
    # messages shuffled as a Standard queue delivers them.
    records = []
    for _ in range(LABEL_CHANGES):
        n, key = rng.randrange(RECEIPTS), rng.randrange(WORDS_PER_RECEIPT)
        word = _word_keys(n)[key]
        label = make_label(
            word.image_id,
            1,
            word.line_id,
            word.word_id or 1,
            rng.choice(LABELS),
            validation_status=rng.choice(STATUSES),
        )
        dynamo.put_receipt_word_label(label)
        records.append(stream_record("INSERT", new=label))
    for index in range(MERCHANT_CHANGES):
        n = rng.randrange(RECEIPTS)
        old = make_metadata(_image(n), 1)
        new = dataclasses.replace(old, canonical_merchant_name=f"Merchant {index}")
        dynamo.put_receipt_metadata(new)
        records.append(stream_record("MODIFY", old=old, new=new))
    messages = [
        (f"m{i}", m)
        for i, (_, m) in enumerate(build_messages(records).messages)
        if m.collection.value == "words"
    ]
    rng.shuffle(messages)
    return dynamo, messages


def final_metadata(dynamo: DynamoClient) -> list[tuple[list[str], list[dict[str, Any]]]]:
    """Each receipt's word ids and their final metadata (read once, untimed)."""
    finals = []
    for n in range(RECEIPTS):
        rows = dynamo.get_receipt_state(_image(n), 1)
        labels = label_metadata_by_record(rows.labels)
        merchant = merchant_metadata(rows.metadata)
        ids = [k.vector_id for k in _word_keys(n)]
        finals.append((ids, [{**merchant, **labels.get(i, {})} for i in ids]))
    return finals


def minimum_work(
    root: Path, finals: list[tuple[list[str], list[dict[str, Any]]]], round_: int
) -> float:
    """One update per receipt with its final metadata, on a fresh copy of the base."""
    target = root / f"minimum-{round_}"
    shutil.copytree(root / "base" / "words" / "snapshot", target)
    with ChromaClient(target, mode="write") as client:
        collection = client.get_collection("words")
        started = time.perf_counter()
        for ids, metadatas in finals:
            collection.update(ids=ids, metadatas=metadatas)
        elapsed = time.perf_counter() - started
    shutil.rmtree(target)
    return elapsed


def make_cycle(
    config: CompactionConfig, dynamo: DynamoClient, clock: Clock, name: str
) -> CompactionCycle:
    """A container with its own work directory and EFS root."""
    return CompactionCycle(
        dataclasses.replace(
            config, work_dir=config.work_dir / name, chroma_root=config.chroma_root / name
        ),
        "words",
        dynamo=dynamo,
        s3_client=boto3.client("s3"),
        logger=LOGGER,
        on_stage=clock.on_stage,
    )


def run_cycle(cycle: CompactionCycle, messages: list[Any], clock: Clock) -> dict[str, Any]:
    clock.clear()
    started = time.perf_counter()
    result = cycle.run(messages)
    ended = time.perf_counter()
    assert result.failures == [], result.failures[:3]
    return _split(result, clock, started, ended)


@dataclasses.dataclass(frozen=True)
class Base:
    """The published base every round starts from."""

    pointer: SnapshotPointer
    manifest: Manifest
    path: Path  # a closed copy of it, never opened


def restore(cycle: CompactionCycle, base: Base) -> None:
    """A warm container's working copy put back at the base (a real copy: Chroma writes
    its files in place)."""
    cycle.working.lock()
    cycle.working.discard()
    shutil.copytree(base.path, cycle.working.path)
    cycle.working.relabel(base.pointer.version, base.manifest)


def reset_pointer(dynamo: DynamoClient, base: Base) -> None:
    dynamo.client.put_item(TableName=dynamo.table_name, Item=base.pointer.to_item())


def _split(result: CycleResult, clock: Clock, started: float, ended: float) -> dict[str, Any]:
    stages = clock.stages
    phases = {
        "lease": (started, stages["lease_acquired"]),
        "working_copy": (stages["lease_acquired"], stages["opened"]),
        "plan": (stages["opened"], stages["planned"]),
        "apply": (stages["planned"], stages["applied"]),
        "publish": (stages["applied"], ended),
    }
    report: dict[str, Any] = {
        "tier": result.tier.value if result.tier else None,
        "bytes_downloaded": result.snapshot_bytes_downloaded,
        "bytes_uploaded": result.snapshot_bytes_uploaded,
    }
    total_dynamo = clock.dynamo_seconds(started, ended)
    for name, (start, end) in phases.items():
        dynamo = clock.dynamo_seconds(start, end)
        report[f"{name}_seconds"] = round(end - start, 3)
        report[f"{name}_seconds_excluding_dynamodb"] = round(end - start - dynamo, 3)
    report["total_seconds"] = round(ended - started, 3)
    report["total_seconds_excluding_dynamodb"] = round(ended - started - total_dynamo, 3)
    report["messages_per_second_excluding_dynamodb"] = round(
        len(result.message_ids) / (ended - started - total_dynamo)
    )
    return report


def _total_with_apply(cycle: dict[str, Any], apply_seconds: float) -> float:
    """A cycle's time excluding DynamoDB, with its apply phase replaced by ``apply_seconds``."""
    others = [
        float(cycle[f"{phase}_seconds_excluding_dynamodb"])
        for phase in ("lease", "working_copy", "publish")
    ]
    return sum(others) + apply_seconds


# --- the same batch against a Chroma server (contract §12) ------------------------------


def _server_metadatas(server: ChromaServer) -> dict[str, dict[str, Any]]:
    """Every word record's metadata on the server (untimed)."""
    with server.connect(mode="read") as client:
        words = client.get_collection("words")
        ids = migration.all_ids(words)
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), migration.PAGE):
            page = words.get(ids=ids[start : start + migration.PAGE], include=["metadatas"])
            found.update(zip(page["ids"], (dict(m or {}) for m in page["metadatas"]), strict=True))
    return found


def reset_server(server: ChromaServer, base: dict[str, dict[str, Any]]) -> int:
    """Every record's metadata back to the seeded base (keys the base lacks deleted), so a
    round applies the whole batch from the same state as every other round (untimed)."""
    current = _server_metadatas(server)
    writes = {
        record_id: {**dict.fromkeys(set(metadata) - set(base[record_id])), **base[record_id]}
        for record_id, metadata in current.items()
        if metadata != base[record_id]
    }
    if writes:
        with server.connect() as client:
            client.get_collection("words").update(
                ids=sorted(writes), metadatas=[writes[i] for i in sorted(writes)]
            )
    return len(writes)


def check_server_finals(
    server: ChromaServer, finals: list[tuple[list[str], list[dict[str, Any]]]]
) -> None:
    """The server holds every receipt's final metadata (a key whose final value is None
    is absent): a timed round really applied the whole batch."""
    held = _server_metadatas(server)
    for ids, metadatas in finals:
        for record_id, final in zip(ids, metadatas, strict=True):
            for key, value in final.items():
                assert held[record_id].get(key) == value, (record_id, key, value)


def server_minimum_work(
    server: ChromaServer, finals: list[tuple[list[str], list[dict[str, Any]]]]
) -> float:
    """One update per receipt with its final metadata, on the server."""
    with server.connect() as client:
        words = client.get_collection("words")
        started = time.perf_counter()
        for ids, metadatas in finals:
            words.update(ids=ids, metadatas=metadatas)
        return time.perf_counter() - started


def run_server_cycle(cycle: CompactionCycle, messages: list[Any], clock: Clock) -> dict[str, Any]:
    clock.clear()
    started = time.perf_counter()
    result = cycle.run(messages)
    ended = time.perf_counter()
    assert result.failures == [], result.failures[:3]
    assert result.server_applied
    applied_from, applied = clock.stages["planned"], clock.stages["applied"]
    return {
        "apply_seconds": round(applied - applied_from, 3),
        "apply_seconds_excluding_dynamodb": round(
            applied - applied_from - clock.dynamo_seconds(applied_from, applied), 3
        ),
        "total_seconds": round(ended - started, 3),
        "total_seconds_excluding_dynamodb": round(
            ended - started - clock.dynamo_seconds(started, ended), 3
        ),
    }


def _merge_targets(dynamo: DynamoClient) -> list[MergeTarget]:
    """Runs re-embedding every word of ``MERGE_RECEIPTS`` receipts, their rows read
    beforehand (moto's DynamoDB is far slower than a table; the merge is what is timed)."""
    targets = []
    for n in range(MERGE_RECEIPTS):
        words = [
            (i, embedding_for(f"{i} re-embedded", DIMENSION), "w", {"text": "w"})
            for i in (k.vector_id for k in _word_keys(n))
        ]
        run = produce_compaction_run(
            dynamo,
            image_id=_image(n),
            receipt_id=1,
            run_id=str(uuid.UUID(int=10_000 + n, version=4)),
            lines=[],
            words=words,
            bucket=BUCKET,
        )
        targets.append(MergeTarget(run, dynamo.get_receipt_state(_image(n), 1)))
    return targets


class _UpsertTimer:
    """Wraps a client's ``upsert`` (the one call a merge writes through): seconds spent in
    it, calls and records, so a merge's time splits into writing and everything else."""

    def __init__(self, client: ChromaClient) -> None:
        self.seconds = 0.0
        self.calls: list[int] = []
        self._upsert = client.upsert
        client.upsert = self  # type: ignore[method-assign]

    def __call__(self, *args: Any, **kwargs: Any) -> int:
        started = time.perf_counter()
        try:
            return self._upsert(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started
            self.calls.append(len(args[1] if len(args) > 1 else kwargs["ids"]))

    def take(self) -> tuple[float, list[int]]:
        taken = self.seconds, self.calls
        self.seconds, self.calls = 0.0, []
        return taken


def _read_back(words: Any, ids: list[str]) -> dict[str, Any]:
    """The records as the merge left them: ids, vectors, documents, metadata."""
    found: dict[str, list[Any]] = {"ids": [], "embeddings": [], "documents": [], "metadatas": []}
    for start in range(0, len(ids), migration.PAGE):
        page = words.get(
            ids=ids[start : start + migration.PAGE],
            include=["embeddings", "documents", "metadatas"],
        )
        for name in found:
            found[name] += list(page[name])
    assert sorted(found["ids"]) == sorted(ids)
    return {**found, "embeddings": np.asarray(found["embeddings"], dtype=np.float32)}


def merge_against_raw(server: ChromaServer, dynamo: DynamoClient, root: Path) -> dict[str, Any]:
    """The delta merge into the server (download, read, row filter, provenance check,
    upsert, read-back) against one raw upsert of exactly the records it writes (same ids,
    vectors, documents, metadata) into the same server.

    A merge skips every record already holding its run (an idempotent re-merge writes
    nothing), so every timed write — merge or raw — starts with the merged receipts' ids
    deleted (untimed): each inserts the same 200 x ``MERGE_RECEIPTS`` records into the
    same 20,000-record collection. An untimed merge first warms the compactor (its delta
    reader process started and loaded, as in a container past its first batch) and leaves
    the records the raw upserts write. Merge and raw alternate which goes first; medians.
    """
    targets = _merge_targets(dynamo)
    ids = [k.vector_id for n in range(MERGE_RECEIPTS) for k in _word_keys(n)]
    merges: list[float] = []
    raws: list[float] = []
    merge_upserts: list[float] = []
    merge_calls: list[list[int]] = []
    raw_calls: list[list[int]] = []
    with server.connect() as client:
        words = client.get_collection("words")

        def timed_merge() -> None:
            words.delete(ids=ids)
            assert words.get(ids=ids, include=[])["ids"] == []
            started = time.perf_counter()
            merged = merge_compaction_deltas(
                client,
                "words",
                targets,
                bucket=BUCKET,
                logger=LOGGER,
                dimension=DIMENSION,
                work_dir=root,
            )
            merges.append(time.perf_counter() - started)
            assert all(r.error is None for r in merged), merged[:3]
            assert sum(r.merged_vectors for r in merged) == len(ids), merged[:3]

        timed_merge()  # the warm-up
        merges.clear()
        records = _read_back(words, ids)
        timer = _UpsertTimer(client)
        for round_ in range(ROUNDS):
            for side in ("merge", "raw") if round_ % 2 == 0 else ("raw", "merge"):
                if side == "merge":
                    timed_merge()
                    seconds, calls = timer.take()
                    merge_upserts.append(seconds)
                    merge_calls.append(calls)
                else:
                    words.delete(ids=ids)
                    assert words.get(ids=ids, include=[])["ids"] == []
                    started = time.perf_counter()
                    client.upsert(
                        words,
                        records["ids"],
                        records["embeddings"],
                        documents=records["documents"],
                        metadatas=records["metadatas"],
                    )
                    raws.append(time.perf_counter() - started)
                    raw_calls.append(timer.take()[1])
    merge, raw = statistics.median(merges), statistics.median(raws)
    return {
        "runs": len(targets),
        "vectors": len(ids),
        "write": "insert: the ids are deleted (untimed) before every merge and raw upsert",
        "merge_seconds": spread(merges),
        "raw_upsert_seconds": spread(raws),
        # Inside the merge: its upsert calls, and everything else (delta download and
        # read, row filter, provenance read, the read-back check).
        "merge_upsert_seconds": spread(merge_upserts),
        "merge_other_seconds": spread([m - u for m, u in zip(merges, merge_upserts, strict=True)]),
        "merge_upsert_calls_records": merge_calls,
        "raw_upsert_calls_records": raw_calls,
        "merge_vectors_per_second": round(len(ids) / merge),
        "raw_vectors_per_second": round(len(ids) / raw),
        "throughput_ratio_to_raw": round(raw / merge, 3),
        "throughput_ratio_to_raw_per_round": spread(
            [r / m for r, m in zip(raws, merges, strict=True)]
        ),
    }


def server_figures(
    root: Path,
    dynamo: DynamoClient,
    *,
    messages: list[Any],
    config: CompactionConfig,
    clock: Clock,
    replay: DynamoReplay,
    finals: list[tuple[list[str], list[dict[str, Any]]]],
    base: Base,
    rng: random.Random,
) -> dict[str, Any]:
    """The same batch applied to a local ``chroma run`` holding the same base (seeded from
    the published snapshot, as a migration does), its minimum there, and the delta merge
    into that server against a raw upsert. Cycle and minimum alternate which goes first;
    each starts from the seeded metadata; the cycle's row reads are served from memory."""
    reset_pointer(dynamo, base)  # the seed copies the version the pointer names
    with LocalChromaServer(root / "chroma") as local:
        server = ChromaServer(local.host, local.port)
        seeded = migration.seed(dynamo, BUCKET, "words", server)
        seeded_metadata = _server_metadatas(server)
        cycle = make_cycle(
            dataclasses.replace(config, sink=SinkKind.SERVER, server=server),
            dynamo,
            clock,
            "server",
        )
        applies: list[dict[str, Any]] = []
        minimum: list[float] = []
        for round_ in range(ROUNDS):
            rng.shuffle(messages)
            for side in ("cycle", "minimum") if round_ % 2 == 0 else ("minimum", "cycle"):
                reset_server(server, seeded_metadata)
                if side == "cycle":
                    replay.mode = "replay"
                    replay.rewind()
                    applies.append(run_server_cycle(cycle, messages, clock))
                    replay.mode = "off"
                else:
                    minimum.append(server_minimum_work(server, finals))
                check_server_finals(server, finals)
        merge = merge_against_raw(server, dynamo, root)
    seconds = [a["apply_seconds_excluding_dynamodb"] for a in applies]
    return {
        "server": "chroma run (local, same machine)",
        "seeded_records": seeded["records"],
        "seed_seconds": seeded["seconds"],
        "cycle_rounds": applies,
        "apply_seconds": spread(seconds),
        "minimum_updates_seconds": spread(minimum),
        "apply_ratio_to_minimum": spread([a / m for a, m in zip(seconds, minimum, strict=True)]),
        "delta_merge": merge,
    }


def main() -> None:
    use_local_credentials()
    rng = random.Random(11)
    with (
        tempfile.TemporaryDirectory(prefix="bench-cycle-") as tmp,
        LocalAwsServer(own_process=True) as server,
        environment(server.environment()),
    ):
        root = Path(tmp)
        dynamo, messages = build_world(root, rng)
        pointer = dynamo.get_snapshot_pointer("words")
        assert pointer is not None
        found = S3SnapshotStore(boto3.client("s3"), BUCKET, "words").read_manifest(pointer.version)
        assert found is not None
        base = Base(pointer, found[0], root / "base" / "words" / "snapshot")
        config = CompactionConfig(
            table_name="bench",
            bucket=BUCKET,
            chroma_root=root / "efs",
            work_dir=root / "work",
            dimension=DIMENSION,
        )
        clock = Clock()
        clock.install(dynamo)
        replay = DynamoReplay(dynamo)  # after the clock: a served read still closes its interval
        warm_cycle = make_cycle(config, dynamo, clock, "warm")
        # The warm container's EFS holds the base, as the container that published it
        # left it (so its publishes hard-link the files that did not change).
        EFSSnapshotManager(root / "efs" / "warm", "words").store_version(
            pointer.version, base.path, manifest_bytes=base.manifest.to_bytes()
        )

        replay.mode = "record"  # the untimed pass
        reset_pointer(dynamo, base)
        restore(warm_cycle, base)
        run_cycle(warm_cycle, messages, clock)
        replay.mode = "off"
        finals = final_metadata(dynamo)
        replay.mode = "replay"
        cold: list[dict[str, Any]] = []
        warm: list[dict[str, Any]] = []
        minimum: list[float] = []
        for round_ in range(ROUNDS):
            rng.shuffle(messages)
            for side in ("cold", "warm") if round_ % 2 == 0 else ("warm", "cold"):
                reset_pointer(dynamo, base)
                replay.rewind()
                if side == "warm":
                    restore(warm_cycle, base)
                    warm.append(run_cycle(warm_cycle, messages, clock))
                else:
                    cycle = make_cycle(config, dynamo, clock, f"cold-{round_}")
                    cold.append(run_cycle(cycle, messages, clock))
                    cycle.working.unlock()
                    shutil.rmtree(config.work_dir / f"cold-{round_}")
                    shutil.rmtree(config.chroma_root / f"cold-{round_}")
            minimum.append(minimum_work(root, finals, round_))
        replay.mode = "off"
        on_server = server_figures(
            root,
            dynamo,
            messages=messages,
            config=config,
            clock=clock,
            replay=replay,
            finals=finals,
            base=base,
            rng=rng,
        )
    print(json.dumps(report(messages, cold, warm, minimum, replay, server=on_server), indent=2))


def report(
    messages: list[Any],
    cold: list[dict[str, Any]],
    warm: list[dict[str, Any]],
    minimum: list[float],
    replay: DynamoReplay,
    *,
    server: dict[str, Any],
) -> dict[str, Any]:
    applies = [w["apply_seconds_excluding_dynamodb"] for w in warm]
    ratios = [a / m for a, m in zip(applies, minimum, strict=True)]
    cold_ratios = [
        c["apply_seconds_excluding_dynamodb"] / m for c, m in zip(cold, minimum, strict=True)
    ]
    speedups = [
        c["total_seconds_excluding_dynamodb"] / w["total_seconds_excluding_dynamodb"]
        for c, w in zip(cold, warm, strict=True)
    ]
    bounds = [
        _total_with_apply(c, m) / _total_with_apply(w, m)
        for c, w, m in zip(cold, warm, minimum, strict=True)
    ]
    result: dict[str, Any] = {
        "benchmark": "compaction_cycle",
        "messages": len(messages),
        "receipts": RECEIPTS,
        "snapshot_words": RECEIPTS * WORDS_PER_RECEIPT,
        "dimension": DIMENSION,
        "rounds": len(warm),
        "dynamodb_row_reads_served_from_memory": replay.hits,
        "dynamodb_row_reads_not_recorded": replay.misses,
        "cold_rounds": cold,
        "warm_rounds": warm,
        "warm_apply_seconds": spread(applies),
        "minimum_updates_seconds": spread(minimum),
        "apply_ratio_to_minimum": spread(ratios),
        "cold_apply_ratio_to_minimum": spread(cold_ratios),
        "warm_speedup_over_cold": spread(speedups),
        # The most a warm start could gain here even if both cycles applied in exactly the
        # perfect compactor's time: only the working copy differs between the two.
        "warm_speedup_bound_at_minimum_apply": spread(bounds),
        "server": server,
        "targets": {
            "apply_ratio_to_minimum_max": 1.5,
            "warm_speedup_min": 3.0,
            "server_apply_ratio_to_minimum_max": 1.5,
            "merge_throughput_ratio_to_raw_min": 0.85,
        },
    }
    if SIZE_NOTE is not None:
        result["size_note"] = SIZE_NOTE
    result["meets_targets"] = {
        "apply_ratio": result["apply_ratio_to_minimum"]["max"] <= 1.5,
        "warm_speedup": result["warm_speedup_over_cold"]["median"] >= 3.0,
        "server_apply_ratio": server["apply_ratio_to_minimum"]["max"] <= 1.5,
        "merge_throughput": server["delta_merge"]["throughput_ratio_to_raw"] >= 0.85,
    }
    return result


if __name__ == "__main__":
    main()
