"""Emulator costs removed from moto 5.2.5, each computing what moto computes, once instead
of many times; ``apply()`` installs them (the own-process server at start, the test plugin's
in-process server before it starts).

- ReceiveMessage checks each message it returns against the queue's retention period by
  computing every queue attribute, approximate message counts included: a pass over all the
  queue's messages per message returned, so a receive from a queue holding n messages costs
  O(n²). The check here reads the retention period directly; what it decides is the same.
- A projected DynamoDB read (Query, Scan, GetItem with a ProjectionExpression) converted the
  whole item to JSON once per projected attribute (the compactor's receipt read projects
  ~20), then built the projected item checking its size once per attribute over every
  attribute. Here a projection of top-level names whose values come back from that
  conversion unchanged (strings, numbers in canonical form, booleans, nulls, and maps and
  lists of them) copies those values; any other converts the item once.
- The server listed moto's package folder from disk on every request to learn whether the
  request's host names a service; here once.
- A Query of a table's own key sorted every item of the table to keep those of one
  partition: O(table) per call where DynamoDB costs O(partition). Here moto's query runs on a
  view of the table holding the queried partition alone, so it keeps the same items. A
  projected one also skips moto's deep copy of every item read: the projection copies
  what it keeps, and the filter before it only reads.
  Each item's size (for the 1 MB page limit) is computed once per query: moto's loop
  computed it twice for every item it kept.
- TransactWriteItems deep-copied every table it names, each table's stream records
  included, to roll back if an operation fails: O(table + stream) per transaction (0.8 s
  per snapshot pointer swap after 10,000 changes). Here only the items at the keys the
  transaction names are copied (no operation of a transaction writes anywhere else) and
  each stream's length is noted; a refused transaction puts those items back and drops
  the stream records written after that length. The backend's item writes take one lock
  while this runs, so those records are the transaction's own (moto's rollback swapped
  whole tables back in, losing a concurrent writer's item). Two differences from moto, both
  what DynamoDB does: a transaction refused for an entry naming two operations leaves
  nothing (moto kept the writes before it), and a stream reader holding an iterator from
  before a cancel goes on reading the table's one stream (moto's swapped-in copy left the
  iterator on the discarded one).
- The JSON response serializer walked each DynamoDB ``AttributeValue`` member by member
  through botocore's shape model, trying several spellings of every key: half of a Query's
  cost. An attribute value already in wire form (strings, numbers, their sets, maps and
  lists of them) is what that walk writes, so it is copied as it is; any other (binary,
  booleans, anything unexpected) still takes moto's walk. Before that, moto turned each
  response's items into plain dicts with a generic walk that tried five kinds of object
  for every string; strings and string-valued attribute values are answered at once.
"""

from __future__ import annotations

import copy
import decimal
import functools
import inspect
import re
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.types import DYNAMODB_CONTEXT
from botocore.utils import merge_dicts
from moto import backends
from moto.core.serialize import BaseJSONSerializer
from moto.core.utils import unix_time
from moto.dynamodb import models as dynamodb_models
from moto.dynamodb import responses as dynamodb_responses
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models import table as dynamodb_table_module
from moto.dynamodb.models import utilities as dynamodb_utilities
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict, serializer
from moto.dynamodb.models.table import Table
from moto.dynamodb.models.utilities import find_nested_key
from moto.sqs.models import Message, SQSBackend


def _within_retention_period(self: SQSBackend, queue_name: str, message: Message) -> bool:
    queue: Any = self.get_queue(queue_name)  # moto sets queue attributes dynamically
    retention_seconds = int(queue.message_retention_period)
    sent_seconds = int(message.sent_timestamp or 0) / 1000
    return sent_seconds + retention_seconds > unix_time()


_project_converting_per_path = Item.project


def _keeps_its_form(value: DynamoType) -> bool:
    """Whether moto's projection gives ``value`` back as it is: it converts values to Python
    and back with boto3's (de)serializer, which rewrites binary values, set order and
    numbers outside their canonical form (``1e3`` comes back as ``1E+3``)."""
    if value.type in ("S", "BOOL", "NULL"):
        return True
    if value.type == "N":
        try:
            return bool(str(DYNAMODB_CONTEXT.create_decimal(value.value)) == value.value)
        except decimal.DecimalException:
            return False
    if value.type == "M":
        return all(_keeps_its_form(v) for v in value.value.values())
    if value.type == "L":
        return all(_keeps_its_form(v) for v in value.value)
    return False


def _project_top_level_names(self: Item, paths: list[list[str]]) -> Item | None:
    """The projection copying its attributes, or None when moto's conversion is needed."""
    if not all(len(path) == 1 and "[" not in path[0] for path in paths):
        return None
    kept = {path[0]: self.attrs[path[0]] for path in paths if path[0] in self.attrs}
    if not all(_keeps_its_form(value) for value in kept.values()):
        return None
    projected = Item(self.hash_key, self.range_key, {})
    # A part of an item that passed the size check: no need to check it once per attribute.
    projected.attrs = LimitedSizeDict({k: copy.deepcopy(v) for k, v in kept.items()})
    return projected


def _project(self: Item, projection_expressions: list[list[str]]) -> Item:
    """moto's ``Item.project`` with the item converted once, or not at all (above). Paths
    under distinct top-level attributes read disjoint parts of the conversion, so sharing it
    changes nothing; paths sharing one (``a.b`` and ``a.c``) go to moto's own code, where
    merging one path's result may alter what the next one reads."""
    copied = _project_top_level_names(self, projection_expressions)
    if copied is not None:
        return copied
    roots = [re.sub(r"\[\d+\]$", "", path[0]) for path in projection_expressions]
    if len(set(roots)) != len(roots):
        return _project_converting_per_path(self, projection_expressions)
    item = self.to_regular_json()
    projected: dict[str, Any] = {}
    for path in projection_expressions:
        merge_dicts(projected, find_nested_key(path, item))
    return Item(
        hash_key=self.hash_key,
        range_key=self.range_key,
        attrs=dict(serializer.serialize(projected)["M"]),
    )


_list_moto_modules_from_disk = backends.list_of_moto_modules


@functools.cache
def _moto_modules() -> tuple[str, ...]:
    """moto's service folders, listed once: they do not change while the server runs."""
    return tuple(_list_moto_modules_from_disk())


_query_sorting_whole_table = Table.query
_QUERY_PARAMETERS = inspect.signature(_query_sorting_whole_table)


def _query(self: Table, *args: Any, **kwargs: Any) -> Any:
    """moto's ``Table.query``; on the table's own key, run on a one-partition view."""
    arguments = _QUERY_PARAMETERS.bind(self, *args, **kwargs).arguments
    hash_key = arguments.get("hash_key")
    if arguments.get("index_name") is not None or hash_key is None:
        return _query_sorting_whole_table(self, *args, **kwargs)
    view: Any = copy.copy(self)  # shares the items; moto's query only reads them
    partition = self.items.get(hash_key)
    view.items = {} if partition is None else {hash_key: partition}
    if partition is None:
        found = []
    else:
        found = list(partition.values()) if self.range_key_attr else [partition]
    view.all_items = lambda: found  # the query sorts them by range key itself
    with ExitStack() as scope:
        scope.enter_context(_sizes_remembered())
        if arguments.get("projection_expressions"):
            scope.enter_context(_not_copied(list))
        return _query_sorting_whole_table(view, *args, **kwargs)


_item_size = Item.size
_remembered_sizes = threading.local()


@contextmanager
def _sizes_remembered() -> Iterator[None]:
    """On this thread, each item's size is computed once (``_size``)."""
    outer = getattr(_remembered_sizes, "sizes", None)
    _remembered_sizes.sizes = {}
    try:
        yield
    finally:
        _remembered_sizes.sizes = outer


def _size(self: Item) -> int:
    """moto's ``Item.size``; inside ``_sizes_remembered``, once per item (a query's loop
    asks twice for each item it keeps)."""
    sizes: dict[int, int] | None = getattr(_remembered_sizes, "sizes", None)
    if sizes is None:
        return int(_item_size(self))
    found = sizes.get(id(self))
    if found is None:
        found = sizes[id(self)] = int(_item_size(self))
    return found


@dataclass
class _SavedItem:
    table: Table
    hash_key: DynamoType
    range_key: DynamoType | None
    item: Item | None  # a deep copy, or None when the key held no item
    partition_existed: bool

    @classmethod
    def read(cls, table: Table, hash_key: DynamoType, range_key: DynamoType | None) -> _SavedItem:
        """The item at the key, read without creating its partition (``get_item`` would)."""
        partition: Any = table.items.get(hash_key)
        current = partition if range_key is None or partition is None else partition.get(range_key)
        return cls(table, hash_key, range_key, copy.deepcopy(current), partition is not None)

    def restore(self) -> None:
        items: dict[Any, Any] = self.table.items
        if self.range_key is None:
            if self.item is None:
                items.pop(self.hash_key, None)
            else:
                items[self.hash_key] = self.item
            return
        partition = items.setdefault(self.hash_key, {})
        if self.item is None:
            partition.pop(self.range_key, None)
        else:
            partition[self.range_key] = self.item
        if not partition and not self.partition_existed:
            del items[self.hash_key]


@dataclass
class _TransactionBackup:
    """What a transaction can change: the items at its keys and its tables' streams."""

    items: list[_SavedItem]
    stream_lengths: dict[str, int]

    @classmethod
    def read(
        cls, backend: DynamoDBBackend, transact_items: list[dict[str, Any]]
    ) -> _TransactionBackup:
        items: list[_SavedItem] = []
        lengths: dict[str, int] = {}
        for entry in transact_items:
            for op_type, op in entry.items():
                table = backend.tables.get(op.get("TableName"))
                if table is None:
                    continue  # moto cancels the transaction before writing to it
                key = op["Item"] if op_type == "Put" else op["Key"]
                hash_key = DynamoType(key[table.hash_key_attr])
                range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
                items.append(_SavedItem.read(table, hash_key, range_key))
                if table.stream_shard is not None:
                    lengths.setdefault(table.name, len(table.stream_shard.items))
        return cls(items, lengths)

    def restore(self, backend: DynamoDBBackend) -> None:
        for saved in reversed(self.items):
            saved.restore()
        for name, length in self.stream_lengths.items():
            shard: Any = backend.tables[name].stream_shard  # noted only where there is one
            del shard.items[length:]


_skipped_copies = threading.local()


@contextmanager
def _not_copied(kind: type) -> Iterator[None]:
    """On this thread, moto's deep copies of ``kind`` values are not made (``_CopyModule``)."""
    outer = getattr(_skipped_copies, "kind", ())
    _skipped_copies.kind = kind
    try:
        yield
    finally:
        _skipped_copies.kind = outer


class _CopyModule:
    """The ``copy`` module as moto's DynamoDB modules see it: a deep copy that the caller of
    ``_not_copied`` knows moto only reads, or backs up itself, is the value itself."""

    copy = staticmethod(copy.copy)

    @staticmethod
    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        if isinstance(value, getattr(_skipped_copies, "kind", ())):
            return value
        return copy.deepcopy(value, memo)


# Held by every item write of the DynamoDB backend (the server runs requests on threads),
# so that no other write lands inside a transaction that may be put back.
_ITEM_WRITES = threading.RLock()


def _one_at_a_time(write: Any) -> Any:
    @functools.wraps(write)
    def locked(self: DynamoDBBackend, *args: Any, **kwargs: Any) -> Any:
        with _ITEM_WRITES:
            return write(self, *args, **kwargs)

    return locked


_transact_copying_tables = DynamoDBBackend.transact_write_items


def _transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    """moto's ``transact_write_items`` with ``_TransactionBackup`` in place of its copies of
    whole tables. A transaction whose keys cannot be read is left to moto as it is."""
    with _ITEM_WRITES:
        try:
            backup = _TransactionBackup.read(self, transact_items)
        except Exception:  # a malformed key: moto refuses the request in its own words
            return _transact_copying_tables(self, transact_items)
        with _not_copied(Table):
            try:
                return _transact_copying_tables(self, transact_items)
            except Exception:
                backup.restore(self)  # moto rolled back (or wrote nothing): undo its writes
                raise


def _wire_attribute_value(value: Any) -> dict[str, Any] | None:
    """A copy of ``value`` if it is a DynamoDB attribute value in wire form that moto's
    serializer would write unchanged; None otherwise."""
    if not isinstance(value, dict) or len(value) != 1:
        return None
    ((kind, inner),) = value.items()
    if kind in ("S", "N"):
        return {kind: inner} if type(inner) is str else None
    if kind in ("SS", "NS"):
        strings = isinstance(inner, list) and all(type(v) is str for v in inner)
        return {kind: list(inner)} if strings else None
    if kind == "M" and isinstance(inner, dict):
        members = {k: _wire_attribute_value(v) for k, v in inner.items() if type(k) is str}
        complete = len(members) == len(inner) and None not in members.values()
        return {"M": members} if complete else None
    if kind == "L" and isinstance(inner, list):
        elements = [_wire_attribute_value(v) for v in inner]
        return {"L": elements} if None not in elements else None
    return None


_serialize_structure_by_member = BaseJSONSerializer._serialize_type_structure


def _serialize_type_structure(
    self: BaseJSONSerializer, serialized: Any, value: Any, shape: Any, key: str
) -> None:
    """moto's JSON structure serializer, with attribute values in wire form copied."""
    if key and shape.name == "AttributeValue":
        wire = _wire_attribute_value(value)
        if wire is not None:
            self._default_serialize(serialized, wire, shape, key)
            return
    _serialize_structure_by_member(self, serialized, value, shape, key)


_dynamo_to_dict_walking_everything = dynamodb_utilities.dynamo_to_dict


def _dynamo_to_dict(value: Any) -> Any:
    """moto's ``dynamo_to_dict`` (a response's items to plain dicts), answering at once for
    what it returns unchanged (strings, numbers, booleans, None) and for string-valued
    attribute values; anything else, its recursion included, takes moto's walk."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is DynamoType and type(value.value) is str and value.type not in ("B", "BS"):
        return {value.type: value.value}
    if kind is dict:
        return {key: _dynamo_to_dict(inner) for key, inner in value.items()}
    return _dynamo_to_dict_walking_everything(value)


# (owner, attribute, replacement): what ``apply`` installs.
PATCHES: tuple[tuple[Any, str, Any], ...] = (
    (SQSBackend, "is_message_valid_based_on_retention_period", _within_retention_period),
    (Item, "project", _project),
    (backends, "list_of_moto_modules", _moto_modules),
    (Table, "query", _query),
    (Item, "size", _size),
    (DynamoDBBackend, "transact_write_items", _transact_write_items),
    *(
        (DynamoDBBackend, name, _one_at_a_time(getattr(DynamoDBBackend, name)))
        for name in ("put_item", "update_item", "delete_item")
    ),
    (dynamodb_models, "copy", _CopyModule),
    (dynamodb_table_module, "copy", _CopyModule),
    (BaseJSONSerializer, "_serialize_type_structure", _serialize_type_structure),
    (dynamodb_utilities, "dynamo_to_dict", _dynamo_to_dict),
    (dynamodb_responses, "dynamo_to_dict", _dynamo_to_dict),
)


def apply() -> None:
    """Install every fix (again is harmless)."""
    for owner, attribute, replacement in PATCHES:
        setattr(owner, attribute, replacement)
