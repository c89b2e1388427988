"""Errors of the snapshot reader; each names the collection and what is wrong."""

from __future__ import annotations

from receipt_chroma.exceptions import ChromaClientError, SnapshotError


class ReaderBusyError(ChromaClientError):
    """The reader's directory is held by another process (one process per directory:
    chromadb must never have two processes on one persist directory)."""


class ReaderClosedError(ChromaClientError):
    """The reader was closed; it answers no more queries and refreshes no more."""


class NothingServedError(SnapshotError):
    """No version has been opened yet (no refresh succeeded), so there is nothing to
    query."""


class NoPointerError(SnapshotError):
    """The collection has no pointer item: nothing was ever published."""


class VersionCheckError(SnapshotError):
    """A verified copy does not open as the manifest describes it (no such collection,
    another record count or dimension): it is never served."""
