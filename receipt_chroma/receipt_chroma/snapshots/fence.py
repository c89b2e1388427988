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

# botocore's legacy retry mode (boto3's default) makes up to 5 attempts; its exponential
# backoff between attempts is capped at 20 s in standard mode.
DEFAULT_ATTEMPTS = 5
MAX_BACKOFF_SECONDS = 20.0


def call_budget(client: Any) -> timedelta:
    """The longest one call of ``client`` can take: every attempt's connect and read
    timeouts, plus the backoff between attempts."""
    config = client.meta.config
    retries: dict[str, Any] = config.retries or {}
    if "total_max_attempts" in retries:
        attempts = int(retries["total_max_attempts"])
    elif "max_attempts" in retries:
        attempts = int(retries["max_attempts"]) + 1
    else:
        attempts = DEFAULT_ATTEMPTS
    attempts = max(1, attempts)
    per_attempt = float(config.connect_timeout) + float(config.read_timeout)
    backoff = sum(min(MAX_BACKOFF_SECONDS, 2.0**retry) for retry in range(1, attempts))
    return timedelta(seconds=attempts * per_attempt + backoff)


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
