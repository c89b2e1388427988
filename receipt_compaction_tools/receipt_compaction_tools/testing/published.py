"""Reading a published version the way another system would: from the contract's S3
layout alone (§6: ``versions/<id>/manifest.json`` and ``objects/<sha256>.zst`` for format
2, ``timestamped/<id>/snapshot.tar.gz`` for format 1), every hash checked, opened with
chromadb itself. Test oracles use it instead of the product's snapshot reader, so a bug
there cannot hide a wrong snapshot. A Chroma server's collection (contract §12) is read
with chromadb's own ``HttpClient`` for the same reason."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import chromadb
import zstandard
from chromadb.api.shared_system_client import SharedSystemClient
from chromadb.config import Settings

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client


class PublishedVersionError(AssertionError):
    """A published version breaks the contract's layout or its hashes."""


@dataclass(frozen=True)
class PublishedRecord:
    embedding: list[float]
    document: str | None
    metadata: dict[str, Any]


def download_version(
    s3: S3Client, bucket: str, collection: str, version: str, destination: Path
) -> None:
    """The closed persist directory of ``version`` (verified) into ``destination``."""
    base = f"{collection}/snapshot/"

    def get(key: str) -> bytes | None:
        try:
            return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except s3.exceptions.NoSuchKey:
            return None

    manifest_bytes = get(f"{base}versions/{version}/manifest.json")
    if manifest_bytes is None:
        _extract_format_1(get, base, version, destination)
        return
    digest = hashlib.sha256(manifest_bytes).hexdigest()
    if get(f"{base}versions/{version}/.manifest_hash") != f"sha256:{digest}".encode():
        raise PublishedVersionError(f"{collection} {version}: manifest hash does not match")
    manifest = json.loads(manifest_bytes)
    if manifest.get("format") != 2 or manifest.get("version_id") != version:
        raise PublishedVersionError(f"{collection} {version}: not its format 2 manifest")
    for entry in manifest["files"]:
        blob = get(f"{base}objects/{entry['sha256']}.zst")
        if blob is None:
            raise PublishedVersionError(f"{version}: object of {entry['path']} is missing")
        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob)) as reader:
            data = reader.read()
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise PublishedVersionError(f"{version}: {entry['path']} does not match its sha256")
        target = destination.joinpath(*Path(entry["path"]).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def _extract_format_1(get: Any, base: str, version: str, destination: Path) -> None:
    tarball = get(f"{base}timestamped/{version}/snapshot.tar.gz")
    if tarball is None:
        raise PublishedVersionError(f"published version {version} is not in S3")
    expected = get(f"{base}timestamped/{version}/.snapshot_hash")
    if expected != f"sha256:{hashlib.sha256(tarball).hexdigest()}".encode():
        raise PublishedVersionError(f"{version}: tarball hash does not match")
    destination.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        archive.extractall(destination, filter="data")


def read_collection(directory: Path, collection: str) -> dict[str, PublishedRecord]:
    """Every record of ``collection`` in a persist directory, by id."""
    client = chromadb.PersistentClient(
        path=str(directory), settings=Settings(anonymized_telemetry=False, allow_reset=False)
    )
    try:
        found = client.get_collection(collection, embedding_function=None).get(
            include=["embeddings", "documents", "metadatas"]
        )
    finally:
        close = getattr(client, "close", None)  # chromadb >= 1.1; frees the SQLite handle
        if close is not None:
            close()
        # Only when no other client is open: a compactor in this process keeps its working
        # copy's client open, and clearing the cache would orphan that client's system.
        if not SharedSystemClient._identifier_to_system:
            SharedSystemClient.clear_system_cache()
    return _records(found)


def read_server_collection(
    collection: str, *, host: str, port: int, database: str = "default_database"
) -> dict[str, PublishedRecord]:
    """Every record of ``collection`` on a Chroma server, by id (none when it does not
    exist yet)."""
    client = chromadb.HttpClient(
        host=host, port=port, database=database, settings=Settings(anonymized_telemetry=False)
    )
    try:
        if collection not in [c.name for c in client.list_collections()]:
            return {}
        found = client.get_collection(collection, embedding_function=None).get(
            include=["embeddings", "documents", "metadatas"]
        )
    finally:
        client.close()  # type: ignore[attr-defined]
    return _records(found)


def _records(found: Any) -> dict[str, PublishedRecord]:
    ids = found["ids"]
    embeddings = found["embeddings"] if found["embeddings"] is not None else []
    documents: list[str | None] = [None] * len(ids)
    if found["documents"]:
        documents = list(found["documents"])
    metadatas = found["metadatas"] or [{}] * len(ids)
    return {
        record_id: PublishedRecord([float(x) for x in vector], document, dict(metadata or {}))
        for record_id, vector, document, metadata in zip(
            ids, embeddings, documents, metadatas, strict=True
        )
    }
