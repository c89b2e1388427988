"""What a worker process (``local/worker.py``) prints: its summary line, and the publishes
its compactor logged."""

from __future__ import annotations

import json
from typing import Any


def worker_summary(output: str) -> dict[str, Any]:
    """The summary a worker prints when it ends (its pump statistics, with the cycles read
    from the handler's metrics); log lines may follow it."""
    for line in reversed(output.splitlines()):
        if line.startswith("{") and '"cycles"' in line:
            summary: dict[str, Any] = json.loads(line)
            return summary
    raise ValueError(f"the worker printed no summary; its output ends: {output[-2000:]!r}")


def publishes_from_logs(output: str) -> list[tuple[str, str | None, str]]:
    """(collection, base version, published version) of every publish a worker logged."""
    publishes = []
    for line in output.splitlines():
        if '"compaction cycle finished"' in line:
            entry = json.loads(line)
            if entry.get("version"):
                publishes.append((entry["collection"], entry.get("base_version"), entry["version"]))
    return publishes
