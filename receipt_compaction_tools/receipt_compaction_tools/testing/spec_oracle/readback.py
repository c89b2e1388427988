"""Reading a table's items back into the model (§2)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from .contract import (
    check_image_id,
)
from .model import (
    LabelRow,
    LineRow,
    MetadataRow,
    ReceiptState,
    RunRow,
    TableModel,
    WordRow,
)

# --- reading a table back into a model (§2) ------------------------------------------------

_IMAGE_PK_RE = re.compile(r"IMAGE#(.+)", re.ASCII)
_ROW_SK_RE = re.compile(
    r"RECEIPT#(?P<receipt>\d{5})(?:"
    r"#LINE#(?P<line>\d{5})(?:#WORD#(?P<word>\d{5})(?:#LABEL#(?P<label>[A-Z0-9_]{1,34}))?)?"
    r"|#METADATA(?P<metadata>)"
    r"|#COMPACTION_RUN#(?P<run>[^#]+)"
    r")?",
    re.ASCII,
)
RunContents = tuple[frozenset[int], frozenset[tuple[int, int]]]


def plain(value: Mapping[str, Any]) -> Any:
    """A DynamoDB attribute value (``{"S": ...}`` form) as a Python value."""
    (kind, data), *rest = value.items()
    if rest:
        raise ValueError(f"an attribute value has one type, got {sorted(value)}")
    if kind == "S":
        return data
    if kind == "N":
        number = float(data)
        return int(number) if number.is_integer() and "." not in data else number
    if kind in ("BOOL", "NULL"):
        return None if kind == "NULL" else bool(data)
    if kind == "M":
        return {name: plain(inner) for name, inner in data.items()}
    if kind == "L":
        return [plain(inner) for inner in data]
    if kind == "SS":
        return frozenset(data)
    raise ValueError(f"attribute type {kind!r} is not used by the rows of §2")


def model_from_items(
    items: Iterable[Mapping[str, Mapping[str, Any]]], run_contents: Mapping[str, RunContents]
) -> TableModel:
    """The receipts that the table's ``IMAGE#`` rows describe, read by their keys (§2).

    A CompactionRun row names its deltas but not what they hold, so ``run_contents``
    gives, per run id, the line ids and (line, word) ids its deltas hold — what the
    producer wrote. Rows of other partitions (locks, pointers) are ignored.
    """
    model = TableModel()
    for item in items:
        pk_match = _IMAGE_PK_RE.fullmatch(plain(item["PK"]))
        if pk_match is None:
            continue
        image_id = check_image_id(pk_match.group(1))
        sk = plain(item["SK"])
        match = _ROW_SK_RE.fullmatch(sk)
        if match is None:
            raise ValueError(f"IMAGE row with a sort key §2 does not define: {sk!r}")
        attributes = {name: plain(value) for name, value in item.items()}
        receipt = model.receipt(image_id, int(match["receipt"]))
        _add_row(receipt, match, attributes, run_contents)
    return model


def _add_row(
    receipt: ReceiptState,
    key: re.Match[str],
    attributes: Mapping[str, Any],
    run_contents: Mapping[str, RunContents],
) -> None:
    text = attributes.get("text", "")
    if key["label"] is not None:
        line_id, word_id = int(key["line"]), int(key["word"])
        receipt.labels[(line_id, word_id, key["label"])] = LabelRow(
            line_id=line_id,
            word_id=word_id,
            label=key["label"],
            timestamp_added=attributes.get("timestamp_added", ""),
            validation_status=attributes.get("validation_status"),
            label_proposed_by=attributes.get("label_proposed_by"),
            reasoning=attributes.get("reasoning"),
            label_consolidated_from=attributes.get("label_consolidated_from"),
        )
    elif key["word"] is not None:
        word = WordRow(int(key["line"]), int(key["word"]), text)
        receipt.words[(word.line_id, word.word_id)] = word
    elif key["line"] is not None:
        receipt.lines[int(key["line"])] = LineRow(int(key["line"]), text)
    elif key["metadata"] is not None:
        receipt.metadata = MetadataRow(
            merchant_name=attributes.get("merchant_name", ""),
            place_id=attributes.get("place_id", ""),
            timestamp=attributes.get("timestamp", ""),
            canonical_merchant_name=attributes.get("canonical_merchant_name"),
            merchant_category=attributes.get("merchant_category"),
            address=attributes.get("address"),
            phone_number=attributes.get("phone_number"),
        )
    elif key["run"] is not None:
        run_id = key["run"]
        if run_id not in run_contents:
            raise KeyError(f"run {run_id}: what its deltas hold was not given")
        line_ids, word_ids = run_contents[run_id]
        receipt.runs[run_id] = RunRow(
            run_id=run_id,
            created_at=attributes["created_at"],
            line_ids=line_ids,
            word_ids=word_ids,
            lines_delta_prefix=attributes.get("lines_delta_prefix", ""),
            words_delta_prefix=attributes.get("words_delta_prefix", ""),
        )
    else:
        receipt.exists = True
