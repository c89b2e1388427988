"""Content-addressed snapshot objects: ``objects/<sha256>.zst`` (contract §6.1).

An object is one file of a closed persist directory, zstd-compressed, named by the sha256
of the uncompressed bytes. Uploads ask S3 first (HEAD) and write only what is missing,
with ``IfNoneMatch="*"`` so an object that exists is never rewritten — not even by a
concurrent publisher racing on the same bytes. Downloads decompress as they stream, stop
as soon as the output exceeds the manifest's size, and verify size and sha256 before the
file is used; a mismatch is a corrupt version.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypeVar, cast

import zstandard
from botocore.exceptions import ClientError

from receipt_chroma.exceptions import (
    SnapshotError,
    SnapshotVersionCorruptError,
    SnapshotVersionMissingError,
)
from receipt_chroma.snapshots.files import BLOCK
from receipt_chroma.snapshots.layout import SnapshotLayout
from receipt_chroma.snapshots.manifest import FileEntry
from receipt_chroma.snapshots.s3_errors import not_found, precondition_failed
from receipt_chroma.snapshots.stats import SnapshotStats

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

DEFAULT_WORKERS = 4
T = TypeVar("T")


def run_bounded(tasks: Iterable[Callable[[], T]], workers: int) -> list[T]:
    """Run ``tasks`` on at most ``workers`` threads; the first error is re-raised after
    the others finished (nothing is left running behind the caller's back)."""
    pending = list(tasks)
    if workers <= 1 or len(pending) <= 1:
        return [task() for task in pending]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="snapshot-io") as pool:
        futures = [pool.submit(task) for task in pending]
        errors = [f.exception() for f in futures]
    for error in errors:
        if error is not None:
            raise error
    return [f.result() for f in futures]


class ObjectStore:
    """The ``objects/`` of one collection."""

    def __init__(
        self,
        s3: S3Client,
        bucket: str,
        layout: SnapshotLayout,
        *,
        level: int = 1,
        workers: int = DEFAULT_WORKERS,
    ) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.layout = layout
        self.level = level
        self.workers = workers

    def exists(self, sha256: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=self.layout.object_key(sha256))
        except ClientError as error:
            if not_found(error):
                return False
            raise
        return True

    # --- upload -------------------------------------------------------------------------

    def upload_missing(
        self, directory: Path, entries: Sequence[FileEntry], stats: SnapshotStats
    ) -> list[str]:
        """Upload the objects S3 lacks for ``entries`` (files of ``directory``); returns
        the sha256 of the objects this call wrote."""
        unique = {entry.sha256: entry for entry in entries}
        written = run_bounded(
            [lambda e=e: self._upload_one(directory, e, stats) for e in unique.values()],  # type: ignore[misc]
            self.workers,
        )
        return [sha for sha in written if sha is not None]

    def _upload_one(self, directory: Path, entry: FileEntry, stats: SnapshotStats) -> str | None:
        if self.exists(entry.sha256):
            stats.add(objects_present=1)
            return None
        source = directory.joinpath(*entry.path.split("/"))
        with tempfile.TemporaryFile(prefix="snapshot-object-") as compressed:
            digest = hashlib.sha256()
            with (
                source.open("rb") as raw,
                zstandard.ZstdCompressor(level=self.level).stream_writer(
                    compressed, size=entry.size, closefd=False
                ) as writer,
            ):
                for block in iter(lambda: raw.read(BLOCK), b""):
                    digest.update(block)
                    writer.write(block)
            if digest.hexdigest() != entry.sha256:
                raise SnapshotError(
                    f"{source} changed while it was published (sha256 {digest.hexdigest()}, "
                    f"hashed as {entry.sha256})"
                )
            size = compressed.tell()
            compressed.seek(0)
            try:
                self.s3.put_object(
                    Bucket=self.bucket,
                    Key=self.layout.object_key(entry.sha256),
                    Body=compressed,
                    ContentLength=size,
                    ContentType="application/zstd",
                    IfNoneMatch="*",
                )
            except ClientError as error:
                if not precondition_failed(error):
                    raise
                stats.add(objects_present=1)  # a concurrent publisher wrote the same bytes
                return None
        stats.add(uploaded=size, objects_uploaded=1)
        return entry.sha256

    # --- download -----------------------------------------------------------------------

    def fetch(self, entry: FileEntry, target: Path, stats: SnapshotStats, *, where: str) -> None:
        """GET, decompress and verify one object into ``target`` (removed on failure)."""
        key = self.layout.object_key(entry.sha256)
        try:
            response = self.s3.get_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if not_found(error):
                raise SnapshotVersionMissingError(
                    f"{where}: object {key} for {entry.path} is missing"
                ) from error
            raise
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        try:
            with (
                target.open("wb") as out,
                zstandard.ZstdDecompressor().stream_reader(
                    cast(IO[bytes], response["Body"])
                ) as reader,
            ):
                # Never more than one byte past the manifest's size: an object that
                # decompresses to more (a zstd bomb) is rejected before it fills the disk.
                while block := reader.read(min(BLOCK, entry.size - size + 1)):
                    size += len(block)
                    if size > entry.size:
                        raise SnapshotVersionCorruptError(
                            f"{where}: object {key} for {entry.path} decompresses to more "
                            f"than the {entry.size} bytes its manifest records"
                        )
                    digest.update(block)
                    out.write(block)
        except zstandard.ZstdError as error:
            target.unlink(missing_ok=True)
            raise SnapshotVersionCorruptError(
                f"{where}: object {key} for {entry.path} does not decompress: {error}"
            ) from error
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        stats.add(downloaded=int(response.get("ContentLength", 0)), files_fetched=1)
        if size != entry.size or digest.hexdigest() != entry.sha256:
            target.unlink(missing_ok=True)
            raise SnapshotVersionCorruptError(
                f"{where}: object {key} for {entry.path} does not match its manifest "
                f"(sha256 {digest.hexdigest()}, {size} bytes; expected {entry.sha256}, "
                f"{entry.size} bytes)"
            )

    def fetch_many(
        self, items: Sequence[tuple[FileEntry, Path]], stats: SnapshotStats, *, where: str
    ) -> None:
        run_bounded(
            [lambda i=i: self.fetch(i[0], i[1], stats, where=where) for i in items],  # type: ignore[misc]
            self.workers,
        )
