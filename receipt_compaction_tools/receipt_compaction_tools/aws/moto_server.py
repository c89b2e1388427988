"""``python -m receipt_compaction_tools.aws.moto_server [options]``: moto's server for the
local pipeline's load tests, with one emulator cost removed.

moto 5.2.5 checks each message that ReceiveMessage returns against the queue's retention
period by computing every queue attribute, approximate message counts included: a pass over
all the queue's messages per message returned, so a receive from a queue holding n messages
costs O(n²). The check here reads the retention period directly; what it decides is the same.
"""

from __future__ import annotations

from typing import Any

from moto.core.utils import unix_time
from moto.server import main
from moto.sqs.models import Message, SQSBackend


def _within_retention_period(self: SQSBackend, queue_name: str, message: Message) -> bool:
    queue: Any = self.get_queue(queue_name)  # moto sets queue attributes dynamically
    retention_seconds = int(queue.message_retention_period)
    sent_seconds = int(message.sent_timestamp or 0) / 1000
    return sent_seconds + retention_seconds > unix_time()


SQSBackend.is_message_valid_based_on_retention_period = _within_retention_period  # type: ignore[method-assign]

if __name__ == "__main__":
    main()
