"""What the snapshot reader hands out: the version answering a query, and the outcome of
a refresh."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from receipt_chroma.chroma_client import ClientCollection
from receipt_chroma.snapshots.stats import SnapshotStats


class RefreshKind(StrEnum):
    """How a refresh ended."""

    CURRENT = "current"  # the reader already served the version
    CATCH_UP = "catch_up"  # built from local files plus the objects that differ
    DOWNLOAD = "download"  # nothing local to reuse: every file fetched
    FAILED = "failed"  # the version was refused; the reader serves what it served before


@dataclass(frozen=True)
class ServedVersion:
    """One opened, verified and warmed version, pinned while a caller uses it."""

    version: str
    path: Path  # the persist directory
    collection: ClientCollection


@dataclass(frozen=True)
class ReaderAnswer:
    """A query's result and the version that answered it."""

    version: str
    result: Any


@dataclass(frozen=True)
class RefreshOutcome:
    """``version``: the version asked for (the pointer's unless given; None when the
    pointer could not be read). ``serving``: the version served afterwards. ``error``:
    why the version was refused (the reader keeps serving ``serving``). ``stats``: bytes
    and files fetched or reused. ``prepare_seconds``: building the copy; ``warm_seconds``:
    opening it and loading its index before the swap."""

    kind: RefreshKind
    version: str | None
    serving: str | None
    stats: SnapshotStats
    prepare_seconds: float = 0.0
    warm_seconds: float = 0.0
    error: Exception | None = None

    @property
    def swapped(self) -> bool:
        return self.kind in (RefreshKind.CATCH_UP, RefreshKind.DOWNLOAD)

    @property
    def reason(self) -> str | None:
        """The refusal in one line (``ErrorType: message``), or None."""
        if self.error is None:
            return None
        return f"{type(self.error).__name__}: {self.error}"
