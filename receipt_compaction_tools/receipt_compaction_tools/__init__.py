"""Tools around the receipt compaction pipeline, kept out of the deployed packages: the
``receipt-compaction`` CLI, the local pipeline (moto server, stream pump, queue consumer),
the reliability harness and the fixtures the test suites share."""
