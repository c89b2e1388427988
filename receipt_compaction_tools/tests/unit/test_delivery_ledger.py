"""The reliability suite's delivery ledger: its verdicts on written deliveries, and on real
queue behaviour (in-process moto SQS) — a message reported failed whose visibility the
handler shortened comes back within the retry window; one it did not is caught waiting
for the visibility timeout."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import boto3

from receipt_compaction_tools.local.delivery_ledger import DeliveryLedger, QueueTiming, summarise

TIMING = QueueTiming(visibility_timeout=20, retry_window_max=2, max_receive_count=3)
T0 = 1_800_000_000.0


def _message(message_id: str, receive_count: int) -> dict[str, Any]:
    return {"MessageId": message_id, "Attributes": {"ApproximateReceiveCount": str(receive_count)}}


def _verdicts(ledger: DeliveryLedger) -> dict[str, int]:
    return summarise(ledger.path, TIMING)


def test_a_failure_received_again_within_the_window_came_back(tmp_path: Path) -> None:
    ledger = DeliveryLedger(tmp_path / "ledger.jsonl")
    ledger.received("words", [_message("m", 1)], T0)
    ledger.settled("f", [_message("m", 1)], T0 + 1)
    ledger.found_empty("words", T0 + 1.5, T0 + 1.6)  # still inside the window: no verdict
    ledger.received("words", [_message("m", 2)], T0 + 3)
    ledger.settled("d", [_message("m", 2)], T0 + 4)
    verdicts = _verdicts(ledger)
    assert (verdicts["reported_failed"], verdicts["back_within_retry_window"]) == (1, 1)
    assert verdicts["waited_for_visibility_timeout"] == 0
    assert verdicts["held_by_killed_compactors"] == 0


def test_a_failure_its_queue_was_found_empty_without_after_the_window_waited(
    tmp_path: Path,
) -> None:
    ledger = DeliveryLedger(tmp_path / "ledger.jsonl")
    ledger.received("words", [_message("m", 1)], T0)
    ledger.settled("f", [_message("m", 1)], T0 + 1)
    # Due by T0 + 1 + 2 (+ 1 s slack); the words queue is found empty at T0 + 5, then the
    # message is received only once the queue's own timeout put it back.
    ledger.found_empty("lines", T0 + 5, T0 + 5.1)
    ledger.found_empty("words", T0 + 5, T0 + 5.1)
    ledger.received("words", [_message("m", 2)], T0 + 20.5)
    verdicts = _verdicts(ledger)
    assert verdicts["waited_for_visibility_timeout"] == 1
    assert verdicts["back_within_retry_window"] == 0


def test_another_queue_found_empty_proves_nothing(tmp_path: Path) -> None:
    ledger = DeliveryLedger(tmp_path / "ledger.jsonl")
    ledger.received("words", [_message("m", 1)], T0)
    ledger.settled("f", [_message("m", 1)], T0 + 1)
    ledger.found_empty("lines", T0 + 5, T0 + 5.1)
    ledger.received("words", [_message("m", 2)], T0 + 9)
    assert _verdicts(ledger)["waited_for_visibility_timeout"] == 0


def test_the_last_allowed_receive_late_reports_and_kills_are_counted_apart(
    tmp_path: Path,
) -> None:
    ledger = DeliveryLedger(tmp_path / "ledger.jsonl")
    ledger.received("words", [_message("poison", 3), _message("slow", 1)], T0)
    ledger.settled("f", [_message("poison", 3)], T0 + 1)
    ledger.settled("f", [_message("slow", 1)], T0 + 25)  # after the 20 s visibility
    ledger.received("lines", [_message("held", 1)], T0)  # its consumer was killed
    ledger.found_empty("words", T0 + 30, T0 + 30.1)
    with (tmp_path / "ledger.jsonl").open("a") as cut_short:
        cut_short.write('{"e":"r","q":"wor')
    verdicts = _verdicts(ledger)
    assert verdicts == {
        "reported_failed": 2,
        "waited_for_visibility_timeout": 0,
        "back_within_retry_window": 0,
        "failed_into_dead_letter_queue": 1,
        "reported_after_visibility_timeout": 1,
        "held_by_killed_compactors": 1,
        "unreadable_ledger_lines": 1,
    }


def test_verdicts_on_a_real_queue(tmp_path: Path, mocked_aws: None) -> None:
    """Two messages are received and reported failed; only one has its visibility
    shortened (as the handler does). Polling the queue as a consumer would, the ledger
    finds that one back and the other waiting."""
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="words", Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    for body in ("reset", "not reset"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    ledger = DeliveryLedger(tmp_path / "ledger.jsonl")

    def receive() -> list[dict[str, Any]]:
        started = time.time()
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]
        ).get("Messages", [])
        if messages:
            ledger.received("words", messages, started)
        else:
            ledger.found_empty("words", started, time.time())
        return [dict(m) for m in messages]

    first = receive()
    assert len(first) == 2
    reset = next(m for m in first if m["Body"] == "reset")
    sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=reset["ReceiptHandle"], VisibilityTimeout=1
    )
    ledger.settled("f", first, time.time())
    deadline = time.monotonic() + TIMING.retry_window_max + 3
    while time.monotonic() < deadline:
        receive()
        time.sleep(0.2)

    verdicts = _verdicts(ledger)
    assert verdicts["back_within_retry_window"] == 1
    assert verdicts["waited_for_visibility_timeout"] == 1
