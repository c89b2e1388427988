"""Errors of the compactor Lambda's work around a cycle."""

from __future__ import annotations

from receipt_chroma.exceptions import ReceiptChromaError


class QueueArnError(ReceiptChromaError, ValueError):
    """A record's ``eventSourceARN`` is not ``arn:<partition>:sqs:<region>:<account>:<name>``."""
