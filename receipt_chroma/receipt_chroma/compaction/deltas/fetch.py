"""Fetching deltas for a merge: where a run's delta is (``DeltaLocation``), downloading it
(a presigned URL handed to the reader process, else the S3 API: the tarball or, without
one, every object under the prefix), and fetching ahead of the upserts in threads.

Prefixes are keys in the bucket or ``s3://bucket/key/``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from botocore.exceptions import ClientError

from receipt_chroma.archive import check_member_name
from receipt_chroma.compaction.deltas.files import DELTA_TARBALL, unpack_delta
from receipt_chroma.compaction.deltas.reader import DeltaReader, DeltaReadRequest
from receipt_chroma.compaction.models import DeltaRecord
from receipt_chroma.exceptions import DeltaError, DeltaFetchError, DeltaUrlUnreachableError
from receipt_dynamo.entities import CompactionRun

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

_LOGGER = logging.getLogger(__name__)

URL_EXPIRY_SECONDS = 900
FETCH_WORKERS = 2  # threads that download or wait on the reader while upserts run
FETCH_AHEAD = 8  # deltas fetched ahead of the upserts, bounding memory
URL_RETRY_SECONDS = 300  # after S3 proved unreachable by URL, the S3 API alone this long


@dataclass(frozen=True, slots=True)
class DeltaLocation:
    bucket: str
    prefix: str

    @classmethod
    def parse(cls, prefix: str, default_bucket: str) -> DeltaLocation:
        """``key/`` in the default bucket or ``s3://bucket/key``, normalised to end in ``/``."""
        if prefix.startswith("s3://"):
            bucket, _, key = prefix.removeprefix("s3://").partition("/")
            if not bucket:
                raise DeltaError(f"delta prefix {prefix!r} names no bucket")
        else:
            bucket, key = default_bucket, prefix
        key = key.lstrip("/")
        if not key:
            raise DeltaError(f"delta prefix {prefix!r} is empty")
        return cls(bucket=bucket, prefix=key if key.endswith("/") else f"{key}/")

    @property
    def tarball_key(self) -> str:
        return f"{self.prefix}{DELTA_TARBALL}"


def fetch_delta_files(
    location: DeltaLocation, destination: Path, *, run_id: str, s3_client: S3Client
) -> Path:
    """Download a delta as stored: its tarball (returned, not yet extracted) or, without
    one, the object tree written into ``destination`` (returned). Keys are checked for safety.
    """
    archive = destination.parent / f"{destination.name}.tar.gz"
    try:
        s3_client.download_file(location.bucket, location.tarball_key, str(archive))
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in {"404", "NoSuchKey", "NotFound"}:
            raise
    else:
        return archive
    keys = _list_keys(s3_client, location)
    if not keys:
        raise DeltaError(
            f"run {run_id}: no delta at s3://{location.bucket}/{location.prefix} "
            f"(neither {DELTA_TARBALL} nor any object under the prefix)"
        )
    for key in keys:
        relative = check_member_name(key.removeprefix(location.prefix))
        target = destination.joinpath(*relative.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        s3_client.download_file(location.bucket, key, str(target))
    return destination


def download_delta(
    location: DeltaLocation, destination: Path, *, run_id: str, s3_client: S3Client
) -> Path:
    """Fetch a delta into ``destination`` (tarball, else the object tree), checked for safety."""
    fetched = fetch_delta_files(location, destination, run_id=run_id, s3_client=s3_client)
    return unpack_delta(fetched, destination)


def _list_keys(s3_client: S3Client, location: DeltaLocation) -> list[str]:
    keys: list[str] = []
    paginator = s3_client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=location.bucket, Prefix=location.prefix):
        keys += [item["Key"] for item in page.get("Contents", []) if not item["Key"].endswith("/")]
    return keys


class _UrlReach:
    """When presigned URLs last proved unreachable in this process (monotonic seconds)."""

    lock = threading.Lock()
    failed_at: float | None = None

    @classmethod
    def usable(cls) -> bool:
        with cls.lock:
            return cls.failed_at is None or time.monotonic() - cls.failed_at >= URL_RETRY_SECONDS

    @classmethod
    def failed(cls) -> None:
        with cls.lock:
            cls.failed_at = time.monotonic()


class DeltaFetcher:
    """Gets each run's records through ``reader``: by a presigned URL of the tarball when
    the reader downloads for itself, else by downloading through the S3 API here and
    handing the reader the file. A delta without a tarball takes the S3 API path alone;
    once S3 proved unreachable by URL, every fetch of this process does for
    ``URL_RETRY_SECONDS`` (each failed attempt costs a DNS lookup or a timeout)."""

    def __init__(
        self,
        collection: str,
        *,
        bucket: str,
        s3_client: S3Client,
        dimension: int,
        work_dir: Path,
        reader: DeltaReader,
    ) -> None:
        self.collection = collection
        self.bucket = bucket
        self.s3 = s3_client
        self.dimension = dimension
        self.work_dir = work_dir
        self.reader = reader
        self.by_url = reader.fetches_urls

    def __call__(self, run: CompactionRun) -> list[DeltaRecord]:
        location = DeltaLocation.parse(run.delta_prefix(self.collection), self.bucket)
        request = DeltaReadRequest(
            destination=self.work_dir / f"delta-{self.collection}-{run.run_id}",
            collection=self.collection,
            run_id=run.run_id,
            image_id=run.image_id,
            receipt_id=run.receipt_id,
            dimension=self.dimension,
        )
        if self.by_url and _UrlReach.usable():
            url = self.s3.generate_presigned_url(
                "get_object",
                Params={"Bucket": location.bucket, "Key": location.tarball_key},
                ExpiresIn=URL_EXPIRY_SECONDS,
            )
            try:
                return self.reader.load(dataclasses.replace(request, url=url))
            except DeltaUrlUnreachableError as error:
                _LOGGER.info("S3 unreachable by URL, using the S3 API: %s", error)
                _UrlReach.failed()
            except DeltaFetchError as error:  # no tarball: a tree-layout delta
                _LOGGER.info("delta URL not fetched, using the S3 API: %s", error)
        fetched = fetch_delta_files(
            location, request.destination, run_id=run.run_id, s3_client=self.s3
        )
        return self.reader.load(dataclasses.replace(request, fetched=fetched))


class RunTarget(Protocol):
    @property
    def run(self) -> CompactionRun: ...


Target = TypeVar("Target", bound=RunTarget)


def fetched_ahead(
    targets: Sequence[Target], fetch: Callable[[CompactionRun], list[DeltaRecord]]
) -> Iterator[tuple[Target, list[DeltaRecord] | Exception, bool]]:
    """Each target with its run's delta records (or the error), fetched in background
    threads, and whether the next target's delta is already fetched."""
    with ThreadPoolExecutor(max_workers=FETCH_WORKERS, thread_name_prefix="delta") as pool:
        pending: deque[tuple[Target, Future[list[DeltaRecord]]]] = deque()
        queued = iter(targets)
        for target in queued:
            pending.append((target, pool.submit(fetch, target.run)))
            if len(pending) >= FETCH_AHEAD:
                break
        while pending:
            target, future = pending.popleft()
            next_target = next(queued, None)
            if next_target is not None:
                pending.append((next_target, pool.submit(fetch, next_target.run)))
            try:
                fetched: list[DeltaRecord] | Exception = future.result()
            except Exception as error:
                fetched = error
            yield target, fetched, bool(pending) and pending[0][1].done()


class FetchedDeltas(Generic[Target]):
    """The fetch stage's result: the deltas of a plan's runs, fetched ahead in background
    threads while the first sink writes (``fetched_ahead``). With ``keep``, a complete
    pass is kept, and a second sink of the cycle (``both``) is given the same records
    without fetching them again."""

    def __init__(
        self,
        targets: Sequence[Target],
        fetch: Callable[[CompactionRun], list[DeltaRecord]],
        *,
        keep: bool = False,
    ) -> None:
        self.targets = targets
        self._fetch = fetch
        self._keep = keep
        self._kept: list[tuple[Target, list[DeltaRecord] | Exception]] | None = None

    def __iter__(self) -> Iterator[tuple[Target, list[DeltaRecord] | Exception, bool]]:
        if self._kept is not None:
            for target, fetched in self._kept:
                yield target, fetched, True
            return
        kept: list[tuple[Target, list[DeltaRecord] | Exception]] = []
        for target, fetched, next_ready in fetched_ahead(self.targets, self._fetch):
            if self._keep:
                kept.append((target, fetched))
            yield target, fetched, next_ready
        if self._keep:
            self._kept = kept
