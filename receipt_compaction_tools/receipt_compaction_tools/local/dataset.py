"""A realistic synthetic dataset: receipts with lines, words, merchants, labels and the
embedding deltas a producer would upload (deterministic for a given seed)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from receipt_chroma.compaction import produce_compaction_run
from receipt_compaction_tools.testing.synthetic import SyntheticReceipt
from receipt_dynamo import DynamoClient, ReceiptMetadata, ReceiptWordLabel
from receipt_dynamo.testing import make_label, make_metadata

MERCHANTS = [
    ("Corner Market", "grocery", "1 Main St, Springfield", "555-0100"),
    ("Blue Bottle Cafe", "cafe", "22 Harbor Rd, Bayview", "555-0142"),
    ("Hardware Depot", "hardware", "9 Mill Ln, Oakdale", "555-0177"),
    ("Sunrise Pharmacy", "pharmacy", "310 Elm Ave, Riverton", "555-0110"),
    ("Green Grocer", "grocery", "71 Orchard Way, Fairview", "555-0199"),
]
VOCABULARY = [
    "MILK",
    "BREAD",
    "EGGS",
    "BUTTER",
    "APPLES",
    "COFFEE",
    "TEA",
    "SUGAR",
    "RICE",
    "PASTA",
    "SOAP",
    "TOWELS",
    "BATTERIES",
    "NAILS",
    "TAPE",
    "SUBTOTAL",
    "TAX",
    "TOTAL",
    "CASH",
    "CHANGE",
    "VISA",
    "DATE",
    "THANK",
    "YOU",
]
LABELS = ["PRODUCT_NAME", "LINE_TOTAL", "TOTAL", "TAX", "DATE", "MERCHANT_NAME"]


@dataclass
class DemoDataset:
    receipts: list[SyntheticReceipt]
    metadata: list[ReceiptMetadata] = field(default_factory=list)
    labels: list[ReceiptWordLabel] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(len(r.rows) for r in self.receipts) + len(self.metadata) + len(self.labels)


def generate(count: int = 25, *, dimension: int = 1536, seed: int = 7) -> DemoDataset:
    """``count`` receipts of ~12 lines and ~40 words, each with a merchant and labels."""
    rng = random.Random(seed)
    dataset = DemoDataset(receipts=[])
    for index in range(count):
        image_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        receipt = SyntheticReceipt(
            image_id,
            1,
            lines=12,
            words_per_line=rng.choice((3, 3, 4)),
            dimension=dimension,
            vocabulary=VOCABULARY,
        )
        dataset.receipts.append(receipt)
        name, category, address, phone = MERCHANTS[index % len(MERCHANTS)]
        dataset.metadata.append(
            make_metadata(
                image_id,
                1,
                merchant_name=name,
                merchant_category=category,
                address=address,
                phone_number=phone,
                place_id=f"place-{index % 5}",
            )
        )
        for word in rng.sample(receipt.word_rows, k=6):
            dataset.labels.append(
                make_label(
                    image_id,
                    1,
                    word.line_id,
                    word.word_id,
                    rng.choice(LABELS),
                    validation_status="PENDING",
                    label_proposed_by="demo-labeler",
                )
            )
    return dataset


def write(
    dataset: DemoDataset,
    dynamo: DynamoClient,
    bucket: str,
    progress: Callable[[int], None] = lambda _: None,
) -> None:
    """Rows first, then (as an embedding producer would) deltas and the run row."""
    for receipt, metadata in zip(dataset.receipts, dataset.metadata, strict=True):
        dynamo.put_entities([*receipt.rows, metadata])
        dynamo.put_entities([lab for lab in dataset.labels if lab.image_id == receipt.image_id])
        produce_compaction_run(
            dynamo,
            image_id=receipt.image_id,
            receipt_id=receipt.receipt_id,
            run_id=str(uuid.uuid4()),
            lines=receipt.line_records(),
            words=receipt.word_records(),
            bucket=bucket,
        )
        progress(1)
