"""The delta format: a persisted Chroma directory holding exactly one collection, named
after the target collection, stored as ``<prefix>delta.tar.gz`` with members relative to
the persist directory (contract §6). Written by embedding producers, read by the compactor.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from receipt_chroma.archive import create_tarball, extract_tarball
from receipt_chroma.chroma_client import ChromaClient
from receipt_chroma.compaction.models import DeltaRecord
from receipt_chroma.exceptions import DeltaError
from receipt_dynamo.aws_clients import aws_client
from receipt_dynamo.constants import ChromaDBCollection

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

DELTA_TARBALL = "delta.tar.gz"
RecordTuple = tuple[str, Sequence[float], str | None, dict[str, Any]]


def delta_prefix(collection: ChromaDBCollection | str, run_id: str) -> str:
    return f"{ChromaDBCollection(collection).value}/delta/{run_id}/"


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
    s3 = s3_client or aws_client("s3")
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


def unpack_delta(fetched: Path, destination: Path) -> Path:
    """The delta's directory: a fetched tarball is extracted (checked) and removed."""
    if fetched.is_dir():
        return fetched
    extract_tarball(fetched, destination)
    fetched.unlink()
    return destination


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
    ids: list[str] = data["ids"]
    # One float32 block (Chroma stores float32 and hands back float64): half the bytes to
    # pass from the helper process, and the upsert takes its rows without converting.
    vectors = np.asarray(data["embeddings"] if ids else np.empty((0, dimension)), dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[1] != dimension:
        found = vectors.shape[1] if vectors.ndim == 2 else "none"
        raise DeltaError(f"run {run_id}: {ids[0]} has dimension {found}, expected {dimension}")
    documents: list[str | None] = (
        list(data["documents"]) if data["documents"] else [None] * len(ids)
    )
    metadatas: list[Any] = list(data["metadatas"] or [{}] * len(ids))
    return [
        DeltaRecord(
            id=vector_id, embedding=vector, document=document, metadata=dict(metadata or {})
        )
        for vector_id, vector, document, metadata in zip(
            ids, vectors, documents, metadatas, strict=True
        )
    ]
