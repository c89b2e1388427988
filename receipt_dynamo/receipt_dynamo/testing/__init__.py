"""Test support for the receipt table and its AWS clients: entity factories, Lambda-shaped
stream records, a freshly created table, endpoints that fail the way networks do, SQS
batch faults, and where a package's source reads the environment. The fixtures are the
pytest plugin ``receipt_dynamo.testing.pytest_plugin``.

It lives in the source tree and is left out of the wheel: the stream Lambda's zip, built
from the wheels, carries no test support.
"""

from receipt_dynamo.testing.credentials import LOCAL_CREDENTIALS
from receipt_dynamo.testing.endpoints import RefusedEndpoint, SilentEndpoint, TricklingEndpoint
from receipt_dynamo.testing.environment_reads import (
    SourceSite,
    environment_reads,
    settings_resolvers,
)
from receipt_dynamo.testing.factories import (
    FIXED_TIME,
    IMAGE_ID,
    OTHER_IMAGE_ID,
    make_compaction_run,
    make_label,
    make_line,
    make_metadata,
    make_receipt,
    make_word,
)
from receipt_dynamo.testing.records import stream_record
from receipt_dynamo.testing.sqs_faults import SqsBatchFaults
from receipt_dynamo.testing.tables import TableFixture

__all__ = [
    "FIXED_TIME",
    "IMAGE_ID",
    "LOCAL_CREDENTIALS",
    "OTHER_IMAGE_ID",
    "RefusedEndpoint",
    "SilentEndpoint",
    "SourceSite",
    "SqsBatchFaults",
    "TableFixture",
    "TricklingEndpoint",
    "environment_reads",
    "make_compaction_run",
    "make_label",
    "make_line",
    "make_metadata",
    "make_receipt",
    "make_word",
    "settings_resolvers",
    "stream_record",
]
