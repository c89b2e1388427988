"""Embedding deltas on S3: writing them (producers, tests) and fetching them (compactor).

A delta is a persisted Chroma directory holding exactly one collection, named after the
target collection, stored as ``<prefix>delta.tar.gz`` with members relative to the
persist directory. Without the tarball, every object under the prefix is the directory
tree (``<key minus prefix>``). Prefixes are keys in the bucket or ``s3://bucket/key/``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

from receipt_chroma.archive import check_member_name, create_tarball, extract_tarball
from receipt_chroma.compaction.models import DeltaRecord
from receipt_chroma.data.chroma_client import ChromaClient
from receipt_chroma.exceptions import DeltaError
from receipt_dynamo.constants import ChromaDBCollection
from receipt_dynamo.data.dynamo_client import DynamoClient
from receipt_dynamo.entities import CompactionRun
from receipt_dynamo.timestamps import now_iso

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

DELTA_TARBALL = "delta.tar.gz"
RecordTuple = tuple[str, Sequence[float], str | None, dict[str, Any]]


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


def delta_prefix(collection: ChromaDBCollection | str, run_id: str) -> str:
    return f"{ChromaDBCollection(collection).value}/delta/{run_id}/"


# --- writing -----------------------------------------------------------------------------


def write_delta(
    records: Iterable[RecordTuple],
    collection: ChromaDBCollection | str,
    *,
    bucket: str,
    run_id: str,
    s3_client: S3Client | None = None,
) -> str:
    """Persist ``records`` as a delta and upload ``<collection>/delta/<run_id>/delta.tar.gz``.

    Each record is ``(id, embedding, document, metadata)``. Returns the prefix.
    """
    name = ChromaDBCollection(collection).value
    rows = list(records)
    s3 = s3_client or boto3.client("s3")
    prefix = delta_prefix(name, run_id)
    with tempfile.TemporaryDirectory(prefix="delta-") as tmp:
        persist = Path(tmp) / "chroma"
        with ChromaClient(persist, mode="delta") as chroma:
            target = chroma.get_or_create_collection(name)
            if rows:
                chroma.upsert(
                    target,
                    ids=[r[0] for r in rows],
                    embeddings=[list(r[1]) for r in rows],
                    documents=[r[2] or "" for r in rows],
                    metadatas=[r[3] for r in rows],
                )
        tarball = create_tarball(persist, Path(tmp) / DELTA_TARBALL)
        s3.upload_file(str(tarball), bucket, f"{prefix}{DELTA_TARBALL}")
    return prefix


def publish_compaction_run(
    dynamo_client: DynamoClient,
    *,
    image_id: str,
    receipt_id: int,
    run_id: str,
    lines: Iterable[RecordTuple],
    words: Iterable[RecordTuple],
    bucket: str,
    s3_client: S3Client | None = None,
) -> CompactionRun:
    """What an embedding producer does: upload both deltas, then write the run row."""
    s3 = s3_client or boto3.client("s3")
    run = CompactionRun(
        run_id=run_id,
        image_id=image_id,
        receipt_id=receipt_id,
        lines_delta_prefix=write_delta(lines, "lines", bucket=bucket, run_id=run_id, s3_client=s3),
        words_delta_prefix=write_delta(words, "words", bucket=bucket, run_id=run_id, s3_client=s3),
        created_at=now_iso(),
    )
    dynamo_client.add_compaction_run(run)
    return run


# --- fetching ----------------------------------------------------------------------------


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


def unpack_delta(fetched: Path, destination: Path) -> Path:
    """The delta's directory: a fetched tarball is extracted (checked) and removed."""
    if fetched.is_dir():
        return fetched
    extract_tarball(fetched, destination)
    fetched.unlink()
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


def read_delta(
    directory: Path, collection: ChromaDBCollection | str, *, run_id: str, dimension: int
) -> list[DeltaRecord]:
    """Every record of a fetched delta, checked: one collection, the right name and dimension."""
    name = ChromaDBCollection(collection).value
    try:
        client = ChromaClient(directory, mode="read")
    except Exception as error:
        raise DeltaError(f"run {run_id}: delta is not a Chroma directory: {error}") from error
    with client:
        names = client.list_collection_names()
        if names != [name]:
            raise DeltaError(
                f"run {run_id}: delta must hold exactly one collection named {name!r}, "
                f"found {sorted(names)}"
            )
        data = client.get_collection(name).get(include=["embeddings", "documents", "metadatas"])
    records: list[DeltaRecord] = []
    embeddings = data["embeddings"] if data["embeddings"] is not None else []
    documents: list[str | None] = (
        list(data["documents"]) if data["documents"] else [None] * len(data["ids"])
    )
    metadatas: list[Any] = list(data["metadatas"] or [{}] * len(data["ids"]))
    for vector_id, embedding, document, metadata in zip(
        data["ids"], embeddings, documents, metadatas, strict=True
    ):
        if len(embedding) != dimension:
            raise DeltaError(
                f"run {run_id}: {vector_id} has dimension {len(embedding)}, expected {dimension}"
            )
        records.append(
            DeltaRecord(
                id=vector_id,
                embedding=embedding,
                document=document,
                metadata=dict(metadata or {}),
            )
        )
    return records
