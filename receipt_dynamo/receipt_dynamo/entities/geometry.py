"""Geometry value types carried by receipts, lines and words."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from receipt_dynamo.entities.base import as_float, readable, required


@dataclass(frozen=True, slots=True)
class Point:
    """A corner in normalised image coordinates (map of ``x``, ``y``)."""

    x: float
    y: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "x", as_float(self.x, "x"))
        object.__setattr__(self, "y", as_float(self.y, "y"))

    def to_map(self) -> dict[str, float]:
        return {"x": self.x, "y": self.y}

    @classmethod
    def from_map(cls, value: Any, field: str) -> Self:
        if not isinstance(value, dict):
            raise ValueError(f"{field} must be a map of x, y, got {readable(value)}")
        return cls(**_read_numbers(value, field, ("x", "y")))


@dataclass(frozen=True, slots=True)
class BoundingBox:
    """An axis-aligned box (map of ``x``, ``y``, ``width``, ``height``)."""

    x: float
    y: float
    width: float
    height: float

    def __post_init__(self) -> None:
        for name in ("x", "y", "width", "height"):
            object.__setattr__(self, name, as_float(getattr(self, name), name))

    def to_map(self) -> dict[str, float]:
        return {"x": self.x, "y": self.y, "width": self.width, "height": self.height}

    @classmethod
    def from_map(cls, value: Any, field: str) -> Self:
        if not isinstance(value, dict):
            raise ValueError(f"{field} must be a map of x, y, width, height, got {readable(value)}")
        return cls(**_read_numbers(value, field, ("x", "y", "width", "height")))


def _read_numbers(value: dict[str, Any], field: str, names: tuple[str, ...]) -> dict[str, float]:
    return {
        name: as_float(required(value, name, f"{field}.{name}"), f"{field}.{name}")
        for name in names
    }


def check_point(value: object, field: str) -> None:
    if not isinstance(value, Point):
        raise ValueError(f"{field} must be a Point, got {value!r}")
