"""``receipt-compaction sink seed|verify`` (contract §12): a published snapshot loaded into
an empty collection of a real Chroma server, then compared with it — ids, provenance,
every metadata key, documents and vectors; differences are printed and exit 1."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from receipt_chroma.chroma_server import ChromaServer
from receipt_compaction_tools.cli.main import main
from receipt_compaction_tools.local.chroma_server import LocalChromaServer
from receipt_compaction_tools.testing.synthetic import SyntheticReceipt
from receipt_compaction_tools.testing.world import CompactionWorld
from receipt_dynamo.testing import (
    IMAGE_ID,
    OTHER_IMAGE_ID,
    make_label,
    make_metadata,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def world(aws_endpoint: str, tmp_path: Path) -> CompactionWorld:
    """Two receipts compacted into a published snapshot (the snapshot sink)."""
    world = CompactionWorld(tmp_path)
    for image_id in (IMAGE_ID, OTHER_IMAGE_ID):
        world.add_receipt(SyntheticReceipt(image_id, 1, dimension=world.dimension))
        world.dynamo.put_receipt_metadata(make_metadata(image_id, 1))
    world.dynamo.put_receipt_word_label(make_label(IMAGE_ID, 1, 1, 1, "TOTAL"))
    assert all(r.failures == [] for r in world.compact(world.pump()))
    return world


def _word_id(image_id: str, receipt: int, line: int, word: int) -> str:
    """A word's Chroma id, written from contract §4."""
    return f"IMAGE#{image_id}#RECEIPT#{receipt:05d}#LINE#{line:05d}#WORD#{word:05d}"


def _sink(
    action: str, world: CompactionWorld, server: LocalChromaServer, database: str, *extra: str
) -> tuple[int, str, str]:
    out = io.StringIO()
    code = main(
        [
            "sink",
            action,
            "--collection",
            "words",
            "--table",
            world.table,
            "--bucket",
            world.bucket,
            "--chroma-host",
            server.host,
            "--chroma-port",
            str(server.port),
            "--chroma-database",
            database,
            *extra,
        ],
        stdout=out,
    )
    return code, out.getvalue(), ""


def test_seed_then_verify_finds_no_difference(
    world: CompactionWorld, chroma_server: LocalChromaServer, chroma_database: str
) -> None:
    code, output, _ = _sink("seed", world, chroma_server, chroma_database, "--json")
    assert code == 0
    seeded = json.loads(output)
    assert (seeded["records"], seeded["version"]) == (12, world.published_version("words"))

    code, output, _ = _sink("verify", world, chroma_server, chroma_database)
    assert code == 0
    assert "no differences" in output
    server = ChromaServer(chroma_server.host, chroma_server.port, database=chroma_database)
    world.use_sink(world.config.sink, server)
    assert world.server_records("words") == world.snapshot_from_s3("words")


def test_verify_prints_every_kind_of_difference_and_fails(
    world: CompactionWorld,
    chroma_server: LocalChromaServer,
    chroma_database: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _sink("seed", world, chroma_server, chroma_database)[0] == 0
    server = ChromaServer(chroma_server.host, chroma_server.port, database=chroma_database)
    first, second, third = (_word_id(IMAGE_ID, 1, n, 1) for n in (1, 2, 3))
    gone = _word_id(OTHER_IMAGE_ID, 1, 3, 2)
    with server.connect() as client:
        words = client.get_collection("words")
        words.update(ids=[first], metadatas=[{"merchant_name": "Wrong", "label_status": None}])
        words.update(ids=[second], metadatas=[{"embedding_run_id": "another-run"}])
        found = words.get(ids=[second, third], include=["embeddings"])
        vectors = dict(zip(found["ids"], found["embeddings"], strict=True))
        # Chroma takes new documents only with their embeddings (it never computes one).
        words.update(ids=[third], documents=["changed"], embeddings=[vectors[third]])
        words.update(ids=[second], embeddings=[[x + 0.01 for x in vectors[second]]])
        words.delete(ids=[gone])
        words.upsert(ids=["IMAGE#stray"], embeddings=[[0.0] * world.dimension])

    code, output, _ = _sink("verify", world, chroma_server, chroma_database, "--json")
    assert code == 1
    report = json.loads(output)
    assert report["differences"] == {
        "document": 1,
        "extra_on_server": 1,
        "metadata": 1,
        "missing_on_server": 1,
        "provenance": 1,
        "vector": 1,
    }
    assert report["differing_keys"] == {
        "embedding_run_id": 1,
        "label_status": 1,
        "merchant_name": 1,
    }
    assert {(e["difference"], e["id"]) for e in report["examples"]} >= {
        ("missing_on_server", gone),
        ("extra_on_server", "IMAGE#stray"),
        ("vector", second),
    }
    error = capsys.readouterr().err
    assert "6 differences between the published words snapshot" in error
    assert _sink("seed", world, chroma_server, chroma_database)[0] == 1
    assert "already holds 12 records" in capsys.readouterr().err

    code, text, _ = _sink("verify", world, chroma_server, chroma_database, "--show", "2")
    assert code == 1
    assert f"missing_on_server: {gone}: in the snapshot only" in text
    assert "extra_on_server: IMAGE#stray: on the server only" in text
    assert "… 4 more (--show N)" in text


def test_an_unreachable_server_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHROMA_RETRY_ATTEMPTS", "1")
    aws = ["--table", "t", "--bucket", "b", "--no-lease"]
    server = ["--chroma-host", "127.0.0.1", "--chroma-port", "9"]
    code = main(["sink", "verify", "--collection", "lines", *aws, *server])
    error = capsys.readouterr().err.strip()
    assert code == 1
    assert error.startswith("error: Chroma server http://127.0.0.1:9/api/v2")
    assert "\n" not in error


def test_verify_compares_value_types_and_counts_every_kind_of_difference(
    world: CompactionWorld, chroma_server: LocalChromaServer, chroma_database: str
) -> None:
    assert _sink("seed", world, chroma_server, chroma_database)[0] == 0
    server = ChromaServer(chroma_server.host, chroma_server.port, database=chroma_database)
    first, second, both = (_word_id(IMAGE_ID, 1, n, 1) for n in (1, 2, 3))
    with server.connect() as client:
        words = client.get_collection("words")
        words.update(ids=[first], metadatas=[{"receipt_id": 1.0}])  # §4: an int
        words.update(ids=[second], metadatas=[{"line_id": True}])  # bool, not the int 2
        words.update(ids=[both], metadatas=[{"embedding_run_id": "other", "merchant_name": "X"}])

    code, output, _ = _sink("verify", world, chroma_server, chroma_database, "--json")
    assert code == 1
    report = json.loads(output)
    assert report["differences"] == {"metadata": 3, "provenance": 1}
    assert report["differing_keys"] == {
        "embedding_run_id": 1,
        "line_id": 1,
        "merchant_name": 1,
        "receipt_id": 1,
    }
    details = {(e["difference"], e["id"]): e["detail"] for e in report["examples"]}
    assert details[("metadata", first)] == "receipt_id: snapshot 1 (int), server 1.0 (float)"
    assert details[("provenance", both)].startswith("embedding_run_id: snapshot ")
    assert details[("metadata", both)].startswith("merchant_name: snapshot ")


def test_seed_and_verify_refuse_a_collection_in_another_distance_space(
    world: CompactionWorld,
    chroma_server: LocalChromaServer,
    chroma_database: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = ChromaServer(chroma_server.host, chroma_server.port, database=chroma_database)
    with server.connect() as client:
        client.client.create_collection(
            "words", configuration={"hnsw": {"space": "l2"}}, embedding_function=None
        )
    for action in ("seed", "verify"):
        assert _sink(action, world, chroma_server, chroma_database)[0] == 1
        error = capsys.readouterr().err
        assert "server collection words at http://" in error
        assert "uses distance space l2, contract §4 requires cosine" in error
    with server.connect() as client:
        assert client.client.get_collection("words").count() == 0  # nothing seeded
