"""The compactor run in this process (``--local-compactor``): the real handler, fed by a
queue consumer, with the settings the flags resolved; interrupted, it hands the messages
it holds back to their queues."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from receipt_compaction_tools.cli.exceptions import OperationFailed
from receipt_compaction_tools.cli.local_state import state_dir
from receipt_compaction_tools.cli.output import ProgressFactory
from receipt_compaction_tools.cli.settings import (
    BUCKET,
    CHROMA_ROOT,
    DIMENSION,
    LINES_DLQ,
    STREAM_DLQ,
    TABLE,
    WORDS_DLQ,
    WORK_DIR,
)

if TYPE_CHECKING:
    from receipt_compaction_tools.local.pump_stats import PumpStats
    from receipt_compaction_tools.local.queue_consumer import QueueConsumer
    from receipt_compaction_tools.local.resources import PipelineResources

COLLECTIONS = ("lines", "words")


def pipeline_resources(
    args: argparse.Namespace, queue_urls: dict[str, str], stream_arn: str, local: bool
) -> PipelineResources:
    from receipt_compaction_tools.local.resources import PipelineResources

    return PipelineResources(
        table=TABLE.value(args, required=True),
        stream_arn=stream_arn,
        bucket=BUCKET.value(args, required=local) or "",
        lines_queue_url=queue_urls["lines"],
        words_queue_url=queue_urls["words"],
        lines_dlq_url=LINES_DLQ.value(args) or "",
        words_dlq_url=WORDS_DLQ.value(args) or "",
        stream_dlq_url=STREAM_DLQ.value(args) or "",
    )


def handler_environment(args: argparse.Namespace, resources: PipelineResources) -> dict[str, str]:
    """The variables the two handlers read (contract §8), from the resolved settings: the
    flags reach the handlers through them."""
    environment = {
        "LINES_QUEUE_URL": resources.lines_queue_url,
        "WORDS_QUEUE_URL": resources.words_queue_url,
        "DYNAMODB_TABLE_NAME": resources.table,
        "LOG_LEVEL": "WARNING",
    }
    if resources.stream_dlq_url:
        environment["STREAM_DLQ_URL"] = resources.stream_dlq_url
    if resources.bucket:
        root = CHROMA_ROOT.value(args) or str(state_dir() / "efs")
        environment.update(
            CHROMADB_BUCKET=resources.bucket,
            CHROMA_ROOT=root,
            CHROMA_WORK_DIR=WORK_DIR.value(args),
            EMBEDDING_DIMENSION=str(DIMENSION.value(args)),
        )
    return environment


@contextmanager
def interrupts_stay_here() -> Iterator[None]:
    """Processes started meanwhile (the compactor's delta reader, started when its handler
    is loaded) inherit an ignored SIGINT: a Ctrl-C at the terminal reaches the whole
    process group, and it is this process's to handle — it hands the messages in flight
    back — never a helper's traceback."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def local_consumer(resources: PipelineResources, stats: PumpStats) -> QueueConsumer:
    from receipt_compaction_tools.local.queue_consumer import QueueConsumer

    with interrupts_stay_here():
        return QueueConsumer(resources.queues, stats)


def drain(consumer: QueueConsumer, stats: PumpStats, bars: ProgressFactory) -> None:
    """Invoke the local compactor until the queues stay empty. Interrupted (Ctrl-C) or
    failing, it first makes the messages it holds visible again, so they come back at
    once instead of after the queue's visibility timeout."""
    advance = bars("compaction passes", None)
    try:
        for _ in range(50):
            if not consumer.poll_once():
                return
            advance(1)
    except BaseException as error:
        released = consumer.release_in_flight()
        if isinstance(error, KeyboardInterrupt) and released:
            print(f"{released} message(s) in flight made visible again", file=sys.stderr)
        raise
    finally:
        consumer.close()
    raise OperationFailed(
        "queues not drained after 50 compaction passes; messages still failing: "
        + per_collection(unapplied(stats))
    )


def unapplied(stats: PumpStats) -> dict[str, int]:
    """Messages (not deliveries) whose last delivery failed, per collection."""
    return {c: len(stats.unapplied.get(c, ())) for c in COLLECTIONS}


def per_collection(counts: dict[str, int]) -> str:
    return ", ".join(f"{collection} {count}" for collection, count in counts.items())
