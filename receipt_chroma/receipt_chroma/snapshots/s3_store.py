"""Snapshots on S3 (contract §6): immutable versions, their hashes and the pointer file.

``<collection>/snapshot/timestamped/<version>/snapshot.tar.gz`` and ``.snapshot_hash``
(``sha256:<hex of the tarball>``); ``<collection>/snapshot/latest-pointer.txt`` holds the
current version id, a cache of the DynamoDB pointer item that is written conditionally
so it never goes backwards.
"""

from __future__ import annotations

import hashlib
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from receipt_chroma.archive import create_tarball, extract_tarball
from receipt_chroma.exceptions import SnapshotCorruptError, SnapshotError, UnsafeArchiveError
from receipt_chroma.snapshots.versions import is_version_id, version_time

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client
    from types_boto3_s3.type_defs import ObjectIdentifierTypeDef

TARBALL = "snapshot.tar.gz"
HASH_FILE = ".snapshot_hash"
POINTER_FILE = "latest-pointer.txt"
POINTER_WRITE_ATTEMPTS = 5


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def _not_found(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}


def _precondition_failed(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") in {
        "PreconditionFailed",
        "ConditionalRequestConflict",
        "412",
    }


@dataclass(frozen=True)
class PointerFile:
    version: str
    etag: str


class S3SnapshotStore:
    """One collection's snapshots in ``bucket``."""

    def __init__(self, s3_client: S3Client, bucket: str, collection: str) -> None:
        self.s3 = s3_client
        self.bucket = bucket
        self.collection = collection
        self.prefix = f"{collection}/snapshot/"

    def version_prefix(self, version: str) -> str:
        return f"{self.prefix}timestamped/{version}/"

    # --- versions -------------------------------------------------------------------------

    def upload(self, version: str, persist_directory: Path) -> str:
        """Upload a closed persist directory as ``version``: tarball first, then its hash."""
        with tempfile.TemporaryDirectory(prefix="snapshot-up-") as tmp:
            tarball = create_tarball(persist_directory, Path(tmp) / TARBALL)
            digest = file_hash(tarball)
            self.s3.upload_file(
                str(tarball), self.bucket, f"{self.version_prefix(version)}{TARBALL}"
            )
        self.s3.put_object(
            Bucket=self.bucket,
            Key=f"{self.version_prefix(version)}{HASH_FILE}",
            Body=digest.encode("ascii"),
        )
        return digest

    def read_hash(self, version: str) -> str | None:
        try:
            body = self.s3.get_object(
                Bucket=self.bucket, Key=f"{self.version_prefix(version)}{HASH_FILE}"
            )["Body"].read()
        except ClientError as error:
            if _not_found(error):
                return None
            raise
        return body.decode("ascii").strip()

    def download(self, version: str, destination: Path) -> str:
        """Fetch, verify and safely extract ``version`` into ``destination``; returns its hash."""
        expected = self.read_hash(version)
        if expected is None:
            raise SnapshotError(
                f"{self.collection} version {version}: no {HASH_FILE} at "
                f"s3://{self.bucket}/{self.version_prefix(version)}"
            )
        with tempfile.TemporaryDirectory(prefix="snapshot-down-") as tmp:
            tarball = Path(tmp) / TARBALL
            try:
                self.s3.download_file(
                    self.bucket, f"{self.version_prefix(version)}{TARBALL}", str(tarball)
                )
            except ClientError as error:
                if _not_found(error):
                    raise SnapshotError(
                        f"{self.collection} version {version}: no {TARBALL} in S3"
                    ) from error
                raise
            actual = file_hash(tarball)
            if actual != expected:
                raise SnapshotCorruptError(
                    f"{self.collection} version {version}: tarball hash {actual} does not "
                    f"match {HASH_FILE} {expected}"
                )
            try:
                extract_tarball(tarball, destination)
            except (UnsafeArchiveError, tarfile.TarError) as error:
                raise SnapshotCorruptError(
                    f"{self.collection} version {version}: {error}"
                ) from error
        return expected

    def list_versions(self) -> dict[str, datetime]:
        """Every version id with objects under ``timestamped/``, with its last write time."""
        versions: dict[str, datetime] = {}
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}timestamped/"):
            for item in page.get("Contents", []):
                version = item["Key"].removeprefix(f"{self.prefix}timestamped/").split("/")[0]
                modified = item["LastModified"]
                versions[version] = max(versions.get(version, modified), modified)
        return versions

    def has_any_object(self) -> bool:
        response = self.s3.list_objects_v2(
            Bucket=self.bucket, Prefix=f"{self.prefix}timestamped/", MaxKeys=1
        )
        return bool(response.get("KeyCount", 0))

    def delete_version(self, version: str) -> None:
        keys: list[ObjectIdentifierTypeDef] = [
            {"Key": item["Key"]}
            for page in self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.version_prefix(version)
            )
            for item in page.get("Contents", [])
        ]
        for start in range(0, len(keys), 1000):
            self.s3.delete_objects(
                Bucket=self.bucket, Delete={"Objects": keys[start : start + 1000], "Quiet": True}
            )

    def apply_retention(
        self, keep: set[str], orphan_age: timedelta, now: datetime | None = None
    ) -> list[str]:
        """Delete versions outside ``keep`` once older than ``orphan_age``; returns them.

        The age guard protects a version that a concurrent publisher may still be about
        to name (it would otherwise be an orphan for an instant).
        """
        moment = now or datetime.now(UTC)
        deleted = []
        for version, modified in sorted(self.list_versions().items()):
            if version in keep:
                continue
            minted = version_time(version) if is_version_id(version) else modified
            if moment - max(minted, modified) >= orphan_age:
                self.delete_version(version)
                deleted.append(version)
        return deleted

    # --- pointer file -----------------------------------------------------------------------

    def read_pointer_file(self) -> PointerFile | None:
        try:
            response = self.s3.get_object(Bucket=self.bucket, Key=f"{self.prefix}{POINTER_FILE}")
        except ClientError as error:
            if _not_found(error):
                return None
            raise
        return PointerFile(response["Body"].read().decode("ascii").strip(), response["ETag"])

    def sync_pointer_file(self, current_version: Callable[[], str | None]) -> str | None:
        """Make ``latest-pointer.txt`` say what the pointer item says now.

        Each attempt re-reads the item (``current_version``) and writes conditionally on
        the file's ETag (or its absence), so a slower writer can never put an older
        version back. Returns the version written, or None when the item is absent.
        """
        for _ in range(POINTER_WRITE_ATTEMPTS):
            version = current_version()
            if version is None:
                return None
            existing = self.read_pointer_file()
            if existing is not None and existing.version == version:
                return version
            condition = {"IfMatch": existing.etag} if existing is not None else {"IfNoneMatch": "*"}
            try:
                self.s3.put_object(
                    Bucket=self.bucket,
                    Key=f"{self.prefix}{POINTER_FILE}",
                    Body=version.encode("ascii"),
                    ContentType="text/plain",
                    **condition,  # type: ignore[arg-type]
                )
                return version
            except ClientError as error:
                if not _precondition_failed(error):
                    raise
        raise SnapshotError(
            f"{self.collection}: {POINTER_FILE} kept changing; gave up after "
            f"{POINTER_WRITE_ATTEMPTS} attempts"
        )
