"""``receipt-compaction backfill``: ``source: backfill`` messages (contract §3.4) for every
metadata, label and compaction-run row, read page by page from the ``GSITYPE`` index.

A backfill re-merges COMPLETED runs: it rebuilds a new, rolled-back or repaired snapshot.
``--dry-run`` counts what would be sent; ``--collection`` limits it to one queue.
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

from receipt_compaction_tools.cli import clients
from receipt_compaction_tools.cli.exceptions import OperationFailed
from receipt_compaction_tools.cli.output import Output, progress, render_mapping
from receipt_compaction_tools.cli.settings import (
    ENDPOINT,
    QUEUES,
    REGION,
    TABLE,
    add_settings,
    queue_urls,
)

BACKFILL_TYPES = ("RECEIPT_METADATA", "RECEIPT_WORD_LABEL", "COMPACTION_RUN")
PAGE_SIZE = 500


def command_backfill(args: argparse.Namespace, out: Output) -> None:
    from receipt_dynamo_stream import backfill_messages, publish_messages

    collections = [args.collection] if args.collection else ["lines", "words"]
    # Queue URLs are checked before anything is read or sent.
    urls = {} if args.dry_run else queue_urls(args, collections)
    dynamo = clients.dynamo(args)
    sqs = None if args.dry_run else clients.aws(args, "sqs")
    counts: Counter[str] = Counter()
    rows: Counter[str] = Counter()
    failed = 0
    with progress() as bars:
        advance = bars("backfill rows", None)
        for entity_type in BACKFILL_TYPES:
            pages = dynamo.client.get_paginator("query").paginate(
                TableName=dynamo.table_name,
                IndexName="GSITYPE",
                KeyConditionExpression="#type = :type",
                ExpressionAttributeNames={"#type": "TYPE"},
                ExpressionAttributeValues={":type": {"S": entity_type}},
                PaginationConfig={"PageSize": PAGE_SIZE},
            )
            for page in pages:
                items = page.get("Items", [])
                rows[entity_type] += len(items)
                messages = [
                    m for m in backfill_messages(items) if m.collection.value in collections
                ]
                if args.dry_run:
                    counts.update(f"{m.collection.value}/{m.entity_type.value}" for m in messages)
                else:
                    sent = publish_messages(
                        [(None, m) for m in messages],
                        sqs_client=sqs,
                        lines_queue_url=urls.get("lines"),
                        words_queue_url=urls.get("words"),
                    )
                    failed += len(sent.failed)
                    counts.update(
                        f"{m.collection.value}/{m.entity_type.value}" for _, m in sent.published
                    )
                advance(len(items))
    result: dict[str, Any] = {
        "dry_run": args.dry_run,
        "collections": collections,
        "rows": dict(rows),
        "would_publish" if args.dry_run else "published": dict(sorted(counts.items())),
        "failed": failed,
    }
    out.emit(result, render_mapping)
    if failed:
        raise OperationFailed(f"{failed} backfill message(s) not published")


def register(commands: Any) -> None:
    backfill = commands.add_parser(
        "backfill",
        help="messages for existing rows (source: backfill)",
        description=__doc__,
    )
    add_settings(backfill, ENDPOINT, REGION, TABLE, *QUEUES)
    backfill.add_argument(
        "--collection", choices=["lines", "words"], help="only this collection's messages"
    )
    backfill.add_argument("--dry-run", action="store_true", help="count the messages; send nothing")
    backfill.set_defaults(handler=command_backfill)
