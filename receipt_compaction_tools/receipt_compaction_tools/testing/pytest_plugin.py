"""Fixtures for every package's tests: fake credentials, moto in-process and moto server,
and a real Chroma server (``chroma run``) for the server sink.

Registered by the repository's root ``conftest.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest
from moto import mock_aws

from receipt_compaction_tools.aws.local_aws import LOCAL_CREDENTIALS, LocalAwsServer
from receipt_compaction_tools.aws.streams import StreamReader
from receipt_compaction_tools.local.chroma_server import LocalChromaServer
from receipt_compaction_tools.testing.endpoints import RefusedEndpoint, SilentEndpoint
from receipt_dynamo.data.dynamo_client import DynamoClient
from receipt_dynamo.schema import create_table


@dataclass(frozen=True)
class TableFixture:
    """A freshly created receipt table and what tests need to use it."""

    name: str
    stream_arn: str
    client: DynamoClient

    def stream_reader(self) -> StreamReader:
        return StreamReader(self.stream_arn, client=boto3.client("dynamodbstreams"))


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


@pytest.fixture(scope="session")
def moto_server() -> Iterator[LocalAwsServer]:
    """One real moto server on 127.0.0.1 for the whole session."""
    with LocalAwsServer() as server:
        yield server


@pytest.fixture
def aws_endpoint(moto_server: LocalAwsServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """The moto server, emptied, with ``AWS_ENDPOINT_URL`` pointing at it."""
    moto_server.reset()
    for name, value in moto_server.environment().items():
        monkeypatch.setenv(name, value)
    return moto_server.endpoint_url


def _new_table() -> TableFixture:
    name = f"receipts-{uuid.uuid4().hex[:8]}"
    stream_arn = create_table(name)
    return TableFixture(name=name, stream_arn=stream_arn, client=DynamoClient(name))


@pytest.fixture
def server_table(aws_endpoint: str) -> TableFixture:
    """A receipt table on the moto server (integration tests)."""
    return _new_table()


@pytest.fixture
def mocked_table(mocked_aws: None) -> TableFixture:
    """A receipt table in moto in-process (unit tests)."""
    return _new_table()


@pytest.fixture(scope="session")
def chroma_server() -> Iterator[LocalChromaServer]:
    """One real Chroma server for the whole session (it starts in a few seconds; tests
    keep apart by database, see ``chroma_database``)."""
    with LocalChromaServer() as server:
        yield server


@pytest.fixture
def chroma_database(chroma_server: LocalChromaServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh database on the session's Chroma server, with the compactor's contract §8
    variables (``CHROMA_HOST``, ``CHROMA_PORT``, ``CHROMA_DATABASE``) pointing at it."""
    if not chroma_server.running:  # a test that restarts the server may have failed midway
        chroma_server.start()
    name = f"test-{uuid.uuid4().hex[:12]}"
    chroma_server.create_database(name)
    for variable, value in chroma_server.environment(name).items():
        monkeypatch.setenv(variable, value)
    return name


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
