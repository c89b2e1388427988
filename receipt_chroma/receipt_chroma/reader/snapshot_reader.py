"""A query-side reader of a collection's published snapshots that never makes a query
wait for a download or an index build.

It follows the pointer item (contract §6: the item is the only source of truth;
``latest-pointer.txt`` is a cache that may lag). A refresh builds the new version
*beside* the one serving: files a local copy already has (checked by sha256 while they
are copied) plus the objects that differ, verified like every read of a version. Then it
opens the copy with its own chromadb client, checks it against the manifest (collection,
record count, dimension) and warms it — one query loads the HNSW index and replays the
unindexed records — and only then swaps it in under a lock. Queries pin the version they
use; a swap never closes a version under a query. A refresh that fails leaves the
serving version in place and says why (``RefreshOutcome``, a warning in the log).

Old copies are pruned after every refresh: the directory keeps the serving copy and any
older one a query still holds (deleted at the next refresh once released).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from receipt_chroma.chroma_client import ChromaClient, ClientCollection
from receipt_chroma.reader.copies import (
    DirectoryLock,
    LocalCopy,
    build_copy,
    copy_sources,
    delete_entry,
    list_copies,
    objects_source,
    remove_unkept,
)
from receipt_chroma.reader.exceptions import (
    NoPointerError,
    NothingServedError,
    ReaderClosedError,
    VersionCheckError,
)
from receipt_chroma.reader.models import ReaderAnswer, RefreshKind, RefreshOutcome, ServedVersion
from receipt_chroma.snapshots.manifest import Manifest
from receipt_chroma.snapshots.s3_store import S3SnapshotStore
from receipt_chroma.snapshots.stats import SnapshotStats
from receipt_dynamo.data.dynamo_client import DynamoClient

_LOGGER = logging.getLogger(__name__)


@dataclass(eq=False)
class _Opened:
    """A copy open in its own client, and how many callers use it now."""

    copy: LocalCopy
    client: ChromaClient
    collection: ClientCollection
    users: int = 0


class SnapshotReader:
    """Serves queries on the published snapshot of ``collection``, from copies under
    ``directory`` (private to this process while the reader is open).

    ``refresh()`` brings it to the pointer's version (or a named one); ``follow(seconds)``
    refreshes on a background thread; ``use()`` pins the served version for a few calls;
    ``query(...)`` is one pinned query. Close it (or use it as a context manager): the
    serving copy stays on disk for the next reader of the directory.
    """

    def __init__(
        self,
        *,
        collection: str,
        store: S3SnapshotStore,
        dynamo: DynamoClient,
        directory: str | Path,
        logger: logging.Logger = _LOGGER,
    ) -> None:
        self.collection = collection
        self.directory = Path(directory)
        self._store = store
        self._dynamo = dynamo
        self._logger = logger
        self._lock = DirectoryLock(self.directory)
        self._lock.acquire()
        self._state = threading.Condition()  # guards _serving, _retired, _closed, users
        self._refreshing = threading.Lock()  # one refresh at a time; queries never take it
        self._serving: _Opened | None = None
        self._retired: list[_Opened] = []
        self._closed = False
        self._last: RefreshOutcome | None = None
        self._stop = threading.Event()
        self._follower: threading.Thread | None = None
        remove_unkept(self.directory, set(), keep_copies=True)  # builds a crash left behind

    # --- state ------------------------------------------------------------------------------

    @property
    def version(self) -> str | None:
        """The version queries are answered from now (None before the first swap)."""
        with self._state:
            return None if self._serving is None else self._serving.copy.version

    @property
    def last_refresh(self) -> RefreshOutcome | None:
        return self._last

    # --- queries ----------------------------------------------------------------------------

    @contextmanager
    def use(self) -> Iterator[ServedVersion]:
        """The served version, pinned: a refresh may swap in a newer one meanwhile, but
        this one stays open until the block ends."""
        with self._state:
            if self._closed:
                raise ReaderClosedError(f"the {self.collection} reader is closed")
            opened = self._serving
            if opened is None:
                why = self._last.reason if self._last is not None else None
                raise NothingServedError(
                    f"{self.collection}: no version is served yet"
                    + (f" (last refresh: {why})" if why else " (no refresh has run)")
                )
            opened.users += 1
        try:
            yield ServedVersion(opened.copy.version, opened.copy.data, opened.collection)
        finally:
            with self._state:
                opened.users -= 1
                self._state.notify_all()

    def query(self, **kwargs: Any) -> ReaderAnswer:
        """``collection.query(**kwargs)`` on the served version."""
        with self.use() as served:
            return ReaderAnswer(served.version, served.collection.query(**kwargs))

    # --- refreshing -------------------------------------------------------------------------

    def refresh(
        self, version: str | None = None, *, objects_dirs: Sequence[Path] = ()
    ) -> RefreshOutcome:
        """Serve ``version`` (the pointer's when None). Local files known by sha256 — the
        reader's copies, and ``objects_dirs`` (directories of files named by their sha256)
        — are used instead of downloading them. Never
        raises for a version that cannot be served: the outcome says why, and the reader
        keeps serving what it served before."""
        with self._refreshing:
            if self._closed:
                raise ReaderClosedError(f"the {self.collection} reader is closed")
            stats = SnapshotStats()
            target = version
            try:
                if target is None:
                    target = self._pointer_version()
                if target == self.version:
                    outcome = RefreshOutcome(RefreshKind.CURRENT, target, target, stats)
                else:
                    outcome = self._replace(target, stats, objects_dirs)
            except Exception as error:  # reported in the outcome and the log; old version kept
                outcome = RefreshOutcome(
                    RefreshKind.FAILED, target, self.version, stats, error=error
                )
                self._logger.warning(
                    "snapshot reader refused a version; serving the previous one",
                    extra={
                        "collection": self.collection,
                        "version": target,
                        "serving": outcome.serving,
                        "reason": outcome.reason,
                    },
                )
            self._last = outcome
            try:
                self._prune()
            except Exception as error:  # copies left on disk are pruned by a later refresh
                self._logger.warning(
                    "snapshot reader could not prune old copies",
                    extra={"collection": self.collection, "reason": f"{error!r}"},
                )
            return outcome

    def _pointer_version(self) -> str:
        pointer = self._dynamo.get_snapshot_pointer(self.collection)
        if pointer is None:
            raise NoPointerError(f"{self.collection} has no pointer item: nothing is published")
        return pointer.version

    def _replace(
        self, version: str, stats: SnapshotStats, objects_dirs: Sequence[Path]
    ) -> RefreshOutcome:
        """Prepare ``version`` beside the serving copy, open and warm it, then swap."""
        started = time.perf_counter()
        found = self._store.read_manifest(version, stats)
        manifest = None if found is None else found[0]
        copy, kind = self._prepare(version, stats, objects_dirs)
        prepared = time.perf_counter()
        try:
            opened = self._open_warm(copy, manifest)
        except BaseException:
            delete_entry(copy.path)  # it does not open as its manifest says: never kept
            raise
        warmed = time.perf_counter()
        with self._state:
            previous = self._serving
            self._serving = opened
            if previous is not None:
                self._retired.append(previous)
        self._logger.info(
            "snapshot reader swapped in a version",
            extra={
                "collection": self.collection,
                "version": version,
                "previous_version": None if previous is None else previous.copy.version,
                "how": kind.value,
                "bytes_downloaded": stats.bytes_downloaded,
                "files_reused": stats.files_reused,
            },
        )
        return RefreshOutcome(
            kind,
            version,
            version,
            stats,
            prepare_seconds=prepared - started,
            warm_seconds=warmed - prepared,
        )

    def _prepare(
        self, version: str, stats: SnapshotStats, objects_dirs: Sequence[Path]
    ) -> tuple[LocalCopy, RefreshKind]:
        """A new verified copy of ``version``: every file a local copy (or ``objects_dirs``) has
        with the right sha256, plus the objects that differ. Never a copy on disk opened
        in place: chromadb rewrites files of a directory it opens (``chroma.sqlite3``,
        and HNSW files when it persists), so an opened copy no longer is the version."""
        sources = copy_sources(list_copies(self.directory), self.collection)
        sources += [objects_source(directory) for directory in objects_dirs]
        copy = build_copy(self._store, version, self.directory, sources=sources, stats=stats)
        return copy, RefreshKind.CATCH_UP if stats.files_reused else RefreshKind.DOWNLOAD

    def _open_warm(self, copy: LocalCopy, manifest: Manifest | None) -> _Opened:
        """Open ``copy`` in a client of its own, check it against its manifest, and run one
        query so chromadb loads the index (and replays unindexed records) now, not on a
        caller's first query."""
        where = f"{self.collection} version {copy.version}"
        client = ChromaClient(copy.data, mode="read")
        try:
            if self.collection not in client.list_collection_names():
                raise VersionCheckError(f"{where}: no collection {self.collection!r}")
            collection = client.get_collection(self.collection)
            count = collection.count()
            if manifest is not None and count != manifest.record_count:
                raise VersionCheckError(
                    f"{where}: {count} records, its manifest records {manifest.record_count}"
                )
            if count:
                sample: Any = collection.peek(1)["embeddings"]
                dimension = len(sample[0])
                if manifest is not None and dimension != manifest.dimension:
                    raise VersionCheckError(
                        f"{where}: dimension {dimension}, its manifest records {manifest.dimension}"
                    )
                collection.query(
                    query_embeddings=[[1.0] * dimension], n_results=1, include=["distances"]
                )
        except BaseException:
            client.close()
            raise
        return _Opened(copy, client, collection)

    def _open_copies(self) -> list[_Opened]:
        """Every copy a client has open (caller holds ``_state``)."""
        return [o for o in (self._serving, *self._retired) if o is not None]

    def _prune(self) -> None:
        """Close and delete retired copies no caller uses; delete every other entry but the
        serving copy. Before anything is served, complete copies stay: they are what the
        next refresh reuses."""
        with self._state:
            idle = [o for o in self._retired if o.users == 0]
            self._retired = [o for o in self._retired if o.users > 0]
            keep = {o.copy.path for o in self._open_copies()}
            nothing_served = self._serving is None
        for opened in idle:
            opened.client.close()
        removed = remove_unkept(self.directory, keep, keep_copies=nothing_served)
        if removed:
            self._logger.info(
                "snapshot reader pruned copies",
                extra={"collection": self.collection, "removed": removed},
            )

    # --- following the pointer ------------------------------------------------------------

    def follow(self, interval_seconds: float) -> None:
        """Refresh now, then every ``interval_seconds``, on a background thread until the
        reader is closed (outcomes in ``last_refresh`` and the log)."""
        if interval_seconds <= 0:
            raise ValueError(f"interval_seconds must be positive, got {interval_seconds!r}")
        if self._follower is not None:
            raise RuntimeError(f"the {self.collection} reader already follows its pointer")

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.refresh()
                except ReaderClosedError:
                    return
                except Exception:  # the follower outlives any one refresh
                    self._logger.exception(
                        "snapshot reader refresh raised", extra={"collection": self.collection}
                    )
                self._stop.wait(interval_seconds)

        self._follower = threading.Thread(
            target=loop, name=f"snapshot-reader-{self.collection}", daemon=True
        )
        self._follower.start()

    # --- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Stop following, wait for the queries in flight, close every client and delete
        every copy but the serving one (kept for the next reader of the directory)."""
        self._stop.set()
        if self._follower is not None and self._follower is not threading.current_thread():
            self._follower.join()
        with self._refreshing:
            with self._state:
                if self._closed:
                    return
                self._closed = True
                while any(o.users for o in self._open_copies()):
                    self._state.wait()
                opened = self._open_copies()
                serving = self._serving
                self._serving, self._retired = None, []
            for item in opened:
                item.client.close()
            keep = set() if serving is None else {serving.copy.path}
            try:
                remove_unkept(self.directory, keep, keep_copies=serving is None)
            finally:  # a disk error must not keep the directory from the next reader
                self._lock.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
