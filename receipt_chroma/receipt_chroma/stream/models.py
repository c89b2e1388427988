"""Re-export of the stream-side models owned by ``receipt_dynamo_stream``.

One definition, two import paths: the user's code imports them from here.
"""

from receipt_dynamo_stream.models import (
    EventName,
    FieldChange,
    MessageSource,
    ParsedStreamRecord,
    StreamMessage,
)

__all__ = ["EventName", "FieldChange", "MessageSource", "ParsedStreamRecord", "StreamMessage"]
