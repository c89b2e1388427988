"""Errors of the stream side; each names what is wrong."""

from __future__ import annotations


class StreamProcessingError(Exception):
    """Base class of this package's errors."""


class UnparseableRecordError(StreamProcessingError):
    """A stream record that cannot be turned into messages (contract §3.5): parked, not retried."""


class MessageValidationError(StreamProcessingError, ValueError):
    """A queue message body that is not a valid message of the contract §3.4 schema."""


class ConfigurationError(StreamProcessingError):
    """A required setting, such as a queue URL, is missing."""
