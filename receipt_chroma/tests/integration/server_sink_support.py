"""What the server-sink suites share: the server of a test (a fresh database on the
session's ``chroma run``), two receipts to compact, and the runs' states as the table
holds them."""

from __future__ import annotations

from receipt_chroma.chroma_http import RetryPolicy
from receipt_chroma.chroma_server import ChromaServer
from receipt_compaction_tools.local.chroma_server import LocalChromaServer
from receipt_compaction_tools.testing.synthetic import SyntheticReceipt
from receipt_compaction_tools.testing.world import CompactionWorld
from receipt_dynamo import ValidationStatus
from receipt_dynamo.testing import (
    IMAGE_ID,
    OTHER_IMAGE_ID,
    make_label,
    make_metadata,
)

# Long enough to outlast a restart of `chroma run` (~3 s here, more on a busy machine).
PATIENT = RetryPolicy(attempts=20, base_seconds=0.2, max_seconds=2.0)
IMPATIENT = RetryPolicy(attempts=2, base_seconds=0.05, max_seconds=0.05)


def patient_server(chroma_server: LocalChromaServer, database: str) -> ChromaServer:
    """The session's server, one database of it, retried long enough to outlast a restart."""
    return ChromaServer(
        host=chroma_server.host, port=chroma_server.port, database=database, retry=PATIENT
    )


def populate(world: CompactionWorld) -> tuple[SyntheticReceipt, SyntheticReceipt]:
    first = SyntheticReceipt(IMAGE_ID, 1, dimension=world.dimension)
    second = SyntheticReceipt(OTHER_IMAGE_ID, 1, dimension=world.dimension)
    for receipt in (first, second):
        world.add_receipt(receipt)
        world.dynamo.put_receipt_metadata(make_metadata(receipt.image_id, 1))
    world.dynamo.put_receipt_word_label(
        make_label(IMAGE_ID, 1, 1, 1, "TOTAL", validation_status=ValidationStatus.VALID)
    )
    return first, second


def run_states(world: CompactionWorld, image_id: str) -> set[tuple[str, str]]:
    runs = world.dynamo.list_compaction_runs_for_receipt(image_id, 1)
    return {(r.lines_state.value, r.words_state.value) for r in runs}
