"""Compactor settings from the environment (contract §8)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from receipt_chroma import settings as defaults
from receipt_chroma.chroma_server import ChromaServer
from receipt_dynamo_stream.exceptions import ConfigurationError


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigurationError(f"{name} is not set")
    return value


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, got {text!r}") from None
    if value <= 0:
        raise ConfigurationError(f"{name} must be positive, got {text!r}")
    return value


MAX_VISIBILITY_SECONDS = 43200  # SQS's limit on a message's visibility timeout (12 h)
_SECONDS_RANGE = re.compile(r"\s*([0-9]+)\s*(?:-\s*([0-9]+)\s*)?")


def _seconds_range(env: Mapping[str, str], name: str, default: tuple[int, int]) -> tuple[int, int]:
    """``"30-90"`` → (30, 90); ``"45"`` → (45, 45); whole seconds within SQS's limit."""
    text = env.get(name, "").strip()
    if not text:
        return default
    match = _SECONDS_RANGE.fullmatch(text)
    if match is None:
        raise ConfigurationError(
            f"{name} must be whole seconds or a range of them such as 30-90, got {text!r}"
        )
    low = int(match.group(1))
    high = low if match.group(2) is None else int(match.group(2))
    if low > high:
        raise ConfigurationError(f"{name} range must not be descending, got {text!r}")
    if high > MAX_VISIBILITY_SECONDS:
        raise ConfigurationError(
            f"{name} must not exceed {MAX_VISIBILITY_SECONDS} seconds (SQS's maximum "
            f"visibility timeout), got {text!r}"
        )
    return low, high


class SinkKind(StrEnum):
    """Where a cycle's effect goes (``CHROMA_SINK``, contract §12)."""

    SNAPSHOT = "snapshot"  # published snapshot versions (§6)
    SERVER = "server"  # a Chroma server's collection
    BOTH = "both"  # both, for the migration from snapshots to a server


def _sink(env: Mapping[str, str]) -> SinkKind:
    text = env.get("CHROMA_SINK", "").strip().lower() or defaults.CHROMA_SINK
    try:
        return SinkKind(text)
    except ValueError:
        choices = "|".join(defaults.CHROMA_SINKS)
        raise ConfigurationError(f"CHROMA_SINK must be {choices}, got {text!r}") from None


@dataclass(frozen=True)
class CompactionConfig:
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

    def __post_init__(self) -> None:
        if self.sink is not SinkKind.SNAPSHOT and self.server is None:
            raise ConfigurationError(f"CHROMA_SINK={self.sink.value} needs the Chroma server")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CompactionConfig:
        values = os.environ if env is None else env
        sink = _sink(values)
        return cls(
            table_name=_required(values, "DYNAMODB_TABLE_NAME"),
            bucket=_required(values, "CHROMADB_BUCKET"),
            chroma_root=Path(values.get("CHROMA_ROOT") or defaults.CHROMA_ROOT),
            work_dir=Path(values.get("CHROMA_WORK_DIR") or defaults.CHROMA_WORK_DIR),
            dimension=int(_number(values, "EMBEDDING_DIMENSION", defaults.EMBEDDING_DIMENSION)),
            lock_duration_seconds=_number(
                values, "LOCK_DURATION_SECONDS", defaults.LOCK_DURATION_SECONDS
            ),
            heartbeat_interval_seconds=_number(
                values, "HEARTBEAT_INTERVAL_SECONDS", defaults.HEARTBEAT_INTERVAL_SECONDS
            ),
            heartbeat_max_failures=int(
                _number(values, "HEARTBEAT_MAX_FAILURES", defaults.HEARTBEAT_MAX_FAILURES)
            ),
            lock_wait_seconds=_number(values, "LOCK_WAIT_SECONDS", defaults.LOCK_WAIT_SECONDS),
            lease_safety_margin_seconds=_number(
                values, "LEASE_SAFETY_MARGIN_SECONDS", defaults.LEASE_SAFETY_MARGIN_SECONDS
            ),
            retry_visibility_seconds=_seconds_range(
                values, "RETRY_VISIBILITY_SECONDS", defaults.RETRY_VISIBILITY_SECONDS
            ),
            sink=sink,
            # The server settings are read only when a server is the sink (a snapshot
            # deployment carries none of them).
            server=None if sink is SinkKind.SNAPSHOT else ChromaServer.from_env(values),
        )
