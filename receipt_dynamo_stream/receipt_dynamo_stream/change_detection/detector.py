"""Which ChromaDB-relevant fields changed between two versions of a row (contract §3.2)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from boto3.dynamodb.types import TypeDeserializer

from receipt_dynamo.constants import EntityType, ValidationStatus
from receipt_dynamo.entities import DynamoEntity, readable
from receipt_dynamo_stream.change_rules import CHANGE_RULES
from receipt_dynamo_stream.exceptions import UnparseableRecordError
from receipt_dynamo_stream.models import FieldChange

CHROMADB_RELEVANT_FIELDS: Final[dict[EntityType, tuple[str, ...]]] = {
    entity_type: rule.relevant_fields
    for entity_type, rule in CHANGE_RULES.items()
    if rule.relevant_fields
}

_DESERIALIZER: Final = TypeDeserializer()
_VALIDATION_STATUSES: Final = frozenset(s.value for s in ValidationStatus)
# Contract §3.2 (rev 3): row timestamps are compared as text and never validated here: a
# malformed one still makes its message, and the compactor's invalid-row rule applies.
TEXT_COMPARED_FIELDS: Final = frozenset({"timestamp", "timestamp_added"})


def _normalise(name: str, value: Any) -> str | None:
    """Entity normalisation of one relevant value: "" and None are both empty (None)."""
    if name == "validation_status":
        value = value or ValidationStatus.NONE.value
        if not isinstance(value, str) or value not in _VALIDATION_STATUSES:  # a map: unhashable
            raise UnparseableRecordError(f"validation_status is not a status: {readable(value)}")
        return str(value)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if name in TEXT_COMPARED_FIELDS:
        return str(value)
    raise UnparseableRecordError(f"{name} must be a string, got {readable(value)}")


def _decode(name: str, raw: Any) -> Any:
    """One typed attribute value; strings and NULL (all relevant fields should be one of
    them) are read directly, anything else goes through ``TypeDeserializer``."""
    if raw is None:
        return None
    if isinstance(raw, dict) and len(raw) == 1:
        if "S" in raw:
            return raw["S"]
        if raw.get("NULL") is True:
            return None
    try:
        return _DESERIALIZER.deserialize(raw)
    except (TypeError, ValueError, AttributeError) as error:
        raise UnparseableRecordError(f"{name} cannot be decoded: {error}") from None


def relevant_values_from_image(
    entity_type: EntityType, image: Mapping[str, Any], key_values: Mapping[str, Any]
) -> dict[str, str | None]:
    """Decode only the relevant attributes of a typed image (``label`` comes from the key)."""
    values: dict[str, str | None] = {}
    for name in CHROMADB_RELEVANT_FIELDS[entity_type]:
        if name in key_values:
            values[name] = key_values[name]
            continue
        raw = image.get(name)
        # The common case inline (this runs for every relevant record): a plain string.
        text = raw.get("S") if type(raw) is dict and len(raw) == 1 else None
        if type(text) is str and text and name != "validation_status":
            values[name] = text
        else:
            values[name] = _normalise(name, _decode(name, raw))
    return values


# What ``_plain_value`` returns for a raw value it cannot read without the full path.
_UNREAD: Final = object()


def _plain_value(name: str, raw: Any) -> Any:
    """The normalised value of a raw attribute in the forms no check can refuse (absent,
    NULL, a string; a validation status that is one), else ``_UNREAD``. Same result as
    ``_normalise(name, _decode(name, raw))`` for those forms, without the calls."""
    if raw is None:
        text = None
    elif type(raw) is dict and len(raw) == 1:
        text = raw.get("S")
        if type(text) is not str:
            if raw.get("NULL") is not True:
                return _UNREAD
            text = None
    else:
        return _UNREAD
    if name == "validation_status":
        status = text or ValidationStatus.NONE.value
        return status if status in _VALIDATION_STATUSES else _UNREAD
    return text or None


def relevant_changes(
    entity_type: EntityType,
    old_image: Mapping[str, Any] | None,
    new_image: Mapping[str, Any] | None,
    key_values: Mapping[str, Any],
) -> dict[str, FieldChange]:
    """The relevant fields that differ between two typed images (either may be None: an
    INSERT or a REMOVE); the same as diffing ``relevant_values_from_image`` of each side.

    Each field is read from both images in one pass, with no intermediate dict per image.
    A value that needs decoding or may be refused sends the record through the two-pass
    path, so a bad record raises exactly the error it always did (old image first).
    """
    changes: dict[str, FieldChange] = {}
    if old_image is None and new_image is None:
        return changes
    for name in CHROMADB_RELEVANT_FIELDS[entity_type]:
        if name in key_values:  # the label name: from the key, the same on both sides
            key_value = key_values[name]
            before = None if old_image is None else key_value
            after = None if new_image is None else key_value
        elif old_image is None:
            new_raw = None if new_image is None else new_image.get(name)
            before, after = None, _plain_value(name, new_raw)
        else:
            raw = old_image.get(name)
            before = _plain_value(name, raw)
            if new_image is None:
                after = None
            else:  # most fields of a MODIFY are unchanged: equal raw values read once
                new_raw = new_image.get(name)
                after = before if new_raw == raw else _plain_value(name, new_raw)
        if before is _UNREAD or after is _UNREAD:
            return diff_relevant_values(
                None
                if old_image is None
                else relevant_values_from_image(entity_type, old_image, key_values),
                None
                if new_image is None
                else relevant_values_from_image(entity_type, new_image, key_values),
            )
        if before != after:
            changes[name] = FieldChange(old=before, new=after)
    return changes


def relevant_values_from_entity(entity: DynamoEntity) -> dict[str, str | None]:
    entity_type = EntityType(entity.TYPE)
    return {
        name: _normalise(name, getattr(entity, name))
        for name in CHROMADB_RELEVANT_FIELDS[entity_type]
    }


def diff_relevant_values(
    old: Mapping[str, str | None] | None, new: Mapping[str, str | None] | None
) -> dict[str, FieldChange]:
    """Changed fields; with one side absent, every non-empty field of the other side."""
    names = list((old or new or {}).keys())
    changes: dict[str, FieldChange] = {}
    for name in names:
        before = None if old is None else old.get(name)
        after = None if new is None else new.get(name)
        if before != after:
            changes[name] = FieldChange(old=before, new=after)
    return changes


def get_chromadb_relevant_changes(
    entity_type: EntityType | str,
    old_entity: DynamoEntity | None,
    new_entity: DynamoEntity | None,
) -> dict[str, FieldChange]:
    """Relevant fields that differ between two versions of a metadata or label row.

    Either side may be None (an INSERT or a REMOVE). Entity types without relevant
    fields have no changes.
    """
    kind = EntityType(entity_type)
    if kind not in CHROMADB_RELEVANT_FIELDS:
        return {}
    return diff_relevant_values(
        None if old_entity is None else relevant_values_from_entity(old_entity),
        None if new_entity is None else relevant_values_from_entity(new_entity),
    )
