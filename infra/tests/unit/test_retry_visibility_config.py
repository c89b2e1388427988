"""``RETRY_VISIBILITY_SECONDS`` (contract §7, §8 rev 2) as the compactor reads it."""

from __future__ import annotations

import pytest

from receipt_chroma.compaction import CompactionConfig
from receipt_dynamo_stream.exceptions import ConfigurationError

BASE = {"DYNAMODB_TABLE_NAME": "receipts", "CHROMADB_BUCKET": "chroma"}


def _window(value: str | None) -> tuple[int, int]:
    env = dict(BASE) if value is None else {**BASE, "RETRY_VISIBILITY_SECONDS": value}
    return CompactionConfig.from_env(env).retry_visibility_seconds


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, (30, 90)),
        ("", (30, 90)),
        ("30-90", (30, 90)),
        (" 10 - 20 ", (10, 20)),
        ("45", (45, 45)),
        ("0", (0, 0)),
        ("0-43200", (0, 43200)),
    ],
)
def test_accepts_a_range_or_a_single_number(value: str | None, expected: tuple[int, int]) -> None:
    assert _window(value) == expected


@pytest.mark.parametrize(
    "value", ["soon", "30-", "-30", "30-60-90", "1.5", "30..90", "90-30", "43201", "10-50000"]
)
def test_rejects_anything_else_naming_the_variable(value: str) -> None:
    with pytest.raises(ConfigurationError, match="RETRY_VISIBILITY_SECONDS") as raised:
        _window(value)
    assert repr(value.strip()) in str(raised.value)
