"""The compactor's settings (contract §8): the one place its environment is read.

The compaction handler resolves ``CompactionConfig.from_env()`` once per container; the
cycle, its sinks, the snapshot machinery and the EFS manager take their values from the
config and never read the environment. The tools resolve the parts they need
(``chroma_server_from_env``, ``snapshot_settings_from_env``) by the same rules. A bad
value raises ``ConfigurationError`` naming the variable, its value and what is allowed
(``receipt_dynamo_stream.settings.Environment``); the defaults are
``receipt_dynamo_stream.compactor_defaults``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from receipt_chroma.chroma_http import RetryPolicy
from receipt_chroma.chroma_server import ChromaServer
from receipt_chroma.snapshots.hnsw import HnswPolicy
from receipt_chroma.snapshots.service import SnapshotSettings
from receipt_dynamo_stream import compactor_defaults as defaults
from receipt_dynamo_stream.compactor_defaults import SinkKind
from receipt_dynamo_stream.exceptions import ConfigurationError
from receipt_dynamo_stream.settings import Environment

__all__ = [
    "CompactionConfig",
    "SinkKind",
    "chroma_server_from_env",
    "snapshot_settings_from_env",
]

MAX_VISIBILITY_SECONDS: Final = 43200  # SQS's limit on a message's visibility timeout (12 h)
MAX_ZSTD_LEVEL: Final = 22
MAX_RETRY_ATTEMPTS: Final = 20
_SECONDS_RANGE = re.compile(r"([0-9]+)\s*(?:-\s*([0-9]+))?")


def _seconds_range(variables: Environment, name: str, default: tuple[int, int]) -> tuple[int, int]:
    """``"30-90"`` → (30, 90); ``"45"`` → (45, 45); whole seconds within SQS's limit."""
    text = variables.text(name)
    if not text:
        return default
    match = _SECONDS_RANGE.fullmatch(text)
    if match is None:
        raise variables.refuse(name, "whole seconds or a range of them such as 30-90")
    low = int(match.group(1))
    high = low if match.group(2) is None else int(match.group(2))
    if low > high:
        raise variables.refuse(name, "a range from the smaller number to the larger")
    if high > MAX_VISIBILITY_SECONDS:
        raise variables.refuse(
            name, f"at most {MAX_VISIBILITY_SECONDS} seconds (SQS's maximum visibility timeout)"
        )
    return low, high


def _server(variables: Environment) -> ChromaServer:
    return ChromaServer(
        host=variables.required("CHROMA_HOST", "CHROMA_SINK=server or both needs a Chroma server"),
        port=variables.whole("CHROMA_PORT", defaults.CHROMA_PORT, low=1, high=65535),
        ssl=variables.flag("CHROMA_SSL", defaults.CHROMA_SSL),
        tenant=variables.text("CHROMA_TENANT", defaults.CHROMA_TENANT),
        database=variables.text("CHROMA_DATABASE", defaults.CHROMA_DATABASE),
        auth_token_secret=variables.optional("CHROMA_AUTH_TOKEN_SECRET"),
        # How long a call waits for an unreachable server before the cycle gives up.
        retry=RetryPolicy(
            attempts=variables.whole(
                "CHROMA_RETRY_ATTEMPTS",
                defaults.CHROMA_RETRY_ATTEMPTS,
                low=1,
                high=MAX_RETRY_ATTEMPTS,
            )
        ),
    )


def _hnsw(variables: Environment) -> HnswPolicy:
    return HnswPolicy(
        sync_threshold=variables.whole("HNSW_SYNC_THRESHOLD", defaults.HNSW_SYNC_THRESHOLD, low=1),
        flush_records=variables.whole("HNSW_FLUSH_RECORDS", defaults.HNSW_FLUSH_RECORDS, low=0),
    )


def _zstd_level(variables: Environment) -> int:
    return variables.whole(
        "SNAPSHOT_ZSTD_LEVEL", defaults.SNAPSHOT_ZSTD_LEVEL, low=1, high=MAX_ZSTD_LEVEL
    )


def chroma_server_from_env(env: Mapping[str, str] | None = None) -> ChromaServer:
    """The Chroma server the ``CHROMA_*`` variables name; ``CHROMA_HOST`` is required."""
    return _server(Environment(env))


def snapshot_settings_from_env(
    env: Mapping[str, str] | None = None,
    *,
    dimension: int,
    lock_duration_seconds: float = defaults.LOCK_DURATION_SECONDS,
) -> SnapshotSettings:
    """The snapshot settings of ``SNAPSHOT_ZSTD_LEVEL``, ``HNSW_SYNC_THRESHOLD`` and
    ``HNSW_FLUSH_RECORDS``, for a collection of ``dimension`` under a lease of
    ``lock_duration_seconds``."""
    variables = Environment(env)
    return SnapshotSettings(
        dimension=dimension,
        lock_duration_seconds=lock_duration_seconds,
        hnsw=_hnsw(variables),
        zstd_level=_zstd_level(variables),
    )


@dataclass(frozen=True)
class CompactionConfig:
    """Everything the compactor needs below its handler, resolved once."""

    table_name: str
    bucket: str
    chroma_root: Path = Path(defaults.CHROMA_ROOT)
    work_dir: Path = Path(defaults.CHROMA_WORK_DIR)
    dimension: int = defaults.EMBEDDING_DIMENSION
    lock_duration_seconds: float = defaults.LOCK_DURATION_SECONDS
    heartbeat_interval_seconds: float = defaults.HEARTBEAT_INTERVAL_SECONDS
    heartbeat_max_failures: int = defaults.HEARTBEAT_MAX_FAILURES
    lock_wait_seconds: float = defaults.LOCK_WAIT_SECONDS
    lock_backoff_seconds: tuple[float, float] = (1.0, 5.0)
    lease_safety_margin_seconds: float = defaults.LEASE_SAFETY_MARGIN_SECONDS
    # Visibility given to every message the handler reports failed (§7 rev 3).
    retry_visibility_seconds: tuple[int, int] = defaults.RETRY_VISIBILITY_SECONDS
    # Contract §12: the snapshot (default), a Chroma server, or both during a migration.
    sink: SinkKind = SinkKind.SNAPSHOT
    server: ChromaServer | None = None
    # Contract §6: how snapshot objects are compressed and when the HNSW index is flushed.
    hnsw: HnswPolicy = field(default_factory=HnswPolicy)
    zstd_level: int = defaults.SNAPSHOT_ZSTD_LEVEL

    def __post_init__(self) -> None:
        if self.sink is not SinkKind.SNAPSHOT and self.server is None:
            raise ConfigurationError(f"CHROMA_SINK={self.sink.value} needs the Chroma server")

    @property
    def snapshot_settings(self) -> SnapshotSettings:
        """The snapshot machinery's settings; retention's orphan age follows the lease."""
        return SnapshotSettings(
            dimension=self.dimension,
            lock_duration_seconds=self.lock_duration_seconds,
            hnsw=self.hnsw,
            zstd_level=self.zstd_level,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CompactionConfig:
        """The compactor's variables of contract §8 (``os.environ`` unless ``env``);
        ``DYNAMODB_TABLE_NAME`` and ``CHROMADB_BUCKET`` are required."""
        variables = Environment(env)
        sink = variables.choice("CHROMA_SINK", SinkKind.SNAPSHOT)
        return cls(
            table_name=variables.required("DYNAMODB_TABLE_NAME", "the table"),
            bucket=variables.required("CHROMADB_BUCKET", "the snapshots' and deltas' bucket"),
            chroma_root=Path(variables.text("CHROMA_ROOT", defaults.CHROMA_ROOT)),
            work_dir=Path(variables.text("CHROMA_WORK_DIR", defaults.CHROMA_WORK_DIR)),
            dimension=variables.whole("EMBEDDING_DIMENSION", defaults.EMBEDDING_DIMENSION, low=1),
            lock_duration_seconds=variables.seconds(
                "LOCK_DURATION_SECONDS", defaults.LOCK_DURATION_SECONDS
            ),
            heartbeat_interval_seconds=variables.seconds(
                "HEARTBEAT_INTERVAL_SECONDS", defaults.HEARTBEAT_INTERVAL_SECONDS
            ),
            heartbeat_max_failures=variables.whole(
                "HEARTBEAT_MAX_FAILURES", defaults.HEARTBEAT_MAX_FAILURES, low=1
            ),
            lock_wait_seconds=variables.seconds("LOCK_WAIT_SECONDS", defaults.LOCK_WAIT_SECONDS),
            lease_safety_margin_seconds=variables.seconds(
                "LEASE_SAFETY_MARGIN_SECONDS", defaults.LEASE_SAFETY_MARGIN_SECONDS
            ),
            retry_visibility_seconds=_seconds_range(
                variables, "RETRY_VISIBILITY_SECONDS", defaults.RETRY_VISIBILITY_SECONDS
            ),
            sink=sink,
            # The server settings are read only when a server is the sink (a snapshot
            # deployment carries none of them).
            server=None if sink is SinkKind.SNAPSHOT else _server(variables),
            hnsw=_hnsw(variables),
            zstd_level=_zstd_level(variables),
        )
