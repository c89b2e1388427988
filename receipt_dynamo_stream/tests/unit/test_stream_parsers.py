"""Entity detection from keys (contract §3.1) and record-level parse failures (§3.5)."""

from __future__ import annotations

import copy

import pytest

from receipt_dynamo import EntityType
from receipt_dynamo.testing import (
    make_compaction_run,
    make_label,
    make_metadata,
    make_word,
    stream_record,
)
from receipt_dynamo_stream import (
    UnparseableRecordError,
    build_messages,
    detect_entity_type,
    is_compaction_run,
    parse_compaction_run,
    parse_stream_record,
)

IMAGE = "3f52804b-2fad-4e00-92c8-b593da3a8ed3"
PK = f"IMAGE#{IMAGE}"


@pytest.mark.parametrize(
    ("sk", "entity_type", "ids"),
    [
        ("RECEIPT#00001", EntityType.RECEIPT, {"receipt_id": 1}),
        ("RECEIPT#00001#LINE#00002", EntityType.RECEIPT_LINE, {"receipt_id": 1, "line_id": 2}),
        (
            "RECEIPT#00001#LINE#00002#WORD#00003",
            EntityType.RECEIPT_WORD,
            {"receipt_id": 1, "line_id": 2, "word_id": 3},
        ),
        (
            "RECEIPT#00001#LINE#00002#WORD#00003#LABEL#GRAND_TOTAL",
            EntityType.RECEIPT_WORD_LABEL,
            {"receipt_id": 1, "line_id": 2, "word_id": 3, "label": "GRAND_TOTAL"},
        ),
        ("RECEIPT#00007#METADATA", EntityType.RECEIPT_METADATA, {"receipt_id": 7}),
        (
            "RECEIPT#00001#COMPACTION_RUN#run-1",
            EntityType.COMPACTION_RUN,
            {"receipt_id": 1, "run_id": "run-1"},
        ),
    ],
)
def test_relevant_key_shapes(sk: str, entity_type: EntityType, ids: dict[str, object]) -> None:
    assert detect_entity_type(PK, sk) == (entity_type, {"image_id": IMAGE, **ids})


@pytest.mark.parametrize(
    ("pk", "sk"),
    [
        (PK, "RECEIPT#00001#LINE#00002#WORD#00003#LETTER#00001"),  # letters
        (PK, "RECEIPT#00001#SECTION#00001"),
        (PK, "RECEIPT#00001#LINE_ITEM#00001"),
        (PK, "IMAGE"),  # the image row itself
        (PK, "receipt#00001"),  # lower case
        (PK, "RECEIPT#1"),  # unpadded
        (PK, "RECEIPT#000001"),  # six digits
        (PK, "RECEIPT#00001#METADATA#EXTRA"),
        (PK, "RECEIPT#00001\n"),  # fullmatch, not match
        (PK, "RECEIPT#０００01"),  # non-ASCII digits  # noqa: RUF001
        (f"IMAGE#{IMAGE.upper()}", "RECEIPT#00001"),  # upper-case uuid
        ("IMAGE#3f52804b-2fad-1e00-92c8-b593da3a8ed3", "RECEIPT#00001"),  # uuid v1
        ("LOCK#lines#chroma-lines-compaction", "LOCK"),
        ("SNAPSHOT#lines", "POINTER"),
        (f"{PK}#x", "RECEIPT#00001"),
    ],
)
def test_confusable_keys_are_not_relevant(pk: str, sk: str) -> None:
    assert detect_entity_type(pk, sk) is None


@pytest.mark.parametrize(
    "sk",
    [
        "RECEIPT#00000",
        "RECEIPT#00001#LINE#00000",
        "RECEIPT#00001#LINE#00001#WORD#00000",
        "RECEIPT#00001#LINE#00001#WORD#00001#LABEL#total",
        "RECEIPT#00001#LINE#00001#WORD#00001#LABEL#" + "A" * 35,
        "RECEIPT#00000#METADATA",
    ],
)
def test_relevant_shapes_with_invalid_parts_are_parse_failures(sk: str) -> None:
    with pytest.raises(UnparseableRecordError, match="invalid key"):
        detect_entity_type(PK, sk)


def _good_record() -> dict[str, object]:
    return stream_record("INSERT", new=make_metadata(IMAGE, 1))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.pop("eventName"), "eventName"),
        (lambda r: r["dynamodb"]["Keys"].pop("PK"), "Keys.PK.S"),
        (lambda r: r["dynamodb"]["Keys"].update(SK={"N": "1"}), "Keys.SK.S"),
        (lambda r: r["dynamodb"].pop("SequenceNumber"), "SequenceNumber"),
        (lambda r: r["dynamodb"].update(SequenceNumber="١٢"), "decimal dynamodb.SequenceNumber"),
        (lambda r: r["dynamodb"].pop("ApproximateCreationDateTime"), "ApproximateCreationDate"),
        (lambda r: r["dynamodb"].update(ApproximateCreationDateTime=None), "ApproximateCreation"),
        (lambda r: r.pop("dynamodb"), "dynamodb"),
    ],
)
def test_records_missing_required_parts_are_unparseable(mutate: object, message: str) -> None:
    record = copy.deepcopy(_good_record())
    mutate(record)  # type: ignore[operator]
    with pytest.raises(UnparseableRecordError, match=message):
        parse_stream_record(record)


def test_other_event_names_and_irrelevant_rows_are_counted_not_errors() -> None:
    ttl_expiry = _good_record()
    ttl_expiry["eventName"] = "TTL"
    word_insert = stream_record("INSERT", new=make_word(IMAGE, 1, 1, 1))
    result = build_messages([ttl_expiry, word_insert])
    assert (result.messages, result.unparseable, result.irrelevant) == ([], [], 2)


def test_a_creation_time_is_required_only_of_records_that_make_messages() -> None:
    # §3.5: an attribute is refused when a message is built from it; a word written or
    # edited makes none, while a word removed makes one that names its creation time.
    edited, removed = (
        stream_record("MODIFY", old=make_word(IMAGE, 1, 1, 1), new=make_word(IMAGE, 1, 1, 1)),
        stream_record("REMOVE", old=make_word(IMAGE, 1, 1, 2)),
    )
    for record in (edited, removed):
        del record["dynamodb"]["ApproximateCreationDateTime"]
    result = build_messages([edited, removed])
    assert (result.messages, result.irrelevant) == ([], 1)
    assert [record for record, _ in result.unparseable] == [removed]
    assert "ApproximateCreationDateTime" in str(result.unparseable[0][1])


def test_bad_images_make_only_their_record_unparseable() -> None:
    bad_status = make_label(IMAGE, 1, 1, 1).to_item()
    bad_status["validation_status"] = {"S": "MAYBE"}
    bad_type = make_metadata(IMAGE, 1).to_item()
    bad_type["merchant_name"] = {"N": "12"}
    no_new_image = stream_record("INSERT", old=make_metadata(IMAGE, 2))
    no_new_image["eventName"] = "INSERT"
    good = _good_record()
    result = build_messages(
        [
            stream_record("INSERT", new=bad_status),
            stream_record("INSERT", new=bad_type),
            no_new_image,
            good,
            "not even a record",
        ]
    )
    errors = [str(error) for _, error in result.unparseable]
    assert len(errors) == 4
    assert "validation_status" in errors[0]
    assert "merchant_name" in errors[1]
    assert "NewImage" in errors[2]
    assert "must be a map" in errors[3]
    assert {m.collection.value for _, m in result.messages} == {"lines", "words"}


def test_a_run_row_is_recognised_by_its_key_whatever_its_event() -> None:
    run = make_compaction_run(IMAGE, 1, "run-1")
    for record in (
        stream_record("INSERT", new=run),
        stream_record("MODIFY", old=run, new=run),
        stream_record("REMOVE", old=run),
    ):
        assert is_compaction_run(record)
        assert parse_compaction_run(record).run_id == "run-1"
    # Only the INSERT makes messages (§3.3): the others are counted, never parked.
    result = build_messages(
        [stream_record("MODIFY", old=run, new=run), stream_record("REMOVE", old=run)]
    )
    assert (result.messages, result.unparseable, result.irrelevant) == ([], [], 2)
