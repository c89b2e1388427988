"""The guard every delete of snapshot data goes through (contract §6 rev 3, "Who may delete").

A holder confirms its lease (a heartbeat that succeeds) immediately before deleting; that
gives its **deadline**: the confirmed expiry minus the safety margin. No other holder can
acquire the lease before that expiry, so a delete call whose timeout ends before the
deadline happens before anything a later holder reads, reuses or commits. ``DeleteFence``
answers, before each call, whether the call's worst case still ends in time: the S3
client's own timeouts and retries (every attempt may wait for a connect and a read, with
backoff between attempts), or nothing for a local rename (EFS).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from receipt_dynamo.aws_clients import ClientTimeouts

# Attempts assumed when a client's config does not say: botocore's legacy retry mode (an
# ``AWS_RETRY_MODE`` the config does not show) makes up to 5, more than standard mode's 3.
DEFAULT_ATTEMPTS = 5


def call_budget(client: Any) -> timedelta:
    """The longest one call of ``client`` can take: every attempt's connect and read
    timeouts plus the backoff between attempts (``ClientTimeouts.worst_case_seconds``)."""
    config = client.meta.config
    retries: dict[str, Any] = config.retries or {}
    if "total_max_attempts" in retries:
        attempts = int(retries["total_max_attempts"])
    elif "max_attempts" in retries:
        attempts = int(retries["max_attempts"]) + 1
    else:
        attempts = DEFAULT_ATTEMPTS
    timeouts = ClientTimeouts(
        connect_seconds=float(config.connect_timeout),
        read_seconds=float(config.read_timeout),
        max_attempts=max(1, attempts),
    )
    return timedelta(seconds=timeouts.worst_case_seconds)


class FenceRefusedError(Exception):
    """A delete request stopped just before it was sent: the deadline is too close."""


@dataclass
class DeleteFence:
    """Allows a delete call only while its worst case ends before the deadline.

    Built with the deadline of a lease just confirmed, or with ``confirm`` (the lease's
    ``confirm``), called at the first delete: a cycle that finds nothing to delete makes
    no extra heartbeat. A confirmation that fails refuses every delete.
    """

    deadline: datetime | None = None
    confirm: Callable[[], datetime] | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    refused: str | None = None  # why the first call was not allowed

    def allows(self, budget: timedelta = timedelta(0)) -> bool:
        if self.deadline is None:
            try:
                if self.confirm is None:
                    raise RuntimeError("no lease to confirm")
                self.deadline = self.confirm()
            except Exception as error:  # lost or unconfirmable: delete nothing
                self.refused = self.refused or f"lease not confirmed: {error}"
                return False
        now = self.clock()
        if now + budget < self.deadline:
            return True
        if self.refused is None:
            self.refused = (
                f"a delete taking up to {budget.total_seconds():.1f} s at {now.isoformat()} "
                f"would end after the lease deadline {self.deadline.isoformat()}"
            )
        return False
