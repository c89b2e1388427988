"""The same operations against a real Chroma server (``chroma run``, the session's
server; a fresh database) through ``ChromaClient(http_host=…)``."""

from __future__ import annotations

import logging

import pytest

from receipt_chroma.chroma_server import ChromaServer
from receipt_chroma.compaction import (
    delete_embeddings,
    update_receipt_metadata,
    update_word_labels,
)
from receipt_chroma.ids import VectorKey
from receipt_compaction_tools.local.chroma_server import LocalChromaServer
from receipt_compaction_tools.testing.synthetic import embedding_for
from receipt_dynamo.testing import IMAGE_ID, make_label

pytestmark = pytest.mark.integration
LOGGER = logging.getLogger("chroma-server-test")


def test_operations_run_against_a_chroma_server(
    chroma_server: LocalChromaServer, chroma_database: str
) -> None:
    server = ChromaServer(chroma_server.host, chroma_server.port, database=chroma_database)
    with server.connect(mode="write") as client:
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
