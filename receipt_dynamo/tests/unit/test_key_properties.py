"""Property-based round trips of keys and ids."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from receipt_dynamo import ReceiptWord, ReceiptWordLabel
from receipt_dynamo.constants import EntityType
from receipt_dynamo.keys import IMAGE_PK_RE, SK_PATTERNS, parse_id
from receipt_dynamo.testing import make_label, make_word

ids = st.integers(min_value=1, max_value=99_999)
image_ids = st.builds(
    lambda b, v: str(uuid.UUID(bytes=b, version=v)),
    st.binary(min_size=16, max_size=16),
    st.sampled_from([4, 5]),
)
labels = st.from_regex(r"[A-Z0-9_]{1,34}", fullmatch=True)


@given(image_id=image_ids, receipt_id=ids, line_id=ids, word_id=ids)
def test_word_key_round_trip(image_id: str, receipt_id: int, line_id: int, word_id: int) -> None:
    word = make_word(image_id, receipt_id, line_id, word_id)
    assert ReceiptWord.from_item(word.to_item()) == word
    match = SK_PATTERNS[EntityType.RECEIPT_WORD].fullmatch(word.sk)
    assert match is not None
    assert [parse_id(g, "id") for g in match.groups()] == [receipt_id, line_id, word_id]
    pk_match = IMAGE_PK_RE.fullmatch(word.pk)
    assert pk_match is not None
    assert pk_match.group(1) == image_id


@given(image_id=image_ids, receipt_id=ids, line_id=ids, word_id=ids, label=labels)
def test_label_key_round_trip(
    image_id: str, receipt_id: int, line_id: int, word_id: int, label: str
) -> None:
    entity = make_label(image_id, receipt_id, line_id, word_id, label)
    parsed = ReceiptWordLabel.from_item(entity.to_item())
    assert parsed == entity
    assert parsed.to_item() == entity.to_item()
