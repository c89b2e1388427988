"""Which (entity type, event) pairs produce messages, for which collections, and what
their ``entity_data`` holds (SPEC §3.3 and §3.4). The message builder produces from this
table and the compactor refuses any message the table does not describe."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from receipt_dynamo.constants import ChromaDBCollection, EntityType

LINES, WORDS = ChromaDBCollection.LINES, ChromaDBCollection.WORDS
_RECEIPT_KEYS = ("image_id", "receipt_id")


@dataclass(frozen=True, slots=True)
class MessageRule:
    """Events (``INSERT``/``MODIFY``/``REMOVE``) that produce messages for an entity type,
    the collections they target and the ``entity_data`` keys with their types."""

    events: frozenset[str]
    targets: tuple[ChromaDBCollection, ...]
    entity_data: tuple[tuple[str, type], ...]

    def produces(self, event: str, collection: ChromaDBCollection) -> bool:
        return event in self.events and collection in self.targets


def _keys(*names: str) -> tuple[tuple[str, type], ...]:
    return tuple((name, str if name in ("image_id", "label") else int) for name in names)


ALL_EVENTS: Final = frozenset({"INSERT", "MODIFY", "REMOVE"})

MESSAGE_RULES: Final[dict[EntityType, MessageRule]] = {
    EntityType.RECEIPT_METADATA: MessageRule(ALL_EVENTS, (LINES, WORDS), _keys(*_RECEIPT_KEYS)),
    EntityType.RECEIPT_WORD_LABEL: MessageRule(
        ALL_EVENTS, (WORDS,), _keys(*_RECEIPT_KEYS, "line_id", "word_id", "label")
    ),
    EntityType.COMPACTION_RUN: MessageRule(
        frozenset({"INSERT"}),
        (LINES, WORDS),
        (("run_id", str), *_keys(*_RECEIPT_KEYS), ("delta_s3_prefix", str)),
    ),
    EntityType.RECEIPT: MessageRule(frozenset({"REMOVE"}), (LINES, WORDS), _keys(*_RECEIPT_KEYS)),
    EntityType.RECEIPT_LINE: MessageRule(
        frozenset({"REMOVE"}), (LINES,), _keys(*_RECEIPT_KEYS, "line_id")
    ),
    EntityType.RECEIPT_WORD: MessageRule(
        frozenset({"REMOVE"}), (WORDS,), _keys(*_RECEIPT_KEYS, "line_id", "word_id")
    ),
}
