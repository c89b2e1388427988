"""The command line's errors: what the user asked for is wrong (exit status 2), or the
command ran and part of its work failed (exit status 1)."""

from __future__ import annotations


class UsageError(Exception):
    """A mistake in what the user asked for or configured (exit status 2)."""


class OperationFailed(Exception):
    """The command ran but part of its work failed; the result is still printed
    (exit status 1)."""
