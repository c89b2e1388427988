"""The reliability suite's sizes: ``ci`` (a few hundred changes, run by the tests) and
``full`` (``make reliability``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Scale:
    receipts: int
    changes: int
    crash_trials: int
    # Messages per compactor invocation. Full scale uses the deployed mappings' batch size
    # (infra COMPACTOR_BATCH_SIZE); CI scale a smaller one, so a few hundred changes still
    # span many batches.
    queue_batch: int
    # Changes written between two rounds of the pipeline in the sustained-load scenario:
    # writes keep arriving while the pipeline works, so freshness measures the latency of
    # a write, not how long a backlog of all of them takes to drain.
    load_slice: int = 250


SCALES = {
    "ci": Scale(receipts=12, changes=600, crash_trials=3, queue_batch=100),
    "full": Scale(receipts=60, changes=10_000, crash_trials=20, queue_batch=1000),
}
