"""Fixtures for tests of the receipt table and what is built on it: throw-away credentials
(no test reaches real AWS), moto in-process, a receipt table there, and endpoints that fail
the way networks do.

``cd receipt_dynamo && pytest`` (and the same in receipt_dynamo_stream) loads this plugin
through the package's own pytest settings; the workspace's tools plugin loads it for every
other suite. Elsewhere: ``pytest_plugins = ["receipt_dynamo.testing.pytest_plugin"]``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from receipt_dynamo.testing.credentials import LOCAL_CREDENTIALS
from receipt_dynamo.testing.endpoints import RefusedEndpoint, SilentEndpoint
from receipt_dynamo.testing.tables import TableFixture


@pytest.fixture(autouse=True)
def aws_test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may ever reach real AWS: throw-away credentials and no endpoint by default."""
    for name, value in LOCAL_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    # mock_aws cannot serve DynamoDB streams with account-id endpoints (moto 5.2 with this
    # botocore answers 404 "Not yet implemented"); disabling the mode works around it.
    monkeypatch.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    # moto 5.2 stores a wrong CRC32 for some uploads, so every later GET of that object
    # fails botocore's checksum validation; integrity is checked by our own sha256s.
    monkeypatch.setenv("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
    monkeypatch.setenv("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")


@pytest.fixture
def mocked_aws() -> Iterator[None]:
    """moto in-process (unit tests)."""
    with mock_aws():
        yield


@pytest.fixture
def mocked_table(mocked_aws: None) -> TableFixture:
    """A receipt table in moto in-process (unit tests)."""
    return TableFixture.create()


@pytest.fixture
def silent_endpoint() -> Iterator[SilentEndpoint]:
    """An endpoint on 127.0.0.1 that accepts connections and never answers."""
    with SilentEndpoint() as endpoint:
        yield endpoint


@pytest.fixture
def refused_endpoint() -> Iterator[RefusedEndpoint]:
    """A port on 127.0.0.1 that refuses every connection."""
    with RefusedEndpoint() as endpoint:
        yield endpoint
