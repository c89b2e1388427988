"""Contract §7 (rev 3): the messages a compactor reports failed get a jittered short
visibility with ``ChangeMessageVisibilityBatch`` (queue URL from each record's
``eventSourceARN``, at most 10 entries per call), so they come back early. A reset that
fails is logged and counted and never raises. Real messages on an in-process moto queue,
read as Powertools' ``SQSRecord``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from aws_lambda_powertools.utilities.data_classes import SQSRecord
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from moto import mock_aws

from receipt_chroma.lambda_support import (
    QueueArnError,
    queue_url,
    reset_visibility,
    schedule_retry,
)

if TYPE_CHECKING:
    from types_boto3_sqs.client import SQSClient

REGION = "us-east-1"
QUEUE_VISIBILITY_SECONDS = 600  # far beyond any wait here: a message back was reset
NOW = (0, 0)  # a window whose reset makes messages visible at once
LOGGER = logging.getLogger("failed_messages_retry_early")  # propagates to caplog


@pytest.fixture
def sqs() -> Iterator[SQSClient]:
    with mock_aws():
        yield boto3.client("sqs", region_name=REGION)


def _queue(sqs: SQSClient, name: str = "words") -> tuple[str, str]:
    url = sqs.create_queue(
        QueueName=name, Attributes={"VisibilityTimeout": str(QUEUE_VISIBILITY_SECONDS)}
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def _in_flight(sqs: SQSClient, count: int, name: str = "words") -> tuple[str, list[SQSRecord]]:
    """``count`` messages sent and received (in flight for 600 s), as Lambda's records."""
    url, arn = _queue(sqs, name)
    for index in range(count):
        sqs.send_message(QueueUrl=url, MessageBody=f"message {index}")
    records: list[SQSRecord] = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        records += [
            SQSRecord(
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "messageAttributes": {},
                    "eventSourceARN": arn,
                }
            )
            for m in batch
        ]
    assert len(records) == count
    return url, records


def _visible(sqs: SQSClient, url: str) -> set[str]:
    seen: set[str] = set()
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        seen |= {m["MessageId"] for m in batch}
    return seen


def _not_reset(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [r.__dict__ for r in caplog.records if r.getMessage() == "visibility not reset"]


def test_every_failed_message_comes_back_and_is_counted(sqs: SQSClient) -> None:
    url, records = _in_flight(sqs, 23)
    requests: list[int] = []
    sqs.meta.events.register(
        "before-parameter-build.sqs.ChangeMessageVisibilityBatch",
        lambda params, **_: requests.append(len(params["Entries"])),
    )

    outcome = reset_visibility(records, NOW, sqs_client={REGION: sqs}.__getitem__, logger=LOGGER)

    assert (outcome.timeout_seconds, outcome.reset, outcome.failed) == (0, 23, 0)
    assert _visible(sqs, url) == {r.message_id for r in records}
    assert requests == [10, 10, 3]  # SQS takes at most 10 entries per call


@pytest.mark.parametrize(("window", "allowed"), [((30, 90), range(30, 91)), ((45, 45), [45])])
def test_the_timeout_is_one_draw_from_the_window(
    window: tuple[int, int], allowed: range | list[int]
) -> None:
    draws = {
        reset_visibility([], window, sqs_client=lambda _: pytest.fail("no call")).timeout_seconds
        for _ in range(50)
    }
    assert draws <= set(allowed)
    assert len(draws) > 1 if len(allowed) > 1 else len(draws) == 1  # jittered, not fixed


def test_an_entry_sqs_refuses_is_logged_and_counted_while_the_rest_come_back(
    sqs: SQSClient, caplog: pytest.LogCaptureFixture
) -> None:
    url, records = _in_flight(sqs, 4)
    spoiled = SQSRecord({**records[0].raw_event, "receiptHandle": "not-a-receipt-handle"})

    outcome = reset_visibility(
        [spoiled, *records[1:]], NOW, sqs_client={REGION: sqs}.__getitem__, logger=LOGGER
    )

    assert (outcome.reset, outcome.failed) == (3, 1)
    assert _visible(sqs, url) == {r.message_id for r in records[1:]}
    (failure,) = _not_reset(caplog)
    assert failure["message_id"] == spoiled.message_id
    assert failure["code"] == "ReceiptHandleIsInvalid"
    assert failure["queue_url"] == url


def test_a_refused_call_fails_its_messages_and_nothing_raises(
    sqs: SQSClient, caplog: pytest.LogCaptureFixture
) -> None:
    url, records = _in_flight(sqs, 12)

    # A botocore before-call hook: the (response, parsed body) it returns answers the call.
    def access_denied(params: dict[str, Any], **_: Any) -> Any:
        error = {"Code": "AccessDenied", "Message": "not authorized: sqs:ChangeMessageVisibility"}
        return AWSResponse(params["url"], 403, HTTPHeaders(), None), {
            "Error": error,
            "ResponseMetadata": {"HTTPStatusCode": 403},
        }

    sqs.meta.events.register("before-call.sqs.ChangeMessageVisibilityBatch", access_denied)

    outcome = reset_visibility(records, NOW, sqs_client={REGION: sqs}.__getitem__, logger=LOGGER)

    assert (outcome.reset, outcome.failed) == (0, 12)
    assert _visible(sqs, url) == set()  # still under the queue's own visibility timeout
    failures = _not_reset(caplog)
    assert sorted(len(f["message_ids"]) for f in failures) == [2, 10]
    assert all("AccessDenied" in f["error"] for f in failures)


def test_records_that_name_no_queue_are_counted_failed_and_the_others_come_back(
    sqs: SQSClient, caplog: pytest.LogCaptureFixture
) -> None:
    url, records = _in_flight(sqs, 5)
    no_handle = SQSRecord({k: v for k, v in records[0].raw_event.items() if k != "receiptHandle"})
    no_arn = SQSRecord({**records[1].raw_event, "eventSourceARN": ""})
    not_a_queue = SQSRecord({**records[2].raw_event, "eventSourceARN": "arn:aws:sns:x:1:t"})
    other_region = SQSRecord(
        {**records[3].raw_event, "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:words"}
    )
    batch = [no_handle, no_arn, not_a_queue, other_region, records[4]]

    # This container has no client for eu-west-1: that record cannot be reset either.
    outcome = reset_visibility(batch, NOW, sqs_client={REGION: sqs}.__getitem__, logger=LOGGER)

    assert (outcome.reset, outcome.failed) == (1, 4)
    assert _visible(sqs, url) == {records[4].message_id}
    failures = _not_reset(caplog)
    named = {f["message_id"] for f in failures if "message_id" in f} | {
        m for f in failures for m in f.get("message_ids", [])
    }
    assert named == {r.message_id for r in batch[:4]}
    assert any(
        "QueueArnError" in f["error"] and "arn:aws:sns:x:1:t" in f["error"] for f in failures
    )


def test_the_outcome_is_logged_with_the_cause(
    sqs: SQSClient, caplog: pytest.LogCaptureFixture
) -> None:
    _, records = _in_flight(sqs, 2)
    caplog.set_level(logging.INFO)

    reset = schedule_retry(
        records,
        (2, 3),
        reason="lease_acquisition",
        collection="words",
        sqs_client={REGION: sqs}.__getitem__,
        logger=LOGGER,
    )

    (line,) = [
        r.__dict__
        for r in caplog.records
        if r.getMessage() == "failed messages scheduled for early retry"
    ]
    assert {k: line[k] for k in ("collection", "cause", "reset", "failed")} == {
        "collection": "words",
        "cause": "lease_acquisition",
        "reset": 2,
        "failed": 0,
    }
    assert line["visibility_timeout_seconds"] == reset.timeout_seconds in (2, 3)


def test_the_queue_url_is_the_regional_endpoint_with_account_and_name(sqs: SQSClient) -> None:
    url, arn = _queue(sqs, "lines")
    client, built = queue_url(arn, {REGION: sqs}.__getitem__)
    assert client is sqs
    assert built == url
    for malformed in ("words", "arn:aws:sqs:us-east-1:123456789012", "arn:aws:sqs::1:words"):
        with pytest.raises(QueueArnError, match="not an SQS queue ARN"):
            queue_url(malformed, {REGION: sqs}.__getitem__)
