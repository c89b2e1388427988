"""Lambda-shaped stream records: receipt_dynamo.testing owns them (the lightest package whose
tests use them); named here for the tools, infra, benchmarks and the heavier packages' tests."""

from receipt_dynamo.testing.records import stream_record

__all__ = ["stream_record"]
