"""Keeping ``chroma.sqlite3`` small before it is published.

SQLite never gives deleted pages back to the file system: a planned HNSW flush purges the
log of every vector it indexed, and deletions free pages too, but the pages stay in the
file with their old bytes (stale float32 vectors that do not compress). As every publish
uploads the whole database file, those pages cost bytes on every version. When more than
``FREE_PAGE_SHARE`` of the pages are free, the closed database is ``VACUUM``-ed (what
chromadb's own ``chroma utils vacuum`` does): measured on a 20,000 x 1536-d collection,
45 MB with 2,000 free pages became 34 MB, and its zstd object 12.4 MB → 5.3 MB, in ~1 s.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from receipt_chroma.exceptions import SnapshotError

FREE_PAGE_SHARE: Final = 0.05


@dataclass(frozen=True)
class Compaction:
    bytes_before: int
    bytes_after: int
    vacuumed: bool


def compact_database(
    path: Path,
    free_page_share: float = FREE_PAGE_SHARE,
    *,
    before_vacuum: Callable[[], None] | None = None,
) -> Compaction:
    """VACUUM ``path/chroma.sqlite3`` when it is sparse. No client may be open on it then:
    ``before_vacuum`` runs first (it closes one that is)."""
    database = path / "chroma.sqlite3"
    before = database.stat().st_size
    connection = sqlite3.connect(database, isolation_level=None)
    try:
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        free = connection.execute("PRAGMA freelist_count").fetchone()[0]
        if not pages or free <= free_page_share * pages:
            return Compaction(before, before, vacuumed=False)
        if before_vacuum is not None:
            before_vacuum()
        connection.execute("VACUUM")
    except sqlite3.Error as error:
        raise SnapshotError(f"{database}: VACUUM failed: {error}") from error
    finally:
        connection.close()
    return Compaction(before, database.stat().st_size, vacuumed=True)
