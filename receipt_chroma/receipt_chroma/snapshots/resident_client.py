"""The working copy's Chroma client, kept open from one cycle to the next.

Opening a copy replays every log entry its HNSW files do not hold into memory: with the
flush policy's raised ``sync_threshold`` that is every vector added since the last flush,
3-10 ms each at 1536-d (``docs/architecture.md``). A client closed after each cycle made
every cycle of a warm container re-index the same records again, more of them each cycle
until the next flush. Kept open, the container indexes each record once.

The bytes a publish hashes are still those of the closed directory: chromadb 1.5.9 commits
every write call to ``chroma.sqlite3`` (rollback journal, no WAL) and writes the HNSW files
only when the vector segment persists, so an idle client's directory is byte for byte what
closing it leaves (``tests/unit/test_snapshot_resident_client.py`` is the canary).

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

from receipt_chroma.chroma_client import ChromaClient


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
