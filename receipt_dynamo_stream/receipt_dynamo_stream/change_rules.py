"""The change rule (contract §3) as one table: for each entity type of the table, the
names of its SK's id groups, its entity class, its ChromaDB-relevant fields, the events
that produce messages, the collections those go to, and what their ``entity_data`` holds.

Parsing, change detection, message building, message validation, backfill and the
compactor all read it; adding an entity type is one row (plus its SK pattern in
``receipt_dynamo.keys``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from receipt_dynamo.constants import ChromaDBCollection, EntityType
from receipt_dynamo.entities import (
    CompactionRun,
    DynamoEntity,
    Receipt,
    ReceiptLine,
    ReceiptMetadata,
    ReceiptWord,
    ReceiptWordLabel,
)
from receipt_dynamo.keys import SK_PATTERNS

LINES, WORDS = ChromaDBCollection.LINES, ChromaDBCollection.WORDS
ALL_EVENTS: Final = frozenset({"INSERT", "MODIFY", "REMOVE"})
_TEXT_IDS: Final = frozenset({"image_id", "label", "run_id", "delta_s3_prefix"})


@dataclass(frozen=True, slots=True)
class ChangeRule:
    entity_class: type[DynamoEntity]
    id_names: tuple[str, ...]  # the SK pattern's groups, in order
    events: frozenset[str]  # INSERT / MODIFY / REMOVE that produce messages
    targets: tuple[ChromaDBCollection, ...]
    # Fields whose change matters (§3.2); a row that has them is *state*: the compactor
    # recomputes record keys from it. MODIFY produces a message only if one changed. The
    # row timestamps among them (rev 3) feed the *_updated_at / *_validated_at keys.
    relevant_fields: tuple[str, ...] = ()
    extra_entity_data: tuple[str, ...] = ()  # entity_data beyond the image and key ids

    @property
    def sk_pattern(self) -> re.Pattern[str]:
        return SK_PATTERNS[EntityType(self.entity_class.TYPE)]

    @property
    def entity_data(self) -> tuple[tuple[str, type], ...]:
        """The ``entity_data`` keys of this type's messages, with their JSON types."""
        names = ("image_id", *self.id_names, *self.extra_entity_data)
        return tuple((name, str if name in _TEXT_IDS else int) for name in names)

    def produces(self, event: str, collection: ChromaDBCollection) -> bool:
        return event in self.events and collection in self.targets


CHANGE_RULES: Final[dict[EntityType, ChangeRule]] = {
    EntityType.RECEIPT: ChangeRule(Receipt, ("receipt_id",), frozenset({"REMOVE"}), (LINES, WORDS)),
    EntityType.RECEIPT_LINE: ChangeRule(
        ReceiptLine, ("receipt_id", "line_id"), frozenset({"REMOVE"}), (LINES,)
    ),
    EntityType.RECEIPT_WORD: ChangeRule(
        ReceiptWord, ("receipt_id", "line_id", "word_id"), frozenset({"REMOVE"}), (WORDS,)
    ),
    EntityType.RECEIPT_WORD_LABEL: ChangeRule(
        ReceiptWordLabel,
        ("receipt_id", "line_id", "word_id", "label"),
        ALL_EVENTS,
        (WORDS,),
        relevant_fields=(
            "label",
            "reasoning",
            "validation_status",
            "label_proposed_by",
            "label_consolidated_from",
            "timestamp_added",
        ),
    ),
    EntityType.RECEIPT_METADATA: ChangeRule(
        ReceiptMetadata,
        ("receipt_id",),
        ALL_EVENTS,
        (LINES, WORDS),
        relevant_fields=(
            "canonical_merchant_name",
            "merchant_name",
            "merchant_category",
            "address",
            "phone_number",
            "place_id",
            "timestamp",
        ),
    ),
    EntityType.COMPACTION_RUN: ChangeRule(
        CompactionRun,
        ("receipt_id", "run_id"),
        frozenset({"INSERT"}),
        (LINES, WORDS),
        extra_entity_data=("delta_s3_prefix",),
    ),
}

STATE_TYPES: Final = frozenset(t for t, rule in CHANGE_RULES.items() if rule.relevant_fields)
"""Entity types whose rows define record keys (metadata, labels)."""

INSERT_TYPES: Final = tuple(t for t, rule in CHANGE_RULES.items() if "INSERT" in rule.events)
"""Entity types whose existing rows a backfill turns into messages."""
