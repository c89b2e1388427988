"""The seam between a compaction cycle and where its effect goes (contract §12).

The cycle owns the stages (``receipt_chroma.stages``); a sink does two of them for its
store: ``open`` — the collection the batch is applied to, under the held lease — and
``commit`` — the applied collection made durable, in the sink's commit stages: a
published snapshot version, or every write acknowledged by a Chroma server under a
confirmed lease. Both raise what fails every
message of the cycle (lease lost, pointer moved, snapshot or server unavailable); after a
failure the cycle calls ``abandon`` (a changed working copy is deleted, never kept).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from receipt_chroma.chroma_client import ChromaClient
from receipt_chroma.snapshots.models import CacheTier
from receipt_chroma.snapshots.stats import SnapshotStats
from receipt_dynamo.entities import SnapshotPointer
from receipt_dynamo_stream.compactor_defaults import SinkKind

if TYPE_CHECKING:
    from receipt_chroma.compaction.lease import LockManager
    from receipt_chroma.stages import StageRunner


@dataclass
class OpenedCollection:
    """The open stage's result: the client the batch is written through (not yet
    entered) and, for a snapshot, the version it starts from and where the copy came from."""

    client: ChromaClient
    base: SnapshotPointer | None = None
    tier: CacheTier | None = None
    stats: SnapshotStats = field(default_factory=SnapshotStats)
    # False: the sink's commit decides when the client closes (the snapshot sink keeps its
    # working copy's client open between cycles).
    close_after_apply: bool = True


@dataclass
class Commit:
    """The commit stage's result. ``published``: the version a snapshot commit published
    (None: nothing was written, the copy is still its base version, or a server commit).
    ``errors``: derived caches that could not be brought in line (never unpublishing)."""

    published: SnapshotPointer | None = None
    errors: list[str] = field(default_factory=list)


class Sink(Protocol):
    kind: SinkKind

    def open(self, lease: LockManager) -> OpenedCollection: ...

    def commit(
        self, opened: OpenedCollection, lease: LockManager, stages: StageRunner
    ) -> Commit: ...

    def abandon(self, opened: OpenedCollection) -> None: ...
