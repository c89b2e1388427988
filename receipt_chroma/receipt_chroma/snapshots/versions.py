"""Snapshot version ids: ``YYYYMMDD_HHMMSS_ffffff_<8 hex>`` (UTC), sortable by time."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Final

VERSION_RE: Final = re.compile(r"(\d{8}_\d{6}_\d{6})_([0-9a-f]{8})", re.ASCII)


def new_version_id(now: datetime | None = None) -> str:
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment.strftime('%Y%m%d_%H%M%S_%f')}_{secrets.token_hex(4)}"


def is_version_id(value: str) -> bool:
    return VERSION_RE.fullmatch(value) is not None


def version_time(version_id: str) -> datetime:
    """When a version id was minted; ValueError for anything else."""
    match = VERSION_RE.fullmatch(version_id)
    if match is None:
        raise ValueError(f"{version_id!r} is not a snapshot version id")
    return datetime.strptime(match.group(1), "%Y%m%d_%H%M%S_%f").replace(tzinfo=UTC)
