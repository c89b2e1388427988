"""Test and demo support: synthetic receipts with rows and matching delta records."""
