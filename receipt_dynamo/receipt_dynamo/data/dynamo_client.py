"""DynamoClient: every table operation the pipeline uses, over one boto3 client."""

from __future__ import annotations

from receipt_dynamo.data.compaction_run_operations import CompactionRunOperations
from receipt_dynamo.data.lease_operations import LeaseOperations
from receipt_dynamo.data.receipt_operations import ReceiptOperations
from receipt_dynamo.data.snapshot_pointer_operations import SnapshotPointerOperations


class DynamoClient(
    ReceiptOperations,
    CompactionRunOperations,
    LeaseOperations,
    SnapshotPointerOperations,
):
    """``DynamoClient(table_name, region=None, endpoint_url=None)``.

    Honours ``AWS_ENDPOINT_URL`` when ``endpoint_url`` is not given; throttling is
    retried by botocore's standard retry mode.
    """
