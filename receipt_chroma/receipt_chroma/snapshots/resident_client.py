"""The working copy's Chroma client, kept open from one cycle to the next.

Opening a copy replays every log entry its HNSW files do not hold into memory: with the
flush policy's raised ``sync_threshold`` that is every vector added since the last flush,
3-10 ms each at 1536-d (``docs/architecture.md``). A client closed after each cycle made
every cycle of a warm container re-index the same records again, more of them each cycle
until the next flush. Kept open, the container indexes each record once.

The bytes a publish hashes are still those of the closed directory: chromadb 1.5.9 commits
every write call to ``chroma.sqlite3`` (rollback journal, no WAL) and writes the HNSW files
when the vector segment persists or first loads an index whose log holds unindexed records
(it replays them into the mapped files); an idle client writes nothing, so its directory is
byte for byte what closing it leaves (the canary is in
``tests/integration/test_warm_container_indexes_once.py``).

The client is closed before anything else opens or changes the directory: another client
of the same path in this process would share its chromadb system (a reopen would not
reopen), and a flush only works on a closed directory. ``WorkingCopy`` closes it before it
replaces or deletes the copy; ``prepare_directory`` before a flush, a ``VACUUM``, a reopen
check or a change of the threshold. A client that is never closed explicitly is closed
when its working copy is collected.
"""

from __future__ import annotations

import weakref
from pathlib import Path

from chromadb.api.shared_system_client import SharedSystemClient

from receipt_chroma.chroma_client import ChromaClient
from receipt_chroma.exceptions import SnapshotError


class ResidentClient:
    """At most one open write client on ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._client: ChromaClient | None = None
        self._finalizer: weakref.finalize[[], ResidentClient] | None = None

    @property
    def is_open(self) -> bool:
        return self._client is not None

    def open(self) -> ChromaClient:
        """The open client (a new one when none is open), with no write recorded yet."""
        if self._client is None:
            self._client = ChromaClient(self.path, mode="write")
            self._finalizer = weakref.finalize(self, self._client.close)
        self._client.wrote = False
        return self._client

    def close(self) -> None:
        """Close the client (flushing and releasing the directory); no-op when none is open."""
        client, finalizer = self._client, self._finalizer
        self._client = self._finalizer = None
        if finalizer is not None:
            finalizer.detach()
        if client is not None:
            client.close()

    def release(self) -> None:
        """Close the client, and make sure no other client in this process still holds the
        directory: what comes next (a flush, a reopen) must open it afresh, and would
        silently not while another client kept chromadb's shared system alive.

        Raises SnapshotError naming the directory when one does."""
        self.close()
        if str(self.path) in SharedSystemClient._identifier_to_system:
            raise SnapshotError(
                f"{self.path}: another Chroma client in this process still holds the working "
                "copy; it cannot be flushed or reopened until that client is closed"
            )
