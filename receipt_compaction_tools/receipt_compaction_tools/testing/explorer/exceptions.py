"""Errors of the interleaving explorer."""

from __future__ import annotations


class Killed(BaseException):
    """Raised in every thread of a killed compactor at its next AWS call (and at a stage
    boundary that kills it): a dead process makes no more calls. A ``BaseException``, so
    no ``except Exception`` in the product treats it as a failure to handle — the process
    never reaches its ``finally`` blocks' AWS calls, so it never releases its lease."""


class DiscoveryError(RuntimeError):
    """No clean run could be had, so the explorer has no points to stop at."""


class ScheduleError(ValueError):
    """A schedule that cannot be parsed or run as written (names what is wrong)."""
