"""Compactor settings from the environment (SPEC §8)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from receipt_chroma.constants import DEFAULT_EMBEDDING_DIMENSION
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


@dataclass(frozen=True)
class CompactionConfig:
    table_name: str
    bucket: str
    chroma_root: Path = Path("/mnt/chroma")
    work_dir: Path = Path("/tmp/chroma")
    dimension: int = DEFAULT_EMBEDDING_DIMENSION
    lock_duration_seconds: float = 180
    heartbeat_interval_seconds: float = 30
    heartbeat_max_failures: int = 3
    lock_wait_seconds: float = 60
    lock_backoff_seconds: tuple[float, float] = (1.0, 5.0)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CompactionConfig:
        values = os.environ if env is None else env
        return cls(
            table_name=_required(values, "DYNAMODB_TABLE_NAME"),
            bucket=_required(values, "CHROMADB_BUCKET"),
            chroma_root=Path(values.get("CHROMA_ROOT") or "/mnt/chroma"),
            work_dir=Path(values.get("CHROMA_WORK_DIR") or "/tmp/chroma"),
            dimension=int(_number(values, "EMBEDDING_DIMENSION", DEFAULT_EMBEDDING_DIMENSION)),
            lock_duration_seconds=_number(values, "LOCK_DURATION_SECONDS", 180),
            heartbeat_interval_seconds=_number(values, "HEARTBEAT_INTERVAL_SECONDS", 30),
            heartbeat_max_failures=int(_number(values, "HEARTBEAT_MAX_FAILURES", 3)),
            lock_wait_seconds=_number(values, "LOCK_WAIT_SECONDS", 60),
        )
