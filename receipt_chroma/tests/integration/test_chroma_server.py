"""The same operations against a real Chroma server (``chroma run``) through HttpClient."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from receipt_chroma import ChromaClient
from receipt_chroma.compaction import (
    delete_embeddings,
    update_receipt_metadata,
    update_word_labels,
)
from receipt_chroma.ids import VectorKey
from receipt_compaction_tools.testing.factories import IMAGE_ID, make_label
from receipt_compaction_tools.testing.synthetic import embedding_for

pytestmark = pytest.mark.integration
LOGGER = logging.getLogger("chroma-server-test")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[int]:
    port = _free_port()
    chroma = Path(sys.executable).parent / "chroma"
    process = subprocess.Popen(
        [
            str(chroma),
            "run",
            "--path",
            str(tmp_path / "server"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("chroma server did not start") from None
                time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_operations_run_against_a_chroma_server(chroma_server: int) -> None:
    with ChromaClient(http_host="127.0.0.1", http_port=chroma_server, mode="write") as client:
        words = client.get_or_create_collection("words")
        keys = [VectorKey(IMAGE_ID, 1, 1, n) for n in (1, 2, 3)]
        client.upsert(
            words,
            [k.vector_id for k in keys],
            [embedding_for(k.vector_id, 4) for k in keys],
            metadatas=[k.base_metadata() for k in keys],
        )

        assert update_receipt_metadata(words, IMAGE_ID, 1, {"merchant_name": "Corner"}, LOGGER) == 3
        labels = [make_label(IMAGE_ID, 1, 1, 2, "TOTAL", validation_status="VALID")]
        assert update_word_labels(words, IMAGE_ID, 1, labels, LOGGER) == 3
        found = words.get(ids=[keys[1].vector_id], include=["metadatas"])["metadatas"][0]
        assert found["merchant_name"] == "Corner"
        assert found["valid_labels_array"] == ["TOTAL"]

        ids = [k.vector_id for k in keys]
        assert delete_embeddings(words, ids, LOGGER, image_id=IMAGE_ID, receipt_id=1) == 3
        assert words.count() == 0
