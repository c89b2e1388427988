"""Errors raised by receipt_dynamo; each message names the key and the reason."""

from __future__ import annotations


class ReceiptDynamoError(Exception):
    """Base class of every error this package raises on purpose."""


class EntityNotFoundError(ReceiptDynamoError):
    """The item addressed by a key does not exist."""


class EntityAlreadyExistsError(ReceiptDynamoError):
    """A create was refused because an item with that key exists."""


class LeaseHeldError(ReceiptDynamoError):
    """Another owner holds an unexpired lease."""


class LeaseLostError(ReceiptDynamoError):
    """The caller no longer holds the lease (expired, taken over or released)."""


class PointerMovedError(ReceiptDynamoError):
    """The snapshot pointer is no longer at the version the caller started from."""
