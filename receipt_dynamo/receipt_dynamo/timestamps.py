"""The one timestamp format the pipeline writes (contract §2)."""

from __future__ import annotations

from datetime import UTC, datetime


def now_iso() -> str:
    """Current UTC time as ``2026-11-28T10:15:00.000000+00:00``."""
    return to_iso(datetime.now(UTC))


def to_iso(moment: datetime) -> str:
    """Format an aware datetime in the pipeline's canonical form (UTC, microseconds)."""
    if moment.tzinfo is None:
        raise ValueError(f"timestamp must be timezone-aware, got {moment!r}")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def parse_iso(value: str) -> datetime:
    """Read a timestamp written by the pipeline (or any ISO 8601 string)."""
    return datetime.fromisoformat(value)


def instant(value: str) -> datetime:
    """The moment a row's timestamp names, for comparing (a naive value is taken as UTC).

    Timestamps are compared as instants, never as text: ``08:00-05:00`` is after
    ``12:00+00:00``. ValueError when ``value`` is not ISO 8601.
    """
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def validate_timestamp(value: object, field: str) -> str:
    """Return ``value`` if it is an ISO 8601 string ``datetime.fromisoformat`` accepts."""
    if not isinstance(value, str):
        raise ValueError(f"{field} must be an ISO 8601 string, got {value!r}")
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{field} must be an ISO 8601 string, got {value!r}") from None
    return value
