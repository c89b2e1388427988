"""Types of the compactor Lambda's work around a cycle: the queue records it reads (as
Powertools' ``SQSRecord`` presents them), the messages they hold, the outcome of a
visibility reset and the metrics a cycle reports."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

from receipt_dynamo.constants import ChromaDBCollection
from receipt_dynamo_stream.exceptions import MessageValidationError
from receipt_dynamo_stream.models import StreamMessage


class QueueAttribute(Protocol):
    """One message attribute of an SQS record (Powertools' ``SQSMessageAttribute``)."""

    @property
    def string_value(self) -> str | None: ...


class QueueAttributes(Protocol):
    """An SQS record's message attributes by name; None for an attribute it lacks."""

    def __getitem__(self, key: str, /) -> QueueAttribute | None: ...


class QueueRecord(Protocol):
    """One record of Lambda's SQS event, as Powertools' ``SQSRecord`` presents it: each
    property raises KeyError when the record lacks its field."""

    @property
    def message_id(self) -> str: ...
    @property
    def receipt_handle(self) -> str: ...
    @property
    def event_source_arn(self) -> str: ...
    @property
    def body(self) -> str: ...
    @property
    def message_attributes(self) -> QueueAttributes: ...


RecordT = TypeVar("RecordT", bound=QueueRecord)
MessagePairs = list[tuple[str, StreamMessage]]


@dataclass
class QueueBatch(Generic[RecordT]):
    """The records of one event: each record by its message id, the valid messages by
    collection (in the event's order) and the error of each invalid record."""

    records: dict[str, RecordT] = field(default_factory=dict)
    messages: dict[ChromaDBCollection, MessagePairs] = field(default_factory=dict)
    invalid: dict[str, MessageValidationError] = field(default_factory=dict)

    def records_of(self, message_ids: Iterable[str]) -> list[RecordT]:
        """The records of ``message_ids`` that belong to this batch."""
        return [self.records[m] for m in message_ids if m in self.records]


class EventLogger(Protocol):
    """Anything with ``info``/``error(msg, extra=...)``: a stdlib or Powertools logger."""

    def info(self, msg: object, *args: Any, **kwargs: Any) -> None: ...
    def error(self, msg: object, *args: Any, **kwargs: Any) -> None: ...


@dataclass
class VisibilityReset:
    """The outcome of shortening the visibility of messages reported failed (§7)."""

    timeout_seconds: int
    reset: int = 0  # messages whose visibility was changed
    failed: int = 0  # messages whose visibility could not be changed


# CloudWatch units of the compactor's metrics (contract §9), as Powertools accepts them.
MetricUnitName = Literal["Count", "Bytes", "Milliseconds"]


@dataclass(frozen=True)
class CycleMetric:
    """One metric a cycle reports under its collection's dimension."""

    name: str
    unit: MetricUnitName
    value: float
