"""The seam between a compaction cycle and where its effect goes (contract §12).

A cycle is: lease → the sink's ``apply`` → release. ``apply`` runs under the held lease:
it applies the batch (``process_collection_updates``: merges, keys, deletions, all per
§5.4), makes the effect durable — a published snapshot version, or every write
acknowledged by a Chroma server — and only then calls ``durable(update)``, where the cycle
marks the runs. It returns the batch's result, whose failures are the messages to report
failed, or raises what fails every message of the cycle (lease lost, pointer moved,
snapshot or server unavailable).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from receipt_chroma.compaction.models import CollectionUpdateResult, CycleResult

if TYPE_CHECKING:
    from receipt_chroma.compaction.lease import LockManager
    from receipt_dynamo_stream.models import StreamMessage

Durable = Callable[[CollectionUpdateResult], None]
"""Called once the sink holds the batch's effect durably (the cycle marks the runs)."""

Stage = Callable[[str], None]
"""Progress callback: a stage name (``applied``, ``committed``, …), for tests and logs."""


class Sink(Protocol):
    name: str

    def apply(
        self,
        messages: Sequence[tuple[str, StreamMessage]],
        lease: LockManager,
        result: CycleResult,
        durable: Durable,
    ) -> CollectionUpdateResult: ...
