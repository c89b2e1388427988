"""A compactor process: consumes the lines and words queues with the real handler, as a
Standard queue's consumer under injected faults, until the queues stay empty.

``python -m receipt_chroma.local.worker CONFIG.json`` — the config names the queue URLs,
the chaos rates and a deadline; the environment carries the endpoint and the compactor's
settings. Prints a JSON summary when it exits normally.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from receipt_chroma.local.pump import PumpStats, QueueChaos, QueueConsumer


def consume(config: dict[str, Any]) -> dict[str, Any]:
    stats = PumpStats()
    consumer = QueueConsumer(
        config["queues"],
        stats,
        batch=config.get("batch", 50),
        chaos=QueueChaos(**config.get("chaos", {})),
    )
    deadline = time.monotonic() + config.get("deadline_seconds", 600)
    idle = 0
    while time.monotonic() < deadline and idle < config.get("idle_polls", 4):
        if consumer.poll_once():
            idle = 0
        else:
            idle += 1
            time.sleep(config.get("idle_sleep", 0.5))
    summary = dataclasses.asdict(stats)
    return {k: dict(v) if isinstance(v, dict) else v for k, v in summary.items()}


def main() -> None:
    print(json.dumps(consume(json.loads(Path(sys.argv[1]).read_text()))))


if __name__ == "__main__":
    main()
