"""A pipeline process for the reliability suite, killable at any moment.

``python -m receipt_compaction_tools.local.worker CONFIG.json`` — the config's ``role`` is
``compactor`` (the default: consumes the lines and words queues with the real handler, as a
Standard queue's consumer under injected faults, until the queues stay empty) or ``stream``
(delivers the table's stream to the real stream handler from a checkpoint file, until the
stream stays quiet). The environment carries the endpoint and the handlers' settings.
Prints a JSON summary when it exits normally.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from receipt_compaction_tools.local.delivery_ledger import DeliveryLedger
from receipt_compaction_tools.local.pump_stats import PumpStats
from receipt_compaction_tools.local.queue_consumer import QueueChaos, QueueConsumer
from receipt_compaction_tools.local.stream_pump import StreamPump


def consume(config: dict[str, Any]) -> dict[str, Any]:
    stats = PumpStats()
    ledger = config.get("ledger")
    consumer = QueueConsumer(
        config["queues"],
        stats,
        batch=config.get("batch", 50),
        chaos=QueueChaos(**config.get("chaos", {})),
        ledger=DeliveryLedger(Path(ledger)) if ledger else None,
        release_failed=config.get("release_failed", True),
    )
    _until_idle(config, consumer.poll_once)
    return _summary(stats)


def pump(config: dict[str, Any]) -> dict[str, Any]:
    stats = PumpStats()
    stream = StreamPump(
        config["stream_arn"],
        stats,
        batch=config.get("batch", 100),
        checkpoint=Path(config["checkpoint"]),
    )
    _until_idle(config, lambda: stream.pump() > 0)
    return _summary(stats)


def _until_idle(config: dict[str, Any], step: Callable[[], bool]) -> None:
    """Run ``step`` until it finds nothing to do ``idle_polls`` times running."""
    deadline = time.monotonic() + config.get("deadline_seconds", 600)
    idle = 0
    while time.monotonic() < deadline and idle < config.get("idle_polls", 4):
        if step():
            idle = 0
        else:
            idle += 1
            time.sleep(config.get("idle_sleep", 0.5))


def _summary(stats: PumpStats) -> dict[str, Any]:
    # Not dataclasses.asdict: it rebuilds a Counter from (key, count) pairs, counting them.
    values = {f.name: getattr(stats, f.name) for f in dataclasses.fields(stats)}
    return {k: _json_ready(v) for k, v in values.items()}


def _json_ready(value: Any) -> Any:
    """Counters and mappings as objects, sets (``unapplied`` ids) as sorted lists."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, set):
        return sorted(value)
    return value


ROLES = {"compactor": consume, "stream": pump}


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    print(json.dumps(ROLES[config.get("role", "compactor")](config)))


if __name__ == "__main__":
    main()
