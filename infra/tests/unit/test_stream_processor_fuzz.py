"""Fuzz: malformed records mixed with good ones never make the stream Lambda raise, and
every good record's messages are published."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receipt_compaction_tools.aws import moto_fixes
from receipt_dynamo.testing import (
    make_compaction_run,
    make_label,
    make_metadata,
    make_word,
    stream_record,
)
from receipt_dynamo_stream import build_messages

IMAGE = "3f52804b-2fad-4e00-92c8-b593da3a8ed3"

GOOD_RECORDS = [
    stream_record("INSERT", new=make_metadata(IMAGE, 1)),
    stream_record(
        "MODIFY",
        old=make_label(IMAGE, 1, 1, 1),
        new=make_label(IMAGE, 1, 1, 1, validation_status="VALID"),
    ),
    stream_record("REMOVE", old=make_word(IMAGE, 1, 1, 2)),
    stream_record("INSERT", new=make_compaction_run(IMAGE, 1, "run-1")),
    stream_record("INSERT", new=make_word(IMAGE, 1, 1, 3)),  # irrelevant
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def mutated_record(draw: st.DrawFn) -> Any:
    """A good record with one part replaced by junk, or junk altogether."""
    if draw(st.booleans()):
        return draw(json_values)
    record = copy.deepcopy(draw(st.sampled_from(GOOD_RECORDS)))
    path = draw(
        st.sampled_from(
            [
                ("eventName",),
                ("dynamodb",),
                ("dynamodb", "Keys"),
                ("dynamodb", "Keys", "PK"),
                ("dynamodb", "Keys", "SK"),
                ("dynamodb", "SequenceNumber"),
                ("dynamodb", "NewImage"),
                ("dynamodb", "OldImage"),
                ("dynamodb", "ApproximateCreationDateTime"),
            ]
        )
    )
    target = record
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = draw(json_values)
    return record


@dataclass
class Queues:
    """The lines, words and DLQ queues, created once for the whole test (three new queues
    per example cost moto more than the handler call they check). Every example takes each
    queue's messages until it is empty, so the next one starts from empty queues; an example
    that stopped halfway (a failure, while hypothesis shrinks it) leaves messages behind,
    and the next example empties the queues before calling the handler."""

    urls: dict[str, str]
    sqs: Any = field(default_factory=lambda: boto3.client("sqs"))
    emptied: bool = True

    def start_example(self) -> None:
        if not self.emptied:
            for url in self.urls.values():
                self.take(url)
        self.emptied = False

    def take(self, url: str) -> list[dict[str, Any]]:
        """Every message's body, each deleted before its body is parsed."""
        found: list[dict[str, Any]] = []
        while batch := self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            self.sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)
                ],
            )
            found += [json.loads(m["Body"]) for m in batch]
        return found


@pytest.fixture
def queues(mocked_aws: None, monkeypatch: pytest.MonkeyPatch) -> Queues:
    moto_fixes.apply()  # a fifth of each receive was moto recounting the queue per message
    sqs = boto3.client("sqs")
    urls = {
        name: sqs.create_queue(QueueName=name)["QueueUrl"] for name in ("lines", "words", "dlq")
    }
    monkeypatch.setenv("LINES_QUEUE_URL", urls["lines"])
    monkeypatch.setenv("WORDS_QUEUE_URL", urls["words"])
    monkeypatch.setenv("STREAM_DLQ_URL", urls["dlq"])
    return Queues(urls, sqs)


@pytest.mark.slow(seconds=75)
@settings(
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    good=st.lists(st.sampled_from(GOOD_RECORDS), max_size=4),
    bad=st.lists(mutated_record(), max_size=4),
    order=st.randoms(use_true_random=False),
)
def test_handler_never_raises_and_publishes_every_good_record(
    queues: Queues,
    stream_processor: ModuleType,
    lambda_context: Any,
    good: list[dict[str, Any]],
    bad: list[Any],
    order: Any,
) -> None:
    batch = [*good, *bad]
    order.shuffle(batch)
    expected = build_messages(good).messages
    queues.start_example()

    response = stream_processor.lambda_handler({"Records": batch}, lambda_context)

    bodies = queues.take(queues.urls["lines"]) + queues.take(queues.urls["words"])
    parked = queues.take(queues.urls["dlq"])
    queues.emptied = True
    assert response == {"batchItemFailures": []}
    published = {
        (b["sequence_number"], b["collection"], b["entity_type"], b["event_name"]) for b in bodies
    }
    for sequence_number, message in expected:
        key = (sequence_number, message.collection, message.entity_type, message.event_name)
        assert key in published
    assert len(parked) <= len(bad)
