"""What the table holds and which messages wait, in every schedule.

Small on purpose (a handful of words, dimension 4): a schedule's cost is its cycles and its
waits, not its data. Three receipts, four runs. Before a schedule starts, the *origin* rows
exist (receipt A1: two lines of two words, merged by run R1, and three word labels); in
the ``base`` world they are published in four steps (R1, then one label at a time), so the
pointer's history is full and the next publish drops a version: its retention has deletes
to make. Then the table changes, and each batch carries the messages of some of the
changes — one batch per cycle actor, so the actors compete over different work:

- batch 0: run R2 (a second receipt, B1), A1's merchant metadata, the REMOVE of word 2.2;
- batch 1: run R3 (a newer run of two of A1's words), a VALID label on word 1.1;
- batch 2: run R4 (a third receipt, A2), a PENDING label on its word.

In the ``empty`` world nothing is published, and batch 0 also carries R1's message: the
first cycle to run bootstraps the collection. Once every actor is done, one more change
(A1's merchant renamed) gives the system a last publish whose retention the final check
relies on; when that retention was skipped (the deadline came too close) or failed, the
merchant is renamed again, up to ``FINAL_CHANGES`` times.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field, replace

from receipt_compaction_tools.testing import spec_oracle as oracle
from receipt_compaction_tools.testing.explorer.messages import QueuedMessage, stream_message
from receipt_compaction_tools.testing.explorer.models import WorldKind

DIMENSION = 4
HISTORY = 4  # versions the pointer's history keeps (contract §6)
IMAGE_A = "3f2a8c1e-5b7d-4e09-9c3a-6d1f0b2e4a58"  # a v4 id
IMAGE_B = str(uuid.uuid5(uuid.NAMESPACE_URL, "https://example.invalid/explorer/image-b"))
T = "2026-11-28T{}:00.000000+00:00"


def _run(run_id: str, created_at: str, words: set[tuple[int, int]]) -> oracle.RunRow:
    return oracle.RunRow(
        run_id=run_id,
        created_at=created_at,
        line_ids=frozenset(),
        word_ids=frozenset(words),
        lines_delta_prefix=f"lines/delta/{run_id}/",
        words_delta_prefix=f"words/delta/{run_id}/",
    )


def _receipt(
    model: oracle.TableModel, image_id: str, receipt_id: int, words: dict[int, int]
) -> oracle.ReceiptState:
    receipt = model.receipt(image_id, receipt_id)
    receipt.exists = True
    for line_id, count in words.items():
        receipt.lines[line_id] = oracle.LineRow(line_id, f"line {line_id}")
        for word_id in range(1, count + 1):
            receipt.words[(line_id, word_id)] = oracle.WordRow(
                line_id, word_id, f"word {line_id}.{word_id}"
            )
    return receipt


R1 = _run("run-r1-origin", T.format("10:00"), {(1, 1), (1, 2), (2, 1), (2, 2)})
R2 = _run("run-r2-second-receipt", T.format("10:30"), {(1, 1), (1, 2)})
R3 = _run("run-r3-newer-vectors", T.format("11:00"), {(1, 1), (1, 2)})
R4 = _run("run-r4-third-receipt", T.format("11:00"), {(1, 1)})
RUNS = {R1.run_id: (IMAGE_A, 1, R1), R2.run_id: (IMAGE_B, 1, R2)}
RUNS |= {R3.run_id: (IMAGE_A, 1, R3), R4.run_id: (IMAGE_A, 2, R4)}


ORIGIN_LABELS = (
    oracle.LabelRow(2, 1, "DATE", T.format("10:10"), validation_status="VALID"),
    oracle.LabelRow(
        1, 2, "TAX", T.format("10:15"), validation_status="PENDING", label_proposed_by="human"
    ),
    oracle.LabelRow(1, 1, "SUBTOTAL", T.format("10:20"), validation_status="INVALID"),
)


def origin_models() -> list[oracle.TableModel]:
    """The origin table after each of its steps: R1's rows, then one more label each."""
    models = []
    for step in range(HISTORY):
        model = oracle.TableModel()
        receipt = _receipt(model, IMAGE_A, 1, {1: 2, 2: 2})
        receipt.runs[R1.run_id] = R1
        for label in ORIGIN_LABELS[:step]:
            receipt.labels[(label.line_id, label.word_id, label.label)] = label
        models.append(model)
    return models


def origin_model() -> oracle.TableModel:
    return origin_models()[-1]


def changed_model() -> oracle.TableModel:
    """The table while the schedule runs (origin plus every change the batches carry)."""
    model = origin_model()
    a1 = model.receipts[(IMAGE_A, 1)]
    a1.metadata = oracle.MetadataRow("Corner Mkt", "ChIJ-place-1", T.format("10:40"))
    del a1.words[(2, 2)]
    a1.labels[(1, 1, "TOTAL")] = oracle.LabelRow(
        1, 1, "TOTAL", T.format("10:45"), validation_status="VALID"
    )
    a1.runs[R3.run_id] = R3
    b1 = _receipt(model, IMAGE_B, 1, {1: 2})
    b1.runs[R2.run_id] = R2
    a2 = _receipt(model, IMAGE_A, 2, {1: 1})
    a2.labels[(1, 1, "TAX")] = oracle.LabelRow(
        1, 1, "TAX", T.format("10:50"), validation_status="PENDING", label_proposed_by="gpt"
    )
    a2.runs[R4.run_id] = R4
    return model


FINAL_CHANGES = 3


def _renamed(model: oracle.TableModel, change: int) -> oracle.TableModel:
    """``model`` with A1's merchant renamed for the ``change``-th time after the batches."""
    renamed = copy.deepcopy(model)
    a1 = renamed.receipts[(IMAGE_A, 1)]
    assert a1.metadata is not None
    a1.metadata = replace(
        a1.metadata, merchant_name=f"Final Mkt {change}", timestamp=T.format(f"12:{change:02d}")
    )
    return renamed


def _run_message(message_id: str, sequence: int, run: oracle.RunRow) -> QueuedMessage:
    image_id, receipt_id, _ = RUNS[run.run_id]
    data = {
        "run_id": run.run_id,
        "image_id": image_id,
        "receipt_id": receipt_id,
        "delta_s3_prefix": run.words_delta_prefix,
    }
    return stream_message(message_id, sequence, "COMPACTION_RUN", "INSERT", data)


def _metadata_message(
    message_id: str, sequence: int, event: str, changes: dict[str, dict[str, str | None]]
) -> QueuedMessage:
    data = {"image_id": IMAGE_A, "receipt_id": 1}
    return stream_message(message_id, sequence, "RECEIPT_METADATA", event, data, changes=changes)


def _label_message(
    message_id: str, sequence: int, key: tuple[str, int], label: oracle.LabelRow
) -> QueuedMessage:
    data = {
        "image_id": key[0],
        "receipt_id": key[1],
        "line_id": label.line_id,
        "word_id": label.word_id,
        "label": label.label,
    }
    changes = {
        name: {"old": None, "new": value}
        for name, value in label.relevant().items()
        if value not in (None, "")
    }
    return stream_message(
        message_id, sequence, "RECEIPT_WORD_LABEL", "INSERT", data, changes=changes
    )


@dataclass(frozen=True)
class Scenario:
    world: WorldKind
    origin: oracle.TableModel
    table: oracle.TableModel  # while the schedule runs
    # Published before the schedule (base world), one cycle each, each once the table is
    # at its model.
    origin_steps: tuple[tuple[oracle.TableModel, tuple[QueuedMessage, ...]], ...]
    batches: tuple[tuple[QueuedMessage, ...], ...]
    # The changes after the batches, in order: the table after each, and its message.
    final_changes: tuple[tuple[oracle.TableModel, QueuedMessage], ...]
    runs: dict[str, tuple[str, int, oracle.RunRow]] = field(default_factory=lambda: dict(RUNS))


def build_scenario(world: WorldKind) -> Scenario:
    table = changed_model()
    a1 = table.receipts[(IMAGE_A, 1)]
    a2 = table.receipts[(IMAGE_A, 2)]
    assert a1.metadata is not None
    merchant = {k: {"old": None, "new": v} for k, v in a1.metadata.relevant().items() if v}
    final_changes = []
    previous = table
    for change in range(1, FINAL_CHANGES + 1):
        model = _renamed(table, change)
        old = previous.receipts[(IMAGE_A, 1)].metadata
        new = model.receipts[(IMAGE_A, 1)].metadata
        assert old is not None, "A1 has merchant metadata before its renames"
        assert new is not None, "a rename keeps A1's merchant metadata"
        renamed: dict[str, dict[str, str | None]] = {
            "merchant_name": {"old": old.merchant_name, "new": new.merchant_name}
        }
        message = _metadata_message(f"m-final-{change}", 40 + change, "MODIFY", renamed)
        final_changes.append((model, message))
        previous = model
    origin_run = _run_message("m-origin-r1", 1, R1)
    label_messages = [
        (_label_message(f"m-origin-label-{n}", 1 + n, (IMAGE_A, 1), label),)
        for n, label in enumerate(ORIGIN_LABELS, start=1)
    ]
    origin_steps = tuple(zip(origin_models(), [(origin_run,), *label_messages], strict=True))
    batch_0 = (
        _run_message("m0-r2", 10, R2),
        _metadata_message("m0-metadata", 11, "INSERT", merchant),
        stream_message(
            "m0-remove-word",
            12,
            "RECEIPT_WORD",
            "REMOVE",
            {"image_id": IMAGE_A, "receipt_id": 1, "line_id": 2, "word_id": 2},
        ),
    )
    batch_1 = (
        _run_message("m1-r3", 20, R3),
        _label_message("m1-label", 21, (IMAGE_A, 1), a1.labels[(1, 1, "TOTAL")]),
    )
    batch_2 = (
        _run_message("m2-r4", 30, R4),
        _label_message("m2-label", 31, (IMAGE_A, 2), a2.labels[(1, 1, "TAX")]),
    )
    first: tuple[QueuedMessage, ...] = batch_0
    if world is WorldKind.EMPTY:
        first = (origin_run, *batch_0)
    return Scenario(
        world=world,
        origin=origin_model(),
        table=table,
        origin_steps=origin_steps if world is WorldKind.BASE else (),
        batches=(first, batch_1, batch_2),
        final_changes=tuple(final_changes),
    )
