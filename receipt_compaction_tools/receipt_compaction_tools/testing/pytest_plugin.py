"""Fixtures for the heavier packages' tests: a moto server, a receipt table on it whose
stream tests can read, and a real Chroma server (``chroma run``) for the server sink.

Registered by the repository's root ``conftest.py``. It loads receipt_dynamo's plugin, which
owns the light fixtures (throw-away credentials, moto in-process, ``mocked_table``, failing
endpoints), so every suite has both.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest

from receipt_compaction_tools.aws import moto_fixes
from receipt_compaction_tools.aws.local_aws import LocalAwsServer
from receipt_compaction_tools.aws.streams import StreamReader
from receipt_compaction_tools.local.chroma_server import LocalChromaServer
from receipt_dynamo.testing import TableFixture

pytest_plugins = ["receipt_dynamo.testing.pytest_plugin"]

# TableFixture is named here too: the heavier suites import both table types from this plugin.
__all__ = ["ServerTable", "TableFixture"]


@dataclass(frozen=True)
class ServerTable(TableFixture):
    """A receipt table on the moto server, whose stream a test can follow."""

    def stream_reader(self) -> StreamReader:
        return StreamReader(self.stream_arn, client=boto3.client("dynamodbstreams"))


@pytest.fixture(scope="session")
def moto_server() -> Iterator[LocalAwsServer]:
    """One real moto server on 127.0.0.1 for the whole session (in this process, without
    the emulator costs ``moto_fixes`` removes)."""
    moto_fixes.apply()
    with LocalAwsServer() as server:
        yield server


@pytest.fixture
def aws_endpoint(moto_server: LocalAwsServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """The moto server, emptied, with ``AWS_ENDPOINT_URL`` pointing at it."""
    moto_server.reset()
    for name, value in moto_server.environment().items():
        monkeypatch.setenv(name, value)
    return moto_server.endpoint_url


@pytest.fixture
def server_table(aws_endpoint: str) -> ServerTable:
    """A receipt table on the moto server (integration tests)."""
    return ServerTable.create()


@pytest.fixture(scope="session")
def chroma_server() -> Iterator[LocalChromaServer]:
    """One real Chroma server for the whole session (it starts in a few seconds; tests
    keep apart by database, see ``chroma_database``)."""
    with LocalChromaServer() as server:
        yield server


@pytest.fixture
def killable_chroma_server() -> Iterator[LocalChromaServer]:
    """A Chroma server of the test's own, for a test that kills or restarts it or deletes
    databases. The session's server never sees either: in full runs, other tests' server
    collections then held records written in another database (after a kill; after the
    interleaving explorer's database deletions)."""
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
