"""The snapshot sink (contract §5.2 and §6): the working copy of the published version
from the cheapest tier, and a new version published by the compare-and-swap of the pointer
under the lease (``receipt_chroma.snapshots``).
"""

from __future__ import annotations

from receipt_chroma.chroma_client import ChromaClient
from receipt_chroma.compaction.lease import LockManager
from receipt_chroma.compaction.sinks.base import Commit, OpenedCollection
from receipt_chroma.snapshots.base import open_base
from receipt_chroma.snapshots.files import directory_entries
from receipt_chroma.snapshots.hnsw import index_state
from receipt_chroma.snapshots.manifest import FileEntry, Manifest
from receipt_chroma.snapshots.publisher import commit_version
from receipt_chroma.snapshots.service import CollectionSnapshots
from receipt_chroma.snapshots.stats import SnapshotStats
from receipt_chroma.stages import Stage, StageRunner
from receipt_dynamo_stream.compactor_defaults import SinkKind


class SnapshotSink:
    """Opens the working copy and publishes it; keeps the warm copy between cycles (one
    sink per collection per container)."""

    kind = SinkKind.SNAPSHOT

    def __init__(self, snapshots: CollectionSnapshots) -> None:
        self.snapshots = snapshots
        self.working = snapshots.working
        # The label of the copy as opened, given back when no write call reached it.
        self._label: Manifest | None = None
        # The files the copy held once its client had loaded the index (the publish
        # checks from the files while its HNSW files are still these).
        self._base_files: tuple[FileEntry, ...] | None = None

    def open(self, lease: LockManager) -> OpenedCollection:
        stats = SnapshotStats()
        pointer, tier = open_base(self.snapshots, stats, lease)
        # Unlabelled before the first write, so a crash mid-apply never leaves unpublished
        # writes under the published version's label.
        self._label = self.working.manifest()
        self.working.mark_dirty()
        # The client kept open since the last cycle on a warm copy: the records it indexed
        # stay indexed (``snapshots.resident_client``); the publish closes it when needed.
        fresh = not self.working.client.is_open
        client = self.working.client.open()
        self._base_files = self._label.files if self._label is not None else None
        if fresh and self._label is not None:
            self._base_files = self._load_index(client)
        return OpenedCollection(
            client, base=pointer, tier=tier, stats=stats, close_after_apply=False
        )

    def _load_index(self, client: ChromaClient) -> tuple[FileEntry, ...] | None:
        """Load a freshly opened copy's index now and return its files as they are then.

        chromadb rewrites ``data_level0.bin`` and ``length.bin`` in place when it loads an
        index whose log holds unindexed records (it replays them into the mapped files), so
        after the first load they no longer match the label; the apply would load it
        anyway. Comparing the published files with these keeps the check from the files
        (and the client open) from the container's first cycle on. None: nothing to load."""
        path, name = self.working.path, self.snapshots.collection
        if not index_state(path, name).unindexed_records:
            return self._label.files if self._label is not None else None
        client.get_collection(name).peek(1)  # the vector segment loads and replays the log
        return tuple(directory_entries(path))

    def commit(self, opened: OpenedCollection, lease: LockManager, stages: StageRunner) -> Commit:
        """Publish the applied copy — or, when no write call reached it, give it its label
        back. Raises (before the pointer moved) what fails the cycle's messages."""
        base = opened.base
        if base is not None and not opened.client.wrote:
            with stages.run(Stage.COMMIT):
                # No write call reached the copy: it still is that version. Its runs are
                # marked under the lease (§5.4), so the lease is confirmed first.
                lease.heartbeat()
                lease.ensure_held()
                self.working.relabel_unwritten(base.version, self._label)
            return Commit()
        errors: list[str] = []
        # The files the copy held when opened (its label, or as the first load of its
        # index left them): while its HNSW files are still those, the check needs no reopen.
        published = commit_version(
            self.snapshots,
            base,
            lease,
            stats=opened.stats,
            errors=errors,
            stages=stages,
            base_files=self._base_files,
        )
        return Commit(published=published, errors=errors)

    def abandon(self, opened: OpenedCollection) -> None:
        """After a failed cycle: a copy that received a write call is deleted (§5.2); one
        that did not keeps its version's label (and its open client), so the next cycle
        starts warm."""
        if opened.client.wrote or opened.base is None:
            self.working.discard()  # closes the client
        else:
            self.working.relabel_unwritten(opened.base.version, self._label)
