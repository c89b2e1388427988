"""What ``run`` and ``replay`` report, and the one error naming everything that failed:
records not parsed or given up, messages not published or not applied."""

from __future__ import annotations

from typing import IO, Any

from receipt_compaction_tools.cli.exceptions import OperationFailed
from receipt_compaction_tools.cli.local_compactor import per_collection
from receipt_compaction_tools.cli.output import render_mapping


def _unparseable_error(unparseable: int, parked: int, dlq_url: str | None) -> str:
    where = f"{parked} parked on {dlq_url}" if dlq_url else "pass --stream-dlq-url to park them"
    return f"{unparseable} record(s) could not be parsed ({where})"


def raise_for_failures(result: dict[str, Any], dlq_url: str | None) -> None:
    problems = []
    if result["unparseable"]:
        problems.append(_unparseable_error(result["unparseable"], result["parked"], dlq_url))
    if result["publish_failures"]:
        problems.append(f"{result['publish_failures']} message(s) not published")
    if result.get("records_given_up"):
        problems.append(f"{result['records_given_up']} record(s) given up after retries")
    if sum(result["messages_failed"].values()):
        problems.append(
            "messages the compactor did not apply: "
            + per_collection(result["messages_failed"])
            + " (retried from their queues; after maxReceiveCount in the dead-letter queues)"
        )
    if problems:
        raise OperationFailed("; ".join(problems))


def render_pipeline(result: dict[str, Any], stream: IO[str]) -> None:
    render_mapping({k: v for k, v in result.items() if k != "cycles"}, stream)
    for cycle in result["cycles"]:
        stream.write(
            f"cycle  {cycle['collection']}: tier {cycle['tier']}, "
            f"{'published' if cycle['published'] else 'nothing published'}, "
            f"{cycle['vectors_merged']} vectors merged, {cycle['failures']} failed\n"
        )
