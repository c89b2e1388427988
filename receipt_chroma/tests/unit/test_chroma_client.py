"""ChromaClient modes, chunked upserts and a close that releases the directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from receipt_chroma import ChromaClient
from receipt_chroma.exceptions import ChromaClientError
from receipt_compaction_tools.testing.synthetic import embedding_for


def test_write_close_and_reopen_read_only(tmp_path: Path) -> None:
    with ChromaClient(tmp_path / "db", mode="write") as client:
        collection = client.get_or_create_collection("words")
        client.upsert(
            collection,
            ["a", "b"],
            [embedding_for("a", 4), embedding_for("b", 4)],
            documents=["A", "B"],
            metadatas=[{"text": "A"}, {"text": "B"}],
        )
    with ChromaClient(tmp_path / "db", mode="read") as reader:
        found = reader.get_collection("words").get(ids=["a"], include=["documents"])
        assert found["documents"] == ["A"]
        assert reader.get_collection("words").configuration["hnsw"]["space"] == "cosine"
        with pytest.raises(ChromaClientError, match="read-only"):
            reader.upsert("words", ["c"], [embedding_for("c", 4)])
        with pytest.raises(ChromaClientError, match="read-only"):
            reader.get_or_create_collection("lines")


def test_modes_check_their_directory(tmp_path: Path) -> None:
    with pytest.raises(ChromaClientError, match="no Chroma database"):
        ChromaClient(tmp_path / "missing", mode="read")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "file").write_text("x")
    with pytest.raises(ChromaClientError, match="new or empty directory"):
        ChromaClient(tmp_path / "full", mode="delta")
    with pytest.raises(ChromaClientError, match="mode must be one of"):
        ChromaClient(tmp_path, mode="append")  # type: ignore[arg-type]


def test_upserts_are_chunked_to_the_maximum_batch_size(tmp_path: Path) -> None:
    with ChromaClient(tmp_path / "db", mode="write") as client:
        collection = client.get_or_create_collection("lines")
        count = client.max_batch_size + 7
        ids = [f"id-{n}" for n in range(count)]
        client.upsert(collection, ids, [[float(n), 1.0] for n in range(count)])
        assert collection.count() == count
        with pytest.raises(ChromaClientError, match="unique"):
            client.upsert(collection, ["x", "x"], [[1.0, 0.0], [0.0, 1.0]])


def test_closed_client_refuses_use(tmp_path: Path) -> None:
    client = ChromaClient(tmp_path / "db", mode="write")
    client.close()
    client.close()  # idempotent
    with pytest.raises(ChromaClientError, match="closed"):
        client.get_collection("lines")
