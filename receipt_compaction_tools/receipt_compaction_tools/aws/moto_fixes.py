"""Emulator costs removed from moto 5.2.5, each computing what moto computes, once instead
of many times; ``apply()`` installs them (the own-process server at start, the test plugin's
in-process server before it starts).

- ReceiveMessage checks each message it returns against the queue's retention period by
  computing every queue attribute, approximate message counts included: a pass over all the
  queue's messages per message returned, so a receive from a queue holding n messages costs
  O(n²). The check here reads the retention period directly; what it decides is the same.
- A projected DynamoDB read (Query, Scan, GetItem with a ProjectionExpression) converted the
  whole item to JSON once per projected attribute (the compactor's receipt read projects
  ~20); here once per item.
- The server listed moto's package folder from disk on every request to learn whether the
  request's host names a service; here once.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from botocore.utils import merge_dicts
from moto import backends
from moto.core.utils import unix_time
from moto.dynamodb.models.dynamo_type import Item, serializer
from moto.dynamodb.models.utilities import find_nested_key
from moto.sqs.models import Message, SQSBackend


def _within_retention_period(self: SQSBackend, queue_name: str, message: Message) -> bool:
    queue: Any = self.get_queue(queue_name)  # moto sets queue attributes dynamically
    retention_seconds = int(queue.message_retention_period)
    sent_seconds = int(message.sent_timestamp or 0) / 1000
    return sent_seconds + retention_seconds > unix_time()


_project_converting_per_path = Item.project


def _project(self: Item, projection_expressions: list[list[str]]) -> Item:
    """moto's ``Item.project`` with the item converted once. Paths under distinct top-level
    attributes read disjoint parts of the conversion, so sharing it changes nothing; paths
    sharing one (``a.b`` and ``a.c``) go to moto's own code, where merging one path's
    result may alter what the next one reads."""
    roots = [re.sub(r"\[\d+\]$", "", path[0]) for path in projection_expressions]
    if len(set(roots)) != len(roots):
        return _project_converting_per_path(self, projection_expressions)
    item = self.to_regular_json()
    projected: dict[str, Any] = {}
    for path in projection_expressions:
        merge_dicts(projected, find_nested_key(path, item))
    return Item(
        hash_key=self.hash_key,
        range_key=self.range_key,
        attrs=dict(serializer.serialize(projected)["M"]),
    )


_list_moto_modules_from_disk = backends.list_of_moto_modules


@functools.cache
def _moto_modules() -> tuple[str, ...]:
    """moto's service folders, listed once: they do not change while the server runs."""
    return tuple(_list_moto_modules_from_disk())


def apply() -> None:
    """Install the three (again is harmless)."""
    SQSBackend.is_message_valid_based_on_retention_period = _within_retention_period  # type: ignore[method-assign]
    Item.project = _project  # type: ignore[method-assign]
    backends.list_of_moto_modules = _moto_modules
