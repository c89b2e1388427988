"""The change rule table agrees with the contract's tables (written out here)."""

from __future__ import annotations

from receipt_dynamo_stream import CHANGE_RULES

EXPECTED = {
    # entity type: (events producing messages, target collections, entity_data keys)
    "RECEIPT": ({"REMOVE"}, {"lines", "words"}, {"image_id", "receipt_id"}),
    "RECEIPT_LINE": ({"REMOVE"}, {"lines"}, {"image_id", "receipt_id", "line_id"}),
    "RECEIPT_WORD": ({"REMOVE"}, {"words"}, {"image_id", "receipt_id", "line_id", "word_id"}),
    "RECEIPT_WORD_LABEL": (
        {"INSERT", "MODIFY", "REMOVE"},
        {"words"},
        {"image_id", "receipt_id", "line_id", "word_id", "label"},
    ),
    "RECEIPT_METADATA": (
        {"INSERT", "MODIFY", "REMOVE"},
        {"lines", "words"},
        {"image_id", "receipt_id"},
    ),
    "COMPACTION_RUN": (
        {"INSERT"},
        {"lines", "words"},
        {"run_id", "image_id", "receipt_id", "delta_s3_prefix"},
    ),
}


def test_every_row_matches_the_contract() -> None:
    actual = {
        entity_type.value: (
            set(rule.events),
            {c.value for c in rule.targets},
            {name for name, _ in rule.entity_data},
        )
        for entity_type, rule in CHANGE_RULES.items()
    }
    assert actual == EXPECTED


def test_id_names_match_the_sk_pattern_groups() -> None:
    for rule in CHANGE_RULES.values():
        assert rule.sk_pattern.groups == len(rule.id_names), rule
