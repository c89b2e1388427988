"""A collection's snapshots in S3 (contract §6.1): manifests, listings and the pointer file.

Format 2 versions are ``versions/<id>/manifest.json`` + ``.manifest_hash`` naming
content-addressed ``objects/`` (see ``objects.py``); format 1 versions
(``timestamped/<id>/snapshot.tar.gz`` + ``.snapshot_hash``) are still read (``legacy.py``).
``latest-pointer.txt`` is a cache of the DynamoDB pointer item, written conditionally so
it never goes backwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from receipt_chroma.exceptions import SnapshotError, SnapshotVersionMissingError
from receipt_chroma.snapshots.fence import DeleteFence, FenceRefusedError, call_budget
from receipt_chroma.snapshots.files import file_hash
from receipt_chroma.snapshots.layout import SnapshotLayout
from receipt_chroma.snapshots.manifest import (
    Manifest,
    check_manifest_bytes,
    manifest_digest,
    parse_manifest,
)
from receipt_chroma.snapshots.objects import DEFAULT_WORKERS, ObjectStore
from receipt_chroma.snapshots.reader import read_version
from receipt_chroma.snapshots.s3_errors import not_found, precondition_failed
from receipt_chroma.snapshots.stats import SnapshotStats

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client
    from types_boto3_s3.type_defs import ObjectIdentifierTypeDef

__all__ = ["PointerFile", "S3SnapshotStore", "SnapshotListing", "VersionKeys", "file_hash"]
POINTER_WRITE_ATTEMPTS = 5
MANIFEST_CACHE = 32  # manifests are immutable; keep the recent ones a container reads again


@dataclass(frozen=True)
class PointerFile:
    version: str
    etag: str
    raw: bytes = b""


@dataclass
class VersionKeys:
    """The keys of one version as listed, and the newest write among them."""

    format: int
    modified: datetime
    keys: list[str] = field(default_factory=list)


@dataclass
class SnapshotListing:
    versions: dict[str, VersionKeys] = field(default_factory=dict)
    objects: dict[str, datetime] = field(default_factory=dict)  # sha256 → LastModified


class S3SnapshotStore:
    """One collection's snapshots in ``bucket``."""

    def __init__(
        self,
        s3_client: S3Client,
        bucket: str,
        collection: str,
        *,
        zstd_level: int = 1,
        workers: int = DEFAULT_WORKERS,
    ) -> None:
        self.s3 = s3_client
        self.bucket = bucket
        self.collection = collection
        self.layout = SnapshotLayout(collection)
        self.prefix = self.layout.prefix
        self.objects = ObjectStore(
            s3_client, bucket, self.layout, level=zstd_level, workers=workers
        )
        self._manifests: dict[str, tuple[Manifest, bytes]] = {}  # versions are immutable

    # --- small objects --------------------------------------------------------------------

    def _get(self, key: str, stats: SnapshotStats | None = None) -> bytes | None:
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as error:
            if not_found(error):
                return None
            raise
        if stats is not None:
            stats.add(downloaded=len(body))
        return body

    def _put_new(self, key: str, body: bytes, content_type: str) -> None:
        """PUT a key that must not exist yet (``IfNoneMatch``): versions are immutable."""
        self.s3.put_object(
            Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, IfNoneMatch="*"
        )

    # --- format 2 manifests ---------------------------------------------------------------

    def read_manifest(
        self, version: str, stats: SnapshotStats | None = None
    ) -> tuple[Manifest, bytes] | None:
        """A format 2 version's manifest, checked against ``.manifest_hash``; None when the
        version has no ``.manifest_hash`` (it is not a format 2 version)."""
        if version in self._manifests:
            return self._manifests[version]
        recorded = self._get(self.layout.manifest_hash_key(version), stats)
        if recorded is None:
            return None
        where = f"{self.collection} version {version}"
        data = self._get(self.layout.manifest_key(version), stats)
        if data is None:
            raise SnapshotVersionMissingError(f"{where}: .manifest_hash but no manifest.json")
        check_manifest_bytes(data, recorded.decode("ascii", "replace"), where=where)
        manifest = parse_manifest(data, collection=self.collection, version_id=version)
        self._remember(version, manifest, data)
        return manifest, data

    def _remember(self, version: str, manifest: Manifest, data: bytes) -> None:
        self._manifests[version] = (manifest, data)
        while len(self._manifests) > MANIFEST_CACHE:
            self._manifests.pop(next(iter(self._manifests)))

    def put_manifest(self, manifest: Manifest, stats: SnapshotStats | None = None) -> bytes:
        """Write ``manifest.json``, then ``.manifest_hash``; returns the manifest's bytes."""
        data = manifest.to_bytes()
        digest = manifest_digest(data).encode("ascii")
        self._put_new(self.layout.manifest_key(manifest.version_id), data, "application/json")
        self._put_new(self.layout.manifest_hash_key(manifest.version_id), digest, "text/plain")
        if stats is not None:
            stats.add(uploaded=len(data) + len(digest))
        self._remember(manifest.version_id, manifest, data)
        return data

    # --- format 1 -------------------------------------------------------------------------

    def read_tarball_hash(self, version: str) -> str | None:
        """A format 1 version's ``.snapshot_hash`` (``sha256:<hex>``), or None."""
        body = self._get(self.layout.tarball_hash_key(version))
        return None if body is None else body.decode("ascii").strip()

    read_hash = read_tarball_hash

    def version_format(self, version: str) -> int | None:
        """2 or 1 for an existing version, None when neither layout holds it."""
        for snapshot_format, key in (
            (2, self.layout.manifest_hash_key(version)),
            (1, self.layout.tarball_hash_key(version)),
        ):
            try:
                self.s3.head_object(Bucket=self.bucket, Key=key)
                return snapshot_format
            except ClientError as error:
                if not not_found(error):
                    raise
        return None

    def download(self, version: str, destination: Path) -> str:
        """Fetch and verify ``version`` (either format) into a new ``destination``; returns
        its recorded hash (``.manifest_hash`` or ``.snapshot_hash``)."""
        return read_version(self, version, destination).digest

    # --- listings -------------------------------------------------------------------------

    def list_all(self) -> SnapshotListing:
        """Every version (both formats) and every object under the collection's prefix."""
        listing = SnapshotListing()
        for page in self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        ):
            for item in page.get("Contents", []):
                key, modified = item["Key"], item["LastModified"]
                sha = self.layout.object_sha(key)
                if sha is not None:
                    listing.objects[sha] = modified
                    continue
                found = self.layout.version_of(key)
                if found is None:
                    continue
                snapshot_format, version = found
                entry = listing.versions.setdefault(version, VersionKeys(snapshot_format, modified))
                entry.keys.append(key)
                entry.modified = max(entry.modified, modified)
        return listing

    def list_versions(self) -> dict[str, datetime]:
        """Every version id (both formats) with the time of its last write."""
        return {v: keys.modified for v, keys in self.list_all().versions.items()}

    def delete_keys(self, keys: Iterable[str], fence: DeleteFence) -> int:
        """Delete ``keys`` in calls of up to 1,000, each only while ``fence`` allows a call
        of this client to end before the lease deadline — checked before the call and again
        as the client's last step before each attempt is sent. Returns how many keys were
        left (0 when every call was made)."""
        objects: list[ObjectIdentifierTypeDef] = [{"Key": key} for key in keys]
        budget = call_budget(self.s3)

        def last_check(**_: Any) -> None:
            if not fence.allows(budget):
                raise FenceRefusedError(fence.refused)

        event = "before-send.s3.DeleteObjects"
        handler_id = f"delete-fence-{id(fence)}"
        self.s3.meta.events.register_last(event, last_check, unique_id=handler_id)
        try:
            for start in range(0, len(objects), 1000):
                if not fence.allows(budget):
                    return len(objects) - start
                try:
                    self.s3.delete_objects(
                        Bucket=self.bucket,
                        Delete={"Objects": objects[start : start + 1000], "Quiet": True},
                    )
                except FenceRefusedError:
                    return len(objects) - start
        finally:
            self.s3.meta.events.unregister(event, unique_id=handler_id)
        return 0

    def forget(self, version: str) -> None:
        """Drop a cached manifest (its version is being deleted)."""
        self._manifests.pop(version, None)

    # --- pointer file ---------------------------------------------------------------------

    def read_pointer_file(self) -> PointerFile | None:
        """The file as stored: ``raw`` is its exact bytes; ``version`` is a lenient reading
        of them (for display and bootstrap adoption). Only ``raw == <version id>`` (ASCII,
        no newline) is a correct file (§6.1)."""
        try:
            response = self.s3.get_object(Bucket=self.bucket, Key=self.layout.pointer_key)
        except ClientError as error:
            if not_found(error):
                return None
            raise
        raw = response["Body"].read()
        return PointerFile(raw.decode("ascii", "replace").strip(), response["ETag"], raw)

    def sync_pointer_file(
        self, current_version: Callable[[], str | None], *, known: str | None = None
    ) -> str | None:
        """Make ``latest-pointer.txt`` say exactly what the pointer item says now.

        Each attempt reads the file (its bytes and ETag) *first*, then the item
        (``current_version``), then writes conditionally on that ETag (or the file's
        absence). A writer that lands after our file read changes the ETag, so our put
        fails and we retry with a fresh item: an older version can never be put back.
        Reading the item first would let a newer write slip in between the two reads and
        be matched by ``IfMatch``. The file is correct only when its bytes are exactly the
        version id; anything else (a trailing newline, undecodable bytes) is rewritten.
        A file already naming ``known`` is left as it is without asking for the item.
        Returns the version the file names, or None when the item is absent.
        """
        for _ in range(POINTER_WRITE_ATTEMPTS):
            existing = self.read_pointer_file()
            if known is not None and existing is not None and existing.raw == known.encode():
                return known
            version = current_version()
            if version is None:
                return None
            body = version.encode("ascii")
            if existing is not None and existing.raw == body:
                return version
            condition = {"IfMatch": existing.etag} if existing is not None else {"IfNoneMatch": "*"}
            try:
                self.s3.put_object(
                    Bucket=self.bucket,
                    Key=self.layout.pointer_key,
                    Body=body,
                    ContentType="text/plain",
                    **condition,  # type: ignore[arg-type]
                )
                return version
            except ClientError as error:
                if not precondition_failed(error):
                    raise
        raise SnapshotError(
            f"{self.collection}: latest-pointer.txt kept changing; gave up after "
            f"{POINTER_WRITE_ATTEMPTS} attempts"
        )
