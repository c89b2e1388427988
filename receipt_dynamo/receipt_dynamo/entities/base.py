"""Conversion between entities and DynamoDB items, and attribute readers that validate.

Items are in the low-level (typed) form that boto3 clients and stream images use:
``{"PK": {"S": "IMAGE#…"}}``. Values are converted with boto3's ``TypeSerializer`` /
``TypeDeserializer``; attributes whose value is None are omitted (canonical form).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar, Self, TypeVar

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from receipt_dynamo.keys import validate_id, validate_image_id
from receipt_dynamo.timestamps import validate_timestamp

Item = dict[str, Any]
"""A DynamoDB item in typed form (``{"name": {"S": "…"}}``)."""

Attributes = Mapping[str, Any]
"""An item's attributes as plain Python values (what ``TypeDeserializer`` returns)."""

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()

E = TypeVar("E", bound=StrEnum)


def to_dynamo_value(value: Any) -> Any:
    """Make a plain value serialisable: floats become Decimals, tuples lists."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, Mapping):
        return {k: to_dynamo_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_dynamo_value(v) for v in value]
    return value


def serialize(attributes: Mapping[str, Any]) -> Item:
    """Typed item from plain attributes, omitting None values."""
    item: Item = {}
    for name, value in attributes.items():
        if value is None:
            continue
        typed = _SERIALIZER.serialize(to_dynamo_value(value))
        if "SS" in typed:  # sets have no order; canonical items list them sorted
            typed = {"SS": sorted(typed["SS"])}
        item[name] = typed
    return item


def deserialize(item: Mapping[str, Any]) -> dict[str, Any]:
    """Plain attributes from a typed item."""
    return {name: _DESERIALIZER.deserialize(value) for name, value in item.items()}


class DynamoEntity(ABC):
    """Shared behaviour of every entity: keys, typed items and construction from items."""

    TYPE: ClassVar[str]

    @property
    @abstractmethod
    def pk(self) -> str: ...

    @property
    @abstractmethod
    def sk(self) -> str: ...

    @abstractmethod
    def attributes(self) -> dict[str, Any]:
        """Every non-key attribute as plain values (None = omitted)."""

    @classmethod
    @abstractmethod
    def from_attributes(cls, attributes: Attributes) -> Self:
        """Build the entity from plain attributes that include ``PK`` and ``SK``."""

    @property
    def key(self) -> Item:
        """The primary key in typed form."""
        return {"PK": {"S": self.pk}, "SK": {"S": self.sk}}

    def to_item(self) -> Item:
        """The item in canonical typed form."""
        return serialize({"PK": self.pk, "SK": self.sk, "TYPE": self.TYPE, **self.attributes()})

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Self:
        """Build the entity from a typed item (as returned by a boto3 client)."""
        return cls.from_attributes(deserialize(item))


# --- readers: each raises ValueError naming the field and the bad value ---------------


def readable(value: object) -> str:
    """A bad value as an operator reads it in an error: JSON, maps and lists named as
    such (``a map {"a": "b"}``), never a Python repr."""
    if isinstance(value, set | frozenset):
        return "a set " + json.dumps(sorted(value, key=str), default=str, ensure_ascii=False)
    if isinstance(value, bytes | bytearray):
        return f"binary data ({len(value)} bytes)"
    text = json.dumps(value, default=str, ensure_ascii=False)
    if isinstance(value, Mapping):
        return f"a map {text}"
    if isinstance(value, list | tuple):
        return f"a list {text}"
    if isinstance(value, Decimal):
        return str(value)  # a number, not the quoted text default=str gives
    return text


def required(attributes: Attributes, name: str, field: str | None = None) -> Any:
    """The value of ``name``; ``field`` is the name used in the error (default ``name``)."""
    value = attributes.get(name)
    if value is None:
        raise ValueError(f"{field or name} is required, got {readable(value)}")
    return value


def req_str(attributes: Attributes, name: str) -> str:
    value = required(attributes, name)
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {readable(value)}")
    return value


def opt_str(attributes: Attributes, name: str) -> str | None:
    value = attributes.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be a string or absent, got {readable(value)}")
    return value


def as_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise ValueError(f"{name} must be an integer, got {readable(value)}")
    if isinstance(value, Decimal):
        if value != value.to_integral_value():
            raise ValueError(f"{name} must be an integer, got {readable(value)}")
        return int(value)
    return value


def req_int(attributes: Attributes, name: str) -> int:
    return as_int(required(attributes, name), name)


def as_float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError(f"{name} must be a number, got {readable(value)}")
    return float(value)


def req_float(attributes: Attributes, name: str) -> float:
    return as_float(required(attributes, name), name)


def as_enum(enum: type[E], value: Any, name: str) -> E:
    try:
        return enum(value)
    except ValueError:
        allowed = "|".join(member.value for member in enum)
        raise ValueError(f"{name} must be one of {allowed}, got {readable(value)}") from None


def check_str(value: object, name: str, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {readable(value)}")


def check_key_parts(image_id: object, **ids: object) -> None:
    """Validate an entity's image id and integer ids."""
    validate_image_id(image_id)
    for name, value in ids.items():
        validate_id(value, name)


def check_timestamp(value: object, name: str, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    validate_timestamp(value, name)


def set_field(instance: object, name: str, value: Any) -> None:
    """Assign a normalised value to a frozen dataclass field during validation."""
    object.__setattr__(instance, name, value)
