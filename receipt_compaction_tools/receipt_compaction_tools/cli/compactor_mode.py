"""Whether ``run`` and ``replay`` also run a local compactor: only when no deployed
compactor consumes the queues (each queue's Lambda event source mappings are looked up;
when the lookup is not allowed, messages are only published), or when asked."""

from __future__ import annotations

import argparse
from typing import Any

from receipt_compaction_tools.cli import clients
from receipt_compaction_tools.cli.settings import (
    BUCKET,
    CHROMA_ROOT,
    DIMENSION,
    ENDPOINT,
    LINES_DLQ,
    QUEUES,
    REGION,
    STREAM_DLQ,
    TABLE,
    WORDS_DLQ,
    WORK_DIR,
    add_settings,
)

ACTIVE_MAPPING_STATES = frozenset({"Enabled", "Enabling", "Creating", "Updating"})


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    add_settings(parser, ENDPOINT, REGION, TABLE, *QUEUES)
    STREAM_DLQ.add_to(parser, note="; unparseable records are parked there")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--publish-only",
        action="store_true",
        help="only publish messages; a deployed compactor applies them (the default when "
        "one consumes the queues)",
    )
    mode.add_argument(
        "--local-compactor",
        action="store_true",
        help="also run the compactor in this process until the queues drain (the default "
        "when no deployed compactor consumes the queues)",
    )
    local = parser.add_argument_group("local compactor")
    add_settings(local, BUCKET, CHROMA_ROOT, WORK_DIR, DIMENSION, LINES_DLQ, WORDS_DLQ)


# --- is a compactor deployed? ------------------------------------------------------------


def _queue_arn(sqs: Any, url: str) -> str:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return str(attributes["Attributes"]["QueueArn"])


def deployed_consumers(
    args: argparse.Namespace, queue_urls: dict[str, str]
) -> tuple[list[str], str | None]:
    """UUIDs of active Lambda event source mappings on the queues, and why the lookup
    could not tell (None when it could)."""
    from botocore.exceptions import BotoCoreError, ClientError

    sqs = clients.aws(args, "sqs")
    arns = [_queue_arn(sqs, url) for url in queue_urls.values()]  # errors: a bad queue URL
    try:
        lambda_client = clients.aws(args, "lambda")
        found = []
        for arn in arns:
            pages = lambda_client.get_paginator("list_event_source_mappings").paginate(
                EventSourceArn=arn
            )
            for page in pages:
                found += [
                    m["UUID"]
                    for m in page.get("EventSourceMappings", [])
                    if m.get("State") in ACTIVE_MAPPING_STATES
                ]
    except (BotoCoreError, ClientError) as error:
        return [], f"{type(error).__name__}: {error}"
    return found, None


def choose_mode(args: argparse.Namespace, queue_urls: dict[str, str]) -> dict[str, Any]:
    """``publish-only`` or ``local-compactor``, and why."""
    if args.publish_only:
        return {"mode": "publish-only", "reason": "--publish-only"}
    if args.local_compactor:
        return {"mode": "local-compactor", "reason": "--local-compactor"}
    mappings, unknown = deployed_consumers(args, queue_urls)
    if unknown is not None:
        return {
            "mode": "publish-only",
            "reason": f"could not list the queues' event source mappings ({unknown})",
        }
    if mappings:
        return {"mode": "publish-only", "reason": "deployed compactor", "mappings": mappings}
    return {"mode": "local-compactor", "reason": "no event source mapping on the queues"}
