"""The compactor's settings (contract §8) are resolved in one place, once, with their
defaults; a bad value is refused naming the variable, its value and what is allowed; and
nothing else in the package reads the environment. Expected names and defaults are typed
here from the contract's table (and, for the HNSW values it leaves to measurement, from
docs/architecture.md), not taken from the package.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import receipt_chroma
from receipt_chroma.chroma_server import ChromaServer
from receipt_chroma.compaction import (
    CompactionConfig,
    chroma_server_from_env,
    snapshot_settings_from_env,
)
from receipt_dynamo.testing import environment_reads, settings_resolvers
from receipt_dynamo_stream.compactor_defaults import CHROMA_SINKS, SinkKind
from receipt_dynamo_stream.exceptions import ConfigurationError

PACKAGE_DIR = Path(receipt_chroma.__file__).parent
RESOLVER = PACKAGE_DIR / "compaction" / "config.py"
# Hands the whole environment on to the delta reader's child process: not a setting.
PASS_THROUGH = PACKAGE_DIR / "compaction" / "deltas" / "reader.py"
REQUIRED = {"DYNAMODB_TABLE_NAME": "receipts", "CHROMADB_BUCKET": "chroma-bucket"}
SERVER = {"CHROMA_SINK": "server", "CHROMA_HOST": "chroma.internal"}

Read = Callable[[CompactionConfig], Any]

# variable → (how the config holds it, its default, a good value, what that value becomes)
VARIABLES: dict[str, tuple[Read, Any, str, Any]] = {
    "CHROMA_ROOT": (lambda c: c.chroma_root, Path("/mnt/chroma"), "/efs", Path("/efs")),
    "CHROMA_WORK_DIR": (lambda c: c.work_dir, Path("/tmp/chroma"), "/w", Path("/w")),
    "EMBEDDING_DIMENSION": (lambda c: c.dimension, 1536, "8", 8),
    "LOCK_DURATION_SECONDS": (lambda c: c.lock_duration_seconds, 180, "12.5", 12.5),
    "HEARTBEAT_INTERVAL_SECONDS": (lambda c: c.heartbeat_interval_seconds, 30, "4", 4),
    "HEARTBEAT_MAX_FAILURES": (lambda c: c.heartbeat_max_failures, 3, "5", 5),
    "LOCK_WAIT_SECONDS": (lambda c: c.lock_wait_seconds, 60, "0.5", 0.5),
    "RETRY_VISIBILITY_SECONDS": (lambda c: c.retry_visibility_seconds, (30, 90), "5-7", (5, 7)),
    "LEASE_SAFETY_MARGIN_SECONDS": (lambda c: c.lease_safety_margin_seconds, 10, "2", 2),
    "SNAPSHOT_ZSTD_LEVEL": (lambda c: c.zstd_level, 1, "19", 19),
    "HNSW_SYNC_THRESHOLD": (lambda c: c.hnsw.sync_threshold, 25_000, "9", 9),
    "HNSW_FLUSH_RECORDS": (lambda c: c.hnsw.flush_records, 700, "0", 0),
    "CHROMA_SINK": (lambda c: c.sink, "snapshot", "BOTH", "both"),
}
# Only with CHROMA_SINK=server or both (contract §12); Chroma's own defaults otherwise.
SERVER_VARIABLES: dict[str, tuple[Read, Any, str, Any]] = {
    "CHROMA_PORT": (lambda c: c.server.port, 8000, "443", 443),
    "CHROMA_SSL": (lambda c: c.server.ssl, False, "true", True),
    "CHROMA_TENANT": (lambda c: c.server.tenant, "default_tenant", "acme", "acme"),
    "CHROMA_DATABASE": (lambda c: c.server.database, "default_database", "r", "r"),
    "CHROMA_AUTH_TOKEN_SECRET": (lambda c: c.server.auth_token_secret, None, "s", "s"),
    "CHROMA_RETRY_ATTEMPTS": (lambda c: c.server.retry.attempts, 6, "2", 2),
}
BAD_VALUES = [
    ("EMBEDDING_DIMENSION", "1536.5"),
    ("EMBEDDING_DIMENSION", "0"),
    ("LOCK_DURATION_SECONDS", "-1"),
    ("LOCK_DURATION_SECONDS", "inf"),
    ("HEARTBEAT_INTERVAL_SECONDS", "0"),
    ("HEARTBEAT_MAX_FAILURES", "many"),
    ("LOCK_WAIT_SECONDS", "soon"),
    ("LEASE_SAFETY_MARGIN_SECONDS", "0"),
    ("RETRY_VISIBILITY_SECONDS", "90-30"),
    ("RETRY_VISIBILITY_SECONDS", "43201"),
    ("SNAPSHOT_ZSTD_LEVEL", "23"),
    ("SNAPSHOT_ZSTD_LEVEL", "0"),
    ("HNSW_SYNC_THRESHOLD", "0"),
    ("HNSW_FLUSH_RECORDS", "-1"),
    ("CHROMA_SINK", "cloud"),
]
BAD_SERVER_VALUES = [
    ("CHROMA_PORT", "65536"),
    ("CHROMA_PORT", "http"),
    ("CHROMA_SSL", "maybe"),
    ("CHROMA_RETRY_ATTEMPTS", "0"),
    ("CHROMA_RETRY_ATTEMPTS", "21"),
]


def test_every_variable_takes_its_default_when_unset_or_blank() -> None:
    unset = CompactionConfig.from_env(REQUIRED)
    blank = CompactionConfig.from_env({**REQUIRED, **dict.fromkeys(VARIABLES, " ")})
    for variable, (read, default, _, _) in VARIABLES.items():
        assert read(unset) == default, variable
        assert read(blank) == default, variable
    assert (unset.table_name, unset.bucket, unset.server) == ("receipts", "chroma-bucket", None)
    server = CompactionConfig.from_env({**REQUIRED, **SERVER})
    for variable, (read, default, _, _) in SERVER_VARIABLES.items():
        assert read(server) == default, variable


@pytest.mark.parametrize("variable", [*VARIABLES, *SERVER_VARIABLES])
def test_every_variable_is_read(variable: str) -> None:
    read, _, value, expected = {**VARIABLES, **SERVER_VARIABLES}[variable]
    config = CompactionConfig.from_env({**REQUIRED, **SERVER, variable: value})
    assert read(config) == expected


@pytest.mark.parametrize(("variable", "value"), BAD_VALUES + BAD_SERVER_VALUES)
def test_a_bad_value_names_the_variable_its_value_and_what_is_allowed(
    variable: str, value: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        CompactionConfig.from_env({**REQUIRED, **SERVER, variable: value})
    assert str(raised.value).startswith(f"{variable} must be "), raised.value
    assert str(raised.value).endswith(f", got {value!r}"), raised.value


@pytest.mark.parametrize("variable", ["DYNAMODB_TABLE_NAME", "CHROMADB_BUCKET"])
def test_the_table_and_the_bucket_are_required(variable: str) -> None:
    with pytest.raises(ConfigurationError, match=f"^{variable} is not set"):
        CompactionConfig.from_env({**REQUIRED, variable: " "})


def test_a_snapshot_sink_reads_no_server_setting() -> None:
    config = CompactionConfig.from_env({**REQUIRED, "CHROMA_PORT": "http", "CHROMA_SSL": "?"})
    assert config.server is None


def test_the_snapshot_settings_come_from_the_config() -> None:
    env = {
        **REQUIRED,
        "EMBEDDING_DIMENSION": "8",
        "LOCK_DURATION_SECONDS": "60",
        "SNAPSHOT_ZSTD_LEVEL": "3",
        "HNSW_FLUSH_RECORDS": "5",
    }
    settings = CompactionConfig.from_env(env).snapshot_settings
    assert (settings.dimension, settings.zstd_level, settings.hnsw.flush_records) == (8, 3, 5)
    assert settings.orphan_age == timedelta(seconds=120)  # twice the lease (§6)
    assert snapshot_settings_from_env(env, dimension=8, lock_duration_seconds=60) == settings
    # A config built by hand (tests, tools) has the contract's defaults.
    by_hand = CompactionConfig(table_name="t", bucket="b", dimension=4).snapshot_settings
    assert (by_hand.zstd_level, by_hand.hnsw.sync_threshold, by_hand.hnsw.flush_records) == (
        1,
        25_000,
        700,
    )


def test_the_tools_resolve_the_server_by_the_same_rules() -> None:
    assert chroma_server_from_env({"CHROMA_HOST": "h", "CHROMA_SSL": "1"}) == ChromaServer(
        host="h", ssl=True
    )
    with pytest.raises(ConfigurationError, match=r"^CHROMA_HOST is not set"):
        chroma_server_from_env({})
    with pytest.raises(ConfigurationError, match=r"^HNSW_SYNC_THRESHOLD must be "):
        snapshot_settings_from_env({"HNSW_SYNC_THRESHOLD": "x"}, dimension=4)


def test_the_sink_names_are_one_list() -> None:
    assert set(CHROMA_SINKS) == {"snapshot", "server", "both"}  # contract §12
    assert tuple(kind.value for kind in SinkKind) == CHROMA_SINKS


def test_nothing_but_the_delta_readers_child_process_touches_the_environment() -> None:
    """The resolver reads through ``receipt_dynamo_stream.settings.Environment``; no
    module of the package reads ``os.environ`` itself."""
    reads = environment_reads(PACKAGE_DIR)
    unexpected = [r for r in reads if not (r.path == PASS_THROUGH and r.passed_through)]
    assert [r.describe(PACKAGE_DIR) for r in unexpected] == []


def test_only_the_resolver_resolves_settings() -> None:
    sites = settings_resolvers(PACKAGE_DIR)
    assert [s.describe(PACKAGE_DIR) for s in sites if s.path != RESOLVER] == []
    assert {s.text for s in sites} == {
        "def from_env",
        "def chroma_server_from_env",
        "def snapshot_settings_from_env",
        "Environment",
    }
