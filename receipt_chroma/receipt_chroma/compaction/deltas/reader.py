"""Turning deltas into checked records, in a helper process when one can run.

Chroma's upsert holds the GIL while its native threads insert, so a delta downloaded or
read in a thread of the compactor waits for every upsert to finish. A helper process (one
per compactor process, started once and reused) downloads (by a presigned URL, so it needs
no credentials), extracts and reads deltas on the spare core while the snapshot is
written. It talks over two pipes with ``multiprocessing.connection`` framing (Lambda has no
/dev/shm, so no multiprocessing queues or pools). If the helper cannot fetch a URL, the
compactor downloads the delta itself and the helper reads the file; if the helper cannot be
started or dies, deltas are read in-process: slower, same records.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

from receipt_chroma.compaction.deltas.files import read_delta, unpack_delta
from receipt_chroma.compaction.models import DeltaRecord
from receipt_chroma.exceptions import (
    DeltaError,
    DeltaFetchError,
    DeltaReaderTimeoutError,
    DeltaUrlUnreachableError,
)
from receipt_chroma.ids import parse_vector_id

LOGGER = logging.getLogger(__name__)
WORKER_MODULE = "receipt_chroma.compaction.deltas.worker"


URL_TIMEOUT_SECONDS = 60
# A delta is one receipt's vectors: the helper answers in seconds, or within
# URL_TIMEOUT_SECONDS when S3 stops answering. One that has not answered in this long is
# stuck (seen: Chroma's native reader spinning on a core for an hour) and is killed, so
# the cycle fails the run by name instead of holding its messages until the Lambda times out.
ANSWER_TIMEOUT_SECONDS = URL_TIMEOUT_SECONDS + 30
COPY_BUFFER_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class DeltaReadRequest:
    """A delta (a presigned URL of its tarball, or a fetched tarball or directory) and the
    run it must belong to. It is unpacked into ``destination``."""

    destination: Path
    collection: str
    run_id: str
    image_id: str
    receipt_id: int
    dimension: int
    fetched: Path | None = None
    url: str | None = None


def load_delta(request: DeltaReadRequest) -> list[DeltaRecord]:
    """Fetch (if a URL), unpack and read a delta; every id must be a contract §4 id of the run's
    receipt."""
    fetched = request.fetched or _download(request)
    directory = unpack_delta(fetched, request.destination)
    records = read_delta(
        directory, request.collection, run_id=request.run_id, dimension=request.dimension
    )
    for record in records:
        try:
            key = parse_vector_id(record.id, request.collection)
        except ValueError as error:
            raise DeltaError(f"run {request.run_id}: {error}") from None
        if (key.image_id, key.receipt_id) != (request.image_id, request.receipt_id):
            raise DeltaError(
                f"run {request.run_id}: {record.id} does not belong to image "
                f"{request.image_id} receipt {request.receipt_id}"
            )
    return records


def _download(request: DeltaReadRequest) -> Path:
    if request.url is None:
        raise DeltaError(f"run {request.run_id}: nothing to read (no URL, no fetched delta)")
    target = request.destination.parent / f"{request.destination.name}.tar.gz"
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with (
            urllib.request.urlopen(request.url, timeout=URL_TIMEOUT_SECONDS) as response,
            target.open("wb") as output,
        ):
            shutil.copyfileobj(response, output, COPY_BUFFER_BYTES)
    except urllib.error.HTTPError as error:  # S3 answered: e.g. no tarball under the prefix
        target.unlink(missing_ok=True)
        raise DeltaFetchError(
            f"run {request.run_id}: cannot fetch the delta by URL: {error}"
        ) from error
    except (OSError, ValueError) as error:  # URLError and socket errors are OSErrors
        target.unlink(missing_ok=True)
        raise DeltaUrlUnreachableError(
            f"run {request.run_id}: S3 is not reachable by URL: {error}"
        ) from error
    return target


class DeltaReader(Protocol):
    @property
    def fetches_urls(self) -> bool:
        """Whether handing this reader a URL saves the caller the download."""

    def load(self, request: DeltaReadRequest) -> list[DeltaRecord]: ...


class InProcessDeltaReader:
    """Reads deltas in the calling thread."""

    fetches_urls = False

    def load(self, request: DeltaReadRequest) -> list[DeltaRecord]:
        return load_delta(request)


class DeltaReaderProcess:
    """A helper process that runs :func:`load_delta`; falls back in-process if it dies.

    Thread-safe: requests from several fetch threads are served one at a time. A helper
    that does not answer within ``answer_timeout_seconds`` is killed and the read fails
    with :class:`DeltaReaderTimeoutError`; the next read starts a new helper (reading
    in-process instead could hang this process where nothing can stop it).
    """

    fetches_urls = True

    def __init__(self, answer_timeout_seconds: float = ANSWER_TIMEOUT_SECONDS) -> None:
        self.answer_timeout_seconds = answer_timeout_seconds
        self._lock = threading.Lock()
        self._fallback = InProcessDeltaReader()
        self._process: subprocess.Popen[bytes] | None = None
        self._replace_on_next_read = False
        self._start()

    def _start(self) -> None:
        child_reads, parent_writes = os.pipe()
        parent_reads, child_writes = os.pipe()
        # The child imports what this process imports, wherever the runtime put it.
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", WORKER_MODULE, str(child_reads), str(child_writes)],
                pass_fds=(child_reads, child_writes),
                stdin=subprocess.DEVNULL,
                env=env,
            )
        except OSError:
            os.close(parent_reads)
            os.close(parent_writes)
            raise
        finally:
            os.close(child_reads)
            os.close(child_writes)
        self._requests = Connection(parent_writes, readable=False)
        self._replies = Connection(parent_reads, writable=False)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def wait_ready(self) -> bool:
        """Block until the helper has imported what it needs; False if it is gone
        (DeltaReaderTimeoutError if it does not answer in time)."""
        with self._lock:
            return self._exchange(None) is not None

    def load(self, request: DeltaReadRequest) -> list[DeltaRecord]:
        with self._lock:
            if self._replace_on_next_read:
                self._replace()
            reply = self._exchange(request)
        if reply is None:
            return self._fallback.load(request)
        succeeded, payload = reply
        if succeeded:
            return list(payload)
        raise payload

    def _exchange(self, request: DeltaReadRequest | None) -> tuple[bool, Any] | None:
        """One request and its reply; None once the helper is gone (it is then stopped)."""
        if not self.alive:
            return None
        try:
            self._requests.send(request)
            answered = self._replies.poll(self.answer_timeout_seconds)
            reply: tuple[bool, Any] | None = self._replies.recv() if answered else None
        except (EOFError, OSError) as error:
            LOGGER.warning("delta reader process failed, reading in-process: %s", error)
            self._stop()
            return None
        if reply is None:
            pid = self.pid
            self._kill()
            self._replace_on_next_read = True
            what = "" if request is None else f" reading run {request.run_id}"
            raise DeltaReaderTimeoutError(
                f"the delta reader process (pid {pid}) did not answer in "
                f"{self.answer_timeout_seconds:g} s{what}; it was killed and the next read "
                "starts a new one"
            )
        return reply

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        if self._process is None:
            return
        self._requests.close()  # the helper exits at end of input
        self._replies.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def _kill(self) -> None:
        if self._process is not None:
            self._process.kill()
        self._stop()

    def _replace(self) -> None:
        """A new helper for one that was killed; if none can start, read in-process."""
        self._replace_on_next_read = False
        try:
            self._start()
        except OSError as error:
            LOGGER.warning("no new delta reader process, reading in-process: %s", error)


class _Shared:
    lock = threading.Lock()
    reader: DeltaReader | None = None


def shared_delta_reader() -> DeltaReader:
    """This process's delta reader, started on first use and kept for later batches."""
    with _Shared.lock:
        if _Shared.reader is None:
            try:
                process = DeltaReaderProcess()
            except OSError as error:
                LOGGER.warning("no delta reader process, reading in-process: %s", error)
                _Shared.reader = InProcessDeltaReader()
            else:
                atexit.register(process.close)
                _Shared.reader = process
        return _Shared.reader
