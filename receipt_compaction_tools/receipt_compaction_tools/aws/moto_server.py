"""``python -m receipt_compaction_tools.aws.moto_server [options]``: moto's server for the
local pipeline's load tests, with one emulator cost removed.

moto 5.2.5 checks each message that ReceiveMessage returns against the queue's retention
period by computing every queue attribute, approximate message counts included: a pass over
all the queue's messages per message returned, so a receive from a queue holding n messages
costs O(n²). The check here reads the retention period directly; what it decides is the same.

Two more, each computing what moto computes, once instead of many times: a projected read
(Query, Scan, GetItem with a ProjectionExpression) converted the whole item to JSON once per
projected attribute, and every request listed moto's package folder from disk to learn
whether the request's host names a service.
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
from moto.server import main
from moto.sqs.models import Message, SQSBackend


def _within_retention_period(self: SQSBackend, queue_name: str, message: Message) -> bool:
    queue: Any = self.get_queue(queue_name)  # moto sets queue attributes dynamically
    retention_seconds = int(queue.message_retention_period)
    sent_seconds = int(message.sent_timestamp or 0) / 1000
    return sent_seconds + retention_seconds > unix_time()


SQSBackend.is_message_valid_based_on_retention_period = _within_retention_period  # type: ignore[method-assign]

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


Item.project = _project  # type: ignore[method-assign]
_list_moto_modules_from_disk = backends.list_of_moto_modules


@functools.cache
def _moto_modules() -> tuple[str, ...]:
    """moto's service folders, listed once: they do not change while the server runs."""
    return tuple(_list_moto_modules_from_disk())


backends.list_of_moto_modules = _moto_modules

if __name__ == "__main__":
    main()
