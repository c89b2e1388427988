"""The reliability suite: the pipeline's promises checked at system level.

Every scenario runs the real handlers against a moto server, compares the published
snapshots — or, with ``sink="server"``, the Chroma server's collections (contract §12) —
with what the independent oracle (``testing.spec_oracle``) derives from the final table
and reports missing / extra / stale records, which must all be 0. It also reports what
became of every delivery of the compactor queues (``World.deliveries``): a message the
handler reported failed must come back within the retry window (contract §7 rev 3), so
``waited_for_visibility_timeout`` must be 0; the messages a killed compactor held
(``held_by_killed_compactors``) cannot be reported and rightly wait.
"""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import os
import random
import signal
import tarfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3

from receipt_chroma.compaction import write_delta
from receipt_compaction_tools.aws.local_aws import LocalAwsServer
from receipt_compaction_tools.local.chroma_server import LocalChromaServer
from receipt_compaction_tools.local.environment import environment
from receipt_compaction_tools.local.queue_consumer import QueueChaos
from receipt_compaction_tools.local.reliability_scales import SCALES, Scale
from receipt_compaction_tools.local.reliability_world import DIMENSION, LEASE_SECONDS, World
from receipt_compaction_tools.local.worker_output import publishes_from_logs, worker_summary
from receipt_compaction_tools.testing.synthetic import SyntheticReceipt
from receipt_dynamo.entities import CompactionRun
from receipt_dynamo.timestamps import now_iso


def sustained_load(root: Path, scale: Scale) -> dict[str, Any]:
    world = World(root / "load", queue_batch=scale.queue_batch)
    world.add_receipts(scale.receipts)
    world.settle()
    world.pump.freshness.reset()  # the sustained churn's freshness only
    while (remaining := scale.changes - world.changes) > 0:
        world.churn(min(scale.load_slice, remaining))
        world.settle()
    stats = world.pump.stats
    return {
        "freshness_seconds": world.pump.freshness.summary(),
        "changes": world.changes,
        "messages": sum(stats.messages_received.values()),
        "redeliveries": stats.redeliveries_injected + sum(stats.messages_failed.values()),
        "faults": {
            "duplicates": stats.duplicates_injected,
            "lost_deletes": stats.redeliveries_injected,
        },
        **world.compare(),
        **world.deliveries(),
    }


def concurrent_compactors(root: Path, scale: Scale) -> dict[str, Any]:
    world = World(root / "concurrent", seed=2, queue_batch=scale.queue_batch)
    world.add_receipts(scale.receipts // 2)
    world.churn(scale.changes // 3)
    world.pump.pump_stream()
    # Short lease waits make contention routine; the losers' messages must come back soon.
    world.environment.update({"LOCK_WAIT_SECONDS": "2"})
    workers = [world.worker(f"compactor-{n}") for n in range(3)]
    world.churn(scale.changes // 3)
    world.pump.pump_stream()
    # All at once: a worker whose output pipe fills (64 KiB of logs) stops until it is read.
    with ThreadPoolExecutor(len(workers)) as readers:
        outputs = list(readers.map(lambda w: w.communicate(timeout=600)[0], workers))
    world.settle()
    publishes = [p for out in outputs for p in publishes_from_logs(out)]
    bases = [(collection, base) for collection, base, _ in publishes]
    cycles = [c for out in outputs for c in worker_summary(out)["cycles"]]
    return {
        "changes": world.changes,
        "compactors": 3,
        "publishes": len(publishes),
        "same_base_publishes": len(bases) - len(set(bases)),
        "lease_contention_failures": sum(c["failures"] for c in cycles if c["contended"]),
        **world.compare(),
        **world.deliveries(),
    }


def crashes(root: Path, scale: Scale) -> dict[str, Any]:
    """Each trial starts a stream pump and a compactor process and SIGKILLs each at its own
    random moment; the pump resumes from its checkpoint, the compactor's messages come back
    after their visibility timeout and its lease expires."""
    world = World(root / "crashes", seed=3, queue_batch=scale.queue_batch)
    world.add_receipts(scale.receipts // 2)
    rng = random.Random(9)
    broken = 0
    kills = {"stream_pump": 0, "compactor": 0}
    pump_advanced_before_kill = 0
    for trial in range(scale.crash_trials):
        world.churn(max(10, scale.changes // (3 * scale.crash_trials)))
        checkpoint = world.checkpoint_text()
        pump = world.stream_pump(f"pump-{trial}")
        compactor = world.worker(f"victim-{trial}")
        compactor_kill_at = time.monotonic() + rng.uniform(0.3, 2.5)
        # The pump dies at a random moment of its work: once its first batch is delivered
        # (so later batches may be in flight), or at a random moment if that takes long.
        deadline = time.monotonic() + rng.uniform(10.0, 16.0)
        while time.monotonic() < deadline and world.checkpoint_text() == checkpoint:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.4))
        for kind, process in (("stream_pump", pump), ("compactor", compactor)):
            if kind == "compactor":
                time.sleep(max(0.0, compactor_kill_at - time.monotonic()))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                kills[kind] += 1
            process.wait()
        pump_advanced_before_kill += int(world.checkpoint_text() != checkpoint)
        broken += int(not world.openable())
    time.sleep(LEASE_SECONDS + 1)  # the last victim's lease expires
    world.settle()
    # Messages held by several victims in a row reach the DLQ after maxReceiveCount, as
    # in AWS; recovery is the runbook's redrive (docs/operations.md), then the queues drain.
    redriven = world.redrive_dead_letters()
    if redriven:
        world.settle()
    return {
        "changes": world.changes,
        "trials": scale.crash_trials,
        "dead_lettered_by_kills_then_redriven": redriven,
        "kills": kills,
        "trials_where_the_pump_delivered_before_its_kill": pump_advanced_before_kill,
        "broken_latest_after_kill": broken,
        **world.compare(),
        **world.deliveries(),
    }


def poison_input(root: Path, scale: Scale) -> dict[str, Any]:
    world = World(root / "poison", seed=4, chaos=QueueChaos(seed=4))
    world.add_receipts(max(3, scale.receipts // 4))
    world.churn(scale.changes // 6)
    records = world.pump.stream.reader.read()
    poison_records = [
        {"eventName": "MODIFY", "dynamodb": {"Keys": {"PK": {"S": "IMAGE#x"}}}},
        {
            "eventName": "INSERT",
            "dynamodb": {
                "Keys": {
                    "PK": {"S": "IMAGE#3f52804b-2fad-4e00-92c8-b593da3a8ed3"},
                    "SK": {"S": "RECEIPT#00000"},
                },
                "SequenceNumber": "1",
            },
        },
        {"no": "record"},
    ]
    mixed = records[: len(records) // 2] + poison_records + records[len(records) // 2 :]
    world.pump.deliver_records(mixed)
    sqs = boto3.client("sqs")
    poison_bodies = ["not json", json.dumps({"schema_version": 99}), "{}"]
    for body in poison_bodies:
        sqs.send_message(QueueUrl=world.resources.words_queue_url, MessageBody=body)
    world.drain()
    depths = world.pump.queue_depths()
    return {
        "changes": world.changes,
        "poison_records": len(poison_records),
        "poison_messages": len(poison_bodies),
        "parked_records": depths["stream-unparseable"],
        "dead_lettered": depths["words-dlq"] + depths["lines-dlq"],
        "ok": depths["stream-unparseable"] == len(poison_records)
        and depths["words-dlq"] == len(poison_bodies)
        and depths["lines-dlq"] == 0,
        **world.compare(),
        **world.deliveries(),
    }


def _hostile_tarball(kind: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        member = tarfile.TarInfo(
            {"traversal": "../../escaped", "absolute": "/tmp/escaped-abs"}.get(
                kind, "chroma.sqlite3"
            )
        )
        if kind == "symlink":
            member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
            archive.addfile(member)
        else:
            member.size = 4
            archive.addfile(member, io.BytesIO(b"evil"))
    return buffer.getvalue()


def _write_hostile_delta(
    world: World, s3: Any, kind: str, receipt: SyntheticReceipt, run_id: str
) -> None:
    """A words delta for ``run_id`` that the compactor must refuse: a tarball escaping its
    directory, a lines delta, a delta of the wrong dimension, or none at all."""
    prefix = f"words/delta/{run_id}/"
    if kind in ("traversal", "absolute", "symlink"):
        s3.put_object(
            Bucket=world.resources.bucket,
            Key=f"{prefix}delta.tar.gz",
            Body=_hostile_tarball(kind),
        )
    elif kind in ("wrong_collection", "wrong_dimension"):
        records = (
            receipt.line_records()
            if kind == "wrong_collection"
            else [(r[0], [*r[1], 0.0], r[2], r[3]) for r in receipt.word_records()]
        )
        written = write_delta(
            records,
            "lines" if kind == "wrong_collection" else "words",
            bucket=world.resources.bucket,
            run_id=run_id,
        )
        if kind == "wrong_collection":
            for item in s3.list_objects_v2(Bucket=world.resources.bucket, Prefix=written)[
                "Contents"
            ]:
                s3.copy_object(
                    Bucket=world.resources.bucket,
                    CopySource={"Bucket": world.resources.bucket, "Key": item["Key"]},
                    Key=item["Key"].replace(written, prefix),
                )


def hostile_deltas(root: Path, scale: Scale) -> dict[str, Any]:
    world = World(root / "hostile", seed=5, chaos=QueueChaos(seed=5))
    world.add_receipts(3)
    s3 = boto3.client("s3")
    kinds = ["traversal", "absolute", "symlink", "wrong_collection", "wrong_dimension", "missing"]
    for kind in kinds:
        image_id = str(uuid.uuid4())
        receipt = SyntheticReceipt(image_id, 1, lines=2, words_per_line=2, dimension=DIMENSION)
        world.dynamo.put_entities(receipt.rows)
        run_id = f"hostile-{kind}"
        prefix = f"words/delta/{run_id}/"
        _write_hostile_delta(world, s3, kind, receipt, run_id)
        world.run_contents[run_id] = (frozenset(), frozenset())  # refused: excluded below
        world.dynamo.add_compaction_run(
            CompactionRun(
                run_id=run_id,
                image_id=image_id,
                receipt_id=1,
                lines_delta_prefix=f"lines/none/{run_id}/",
                words_delta_prefix=prefix,
                created_at=now_iso(),
            )
        )
        world.receipts[(image_id, 1)] = receipt
        world.excluded.add((image_id, 1))
    world.settle()
    escaped = [
        p
        for p in (Path("/tmp/escaped-abs"), world.root.parent / "escaped", world.root / "escaped")
        if p.exists()
    ]
    runs = [world.dynamo.list_compaction_runs_for_receipt(img, 1)[0] for img, _ in world.excluded]
    named = sum(1 for r in runs if r.words_error and r.run_id in r.words_error)
    failed = sum(1 for r in runs if r.words_state.value == "FAILED")
    published = world.published("words")
    return {
        "hostile_runs": len(kinds),
        "runs_failed": failed,
        "errors_name_run": named,
        "written_outside_work_dir": len(escaped),
        "hostile_records_published": sum(
            1 for i in published if any(f"IMAGE#{img}#" in i for img, _ in world.excluded)
        ),
        **world.compare(),
        **world.deliveries(),
    }


def lease_pathologies(root: Path, scale: Scale) -> dict[str, Any]:
    world = World(root / "lease", seed=6, chaos=QueueChaos(seed=6))
    world.add_receipts(max(4, scale.receipts // 3))
    world.pump.pump_stream()
    # A holder paused past its lease cannot publish after resuming.
    paused = world.worker("paused")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            lock = world.dynamo.get_compaction_lock("words") or world.dynamo.get_compaction_lock(
                "lines"
            )
        except ValueError:  # moto applies an UpdateItem's actions one by one: a read can
            lock = None  # see the row half-written (a new lock row without expires yet)
        if lock is not None and lock.owner is not None:
            break
        time.sleep(0.05)
    paused.send_signal(signal.SIGSTOP)
    time.sleep(LEASE_SECONDS + 1)
    rescuer = world.worker("rescuer")
    rescued = rescuer.communicate(timeout=600)[0]
    paused.send_signal(signal.SIGCONT)
    resumed = paused.communicate(timeout=600)[0]
    taken = {(collection, base) for collection, base, _ in publishes_from_logs(rescued)}
    stale = [p for p in publishes_from_logs(resumed) if (p[0], p[1]) in taken]
    # An abandoned lease is taken over after expiry.
    world.dynamo.acquire_lease("lines", owner="ghost", duration_seconds=2)
    world.churn(20)
    world.settle()
    lock = world.dynamo.get_compaction_lock("lines")
    return {
        "rescuer_publishes": len(taken),
        "paused_holder_publishes_from_stale_base": len(stale),
        "abandoned_lease_taken_over": lock is not None and lock.owner != "ghost",
        **world.compare(),
        **world.deliveries(),
    }


SCENARIOS: dict[str, Callable[[Path, Scale], dict[str, Any]]] = {
    "sustained_load": sustained_load,
    "concurrent_compactors": concurrent_compactors,
    "crashes": crashes,
    "poison_input": poison_input,
    "hostile_deltas": hostile_deltas,
    "lease_pathologies": lease_pathologies,
}


def passed(result: dict[str, Any]) -> bool:
    zero = (
        "missing",
        "extra",
        "stale",
        "same_base_publishes",
        "broken_latest_after_kill",
        "written_outside_work_dir",
        "hostile_records_published",
        "paused_holder_publishes_from_stale_base",
        # Contract §7 (rev 3): every message the handler reported failed came back early.
        "waited_for_visibility_timeout",
    )
    return (
        all(result.get(k, 0) == 0 for k in zero)
        and result.get("ok", True) is not False
        and result.get("abandoned_lease_taken_over", True) is not False
    )


def run_scenario(name: str, scale_name: str, root: Path, sink: str = "snapshot") -> dict[str, Any]:
    """One scenario against its own moto server (in its own process, so the emulator's
    work never holds this process's GIL while the handlers run here) and, when the sink is
    a Chroma server (contract §12), its own ``chroma run``."""
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(LocalAwsServer(own_process=True))
        variables = {**server.environment(), "CHROMA_SINK": sink}
        if sink != "snapshot":
            chroma = stack.enter_context(LocalChromaServer(root / f"chroma-{name}"))
            variables.update(chroma.environment())
        stack.enter_context(environment(variables))
        saved = dict(os.environ)
        try:
            result = SCENARIOS[name](root, SCALES[scale_name])
        finally:
            os.environ.clear()
            os.environ.update(saved)
    result["sink"] = sink
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["passed"] = passed(result)
    return result


def run_suite(
    scale_name: str,
    root: Path,
    only: list[str] | None = None,
    jobs: int = 1,
    sink: str = "snapshot",
) -> dict[str, Any]:
    """Run the scenarios (``jobs`` at a time, each in a fresh process when more than one)."""
    names = [name for name in SCENARIOS if not only or name in only]
    if jobs <= 1:
        results = {name: run_scenario(name, scale_name, root, sink) for name in names}
    else:
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=spawn) as pool:
            futures = {
                name: pool.submit(run_scenario, name, scale_name, root, sink) for name in names
            }
            results = {name: future.result() for name, future in futures.items()}
    report: dict[str, Any] = {"scale": scale_name, "sink": sink, "jobs": jobs, "scenarios": results}
    report["passed"] = all(s["passed"] for s in results.values())
    return report
