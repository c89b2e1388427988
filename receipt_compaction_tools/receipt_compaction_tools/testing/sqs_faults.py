"""Real SQS batch faults: receipt_dynamo.testing owns them (the lightest package whose tests
use them); named here for the infra tests."""

from receipt_dynamo.testing.sqs_faults import SqsBatchFaults

__all__ = ["SqsBatchFaults"]
