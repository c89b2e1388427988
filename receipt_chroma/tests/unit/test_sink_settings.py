"""The sink's settings (contract §8, §12), the token from Secrets Manager, what is retried
against a server, how writes are split, and how ``both`` combines its two sinks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import numpy as np
import pytest
from chromadb.errors import InvalidArgumentError, RateLimitError

from receipt_chroma.chroma_client import _batches
from receipt_chroma.chroma_http import RetryPolicy, unreachable
from receipt_chroma.chroma_server import TOKEN_HEADER, ChromaServer, forget_tokens, read_token
from receipt_chroma.compaction import (
    CollectionUpdateResult,
    CompactionConfig,
    MessageFailure,
    RunMergeResult,
)
from receipt_chroma.compaction.sinks import combine
from receipt_chroma.exceptions import SinkUnavailableError
from receipt_dynamo import ChromaDBCollection
from receipt_dynamo_stream.compactor_defaults import SinkKind
from receipt_dynamo_stream.exceptions import ConfigurationError

BASE = {"DYNAMODB_TABLE_NAME": "t", "CHROMADB_BUCKET": "b"}


@pytest.fixture(autouse=True)
def no_cached_tokens() -> Iterator[None]:
    forget_tokens()
    yield
    forget_tokens()


def test_the_snapshot_is_the_default_sink_and_needs_no_server_settings() -> None:
    config = CompactionConfig.from_env({**BASE, "CHROMA_HOST": "ignored"})
    assert (config.sink, config.server) == (SinkKind.SNAPSHOT, None)


def test_server_settings_are_read_for_the_server_and_both_sinks() -> None:
    env = {
        **BASE,
        "CHROMA_SINK": "both",
        "CHROMA_HOST": "chroma.internal",
        "CHROMA_PORT": "8443",
        "CHROMA_SSL": "true",
        "CHROMA_TENANT": "acme",
        "CHROMA_DATABASE": "receipts",
        "CHROMA_AUTH_TOKEN_SECRET": "prod/chroma-token",
    }
    config = CompactionConfig.from_env(env)
    assert config.sink is SinkKind.BOTH
    assert config.server == ChromaServer(
        host="chroma.internal",
        port=8443,
        ssl=True,
        tenant="acme",
        database="receipts",
        auth_token_secret="prod/chroma-token",
    )
    assert config.server.url == "https://chroma.internal:8443/api/v2"
    server = CompactionConfig.from_env({**BASE, "CHROMA_SINK": "server", "CHROMA_HOST": "h"})
    assert server.server == ChromaServer(host="h")  # port 8000, no TLS, default tenant/db


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CHROMA_SINK": "cloud"}, "CHROMA_SINK must be snapshot|server|both"),
        ({"CHROMA_SINK": "server"}, "CHROMA_HOST is not set"),
        ({"CHROMA_SINK": "server", "CHROMA_HOST": "h", "CHROMA_PORT": "0"}, "CHROMA_PORT"),
        ({"CHROMA_SINK": "server", "CHROMA_HOST": "h", "CHROMA_PORT": "x"}, "CHROMA_PORT"),
        ({"CHROMA_SINK": "both", "CHROMA_HOST": "h", "CHROMA_SSL": "maybe"}, "CHROMA_SSL"),
        (
            {"CHROMA_SINK": "server", "CHROMA_HOST": "h", "CHROMA_RETRY_ATTEMPTS": "0"},
            "CHROMA_RETRY_ATTEMPTS",
        ),
    ],
)
def test_bad_sink_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        CompactionConfig.from_env({**BASE, **env})


def test_a_server_sink_cannot_be_configured_without_a_server() -> None:
    with pytest.raises(ConfigurationError, match="needs the Chroma server"):
        CompactionConfig(table_name="t", bucket="b", sink=SinkKind.SERVER)


def _counting_secrets_client(calls: list[str]) -> Any:
    client = boto3.client("secretsmanager")
    client.meta.events.register(
        "provide-client-params.secrets-manager.GetSecretValue",
        lambda params, **_: calls.append(params["SecretId"]),
    )
    return client


def test_the_token_is_read_from_secrets_manager_once_per_container(mocked_aws: None) -> None:
    boto3.client("secretsmanager").create_secret(Name="chroma-token", SecretString=" s3cr3t\n")
    calls: list[str] = []
    client = _counting_secrets_client(calls)
    assert read_token("chroma-token", client=client) == "s3cr3t"
    assert read_token("chroma-token", client=client) == "s3cr3t"
    assert calls == ["chroma-token"]
    boto3.client("secretsmanager").put_secret_value(SecretId="chroma-token", SecretString="new")
    assert read_token("chroma-token", refresh=True, client=client) == "new"
    assert calls == ["chroma-token", "chroma-token"]
    assert ChromaServer(host="h").options("new").headers == {TOKEN_HEADER: "new"}
    assert ChromaServer(host="h").options(None).headers == {}


def test_an_unreadable_secret_makes_the_server_unavailable(mocked_aws: None) -> None:
    with pytest.raises(SinkUnavailableError, match="secret 'missing-secret'"):
        read_token("missing-secret")
    boto3.client("secretsmanager").create_secret(Name="blank", SecretString="  ")
    with pytest.raises(SinkUnavailableError, match="holds no token"):
        read_token("blank")
    with pytest.raises(SinkUnavailableError, match="missing-secret"):
        ChromaServer(host="127.0.0.1", port=9, auth_token_secret="missing-secret").connect()


def test_only_unreachable_servers_are_retried() -> None:
    request = httpx.Request("GET", "http://x")
    assert unreachable(httpx.ConnectError("refused", request=request))
    assert unreachable(httpx.ReadTimeout("slow", request=request))
    assert unreachable(RateLimitError("slow down"))
    # chromadb wraps a refused connection in a ValueError while it builds a client; the
    # transport error stays its context.
    wrapped = ValueError("Could not connect to a Chroma server")
    wrapped.__context__ = httpx.ConnectError("refused", request=request)
    assert unreachable(wrapped)
    assert not unreachable(InvalidArgumentError("bad metadata"))
    assert not unreachable(ValueError("plain"))


def test_retry_delays_grow_and_stay_bounded() -> None:
    delays = list(RetryPolicy(attempts=6, base_seconds=0.5, max_seconds=4.0).delays())
    assert len(delays) == 5
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert list(RetryPolicy(attempts=1).delays()) == []


def test_writes_are_split_alike_argument_by_argument() -> None:
    call = {
        "ids": ["a", "b", "c", "d", "e"],
        "embeddings": np.arange(10, dtype=np.float32).reshape(5, 2),
        "metadatas": [{"n": n} for n in range(5)],
        "where": {"x": 1},
    }
    parts = list(_batches(call, 2))
    assert [p["ids"] for p in parts] == [["a", "b"], ["c", "d"], ["e"]]
    assert [p["metadatas"] for p in parts][2] == [{"n": 4}]
    assert parts[1]["embeddings"].tolist() == [[4.0, 5.0], [6.0, 7.0]]
    assert all(p["where"] == {"x": 1} for p in parts)
    assert list(_batches({"ids": ["a"]}, 2)) == [{"ids": ["a"]}]
    assert list(_batches({"where": {"x": 1}}, 2)) == [{"where": {"x": 1}}]


def _run(run_id: str, **fields: Any) -> RunMergeResult:
    return RunMergeResult(run_id, "img", 1, ChromaDBCollection.WORDS, **fields)


def test_both_sinks_complete_a_run_only_when_it_merged_in_both() -> None:
    server = CollectionUpdateResult(
        ChromaDBCollection.WORDS,
        failures=[MessageFailure("m2", "run b: timeout")],
        runs=[_run("a", merged_vectors=3), _run("b", error="timeout"), _run("d", merged_vectors=1)],
    )
    snapshot = CollectionUpdateResult(
        ChromaDBCollection.WORDS,
        failures=[MessageFailure("m2", "run b: other"), MessageFailure("m3", "row read")],
        runs=[
            _run("a", merged_vectors=3),
            _run("b", merged_vectors=2),
            _run("c", merged_vectors=1),
            _run("d", skipped_reason="already completed"),
        ],
        metadata_updates=4,
    )
    both = combine(server, snapshot)
    by_id = {run.run_id: run for run in both.runs}
    assert by_id["a"].merged
    assert by_id["b"].error == "timeout"
    assert not by_id["c"].merged  # the server never merged it
    assert by_id["c"].skipped_reason == "not merged by both sinks"
    assert by_id["d"].skipped_reason == "already completed"
    assert {f.message_id: f.reason for f in both.failures} == {
        "m2": "server: run b: timeout; snapshot: run b: other",
        "m3": "snapshot: row read",
    }
    assert both.metadata_updates == 4
