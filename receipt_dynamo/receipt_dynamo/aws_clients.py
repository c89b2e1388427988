"""Every AWS client of the project is built here, with bounded waits.

botocore's defaults wait 60 s to connect and 60 s for each read and retry several times,
so one call to an endpoint that accepts the connection and never answers holds its
caller for minutes — a compactor for longer than its lease. Clients built by
``aws_client`` have explicit connect and read timeouts and a bounded number of attempts
(botocore's ``standard`` retry mode: throttling and transient errors, timeouts included,
are retried with jittered exponential backoff).

The compactor's values (the default, ``COMPACTOR_TIMEOUTS``) and why they hold: one call
ends, answered or failed, within ``worst_case_seconds`` = 3 x (3 s + 10 s) + 3 s of
backoff = 42 s. A holder renews its 180 s lease every 30 s and treats it as lost 10 s
before the last confirmed expiry (contract §7), so when a call stalls the lease has at
least 180 - 30 - 10 = 140 s left: the stalled call fails the cycle after at most 42 s, and
the failure path's own calls (releasing the lease, handing the messages back) fit in the
rest. A read timeout bounds each wait for bytes, not a whole transfer: a large object
that keeps arriving is never cut off.

The CLI bounds a whole command instead (``ClientTimeouts.within``): two attempts whose
timeouts fit a budget, so a silent or refused endpoint is reported within it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import boto3
from botocore.config import Config

CONNECT_TIMEOUT_SECONDS: Final = 3.0
READ_TIMEOUT_SECONDS: Final = 10.0
MAX_ATTEMPTS: Final = 3  # the first attempt included (botocore's total_max_attempts)
# botocore's standard mode waits rand(0, 1) x min(2^i, 20) s before retry i (throttling;
# 25-50 ms x 2^i for other errors): the bound below takes the throttling ceiling.
_BACKOFF_CAP_SECONDS: Final = 20.0
# How ``within`` splits a budget: 10 % kept for the process itself, 1 s for the one
# backoff, the rest shared by two attempts, each 30 % connect and 70 % read.
_BUDGET_SLACK: Final = 0.1
_CONNECT_SHARE: Final = 0.3


@dataclass(frozen=True)
class ClientTimeouts:
    """Connect and read timeouts (seconds) and total attempts of one AWS call."""

    connect_seconds: float = CONNECT_TIMEOUT_SECONDS
    read_seconds: float = READ_TIMEOUT_SECONDS
    max_attempts: int = MAX_ATTEMPTS

    def __post_init__(self) -> None:
        if not self.connect_seconds > 0 or not self.read_seconds > 0:
            raise ValueError(
                f"timeouts must be positive, got connect={self.connect_seconds!r} "
                f"read={self.read_seconds!r}"
            )
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts!r}")

    @classmethod
    def within(cls, budget_seconds: float) -> ClientTimeouts:
        """Two attempts whose worst case fits ``budget_seconds`` (at least 2 s): an
        endpoint that never answers, or never accepts, fails a call within it."""
        if not budget_seconds >= 2:
            raise ValueError(f"the budget must be at least 2 seconds, got {budget_seconds!r}")
        attempts = 2
        backoff = sum(min(2.0**i, _BACKOFF_CAP_SECONDS) for i in range(attempts - 1))
        attempt = (budget_seconds * (1 - _BUDGET_SLACK) - backoff) / attempts
        return cls(
            connect_seconds=round(attempt * _CONNECT_SHARE, 2),
            read_seconds=round(attempt * (1 - _CONNECT_SHARE), 2),
            max_attempts=attempts,
        )

    @property
    def backoff_seconds(self) -> float:
        """The longest total pause between the attempts."""
        return sum(min(2.0**i, _BACKOFF_CAP_SECONDS) for i in range(self.max_attempts - 1))

    @property
    def worst_case_seconds(self) -> float:
        """How long one call can wait on an endpoint before it ends, answered or failed
        (each attempt at most its connect plus its read timeout, then the backoff)."""
        attempt = self.connect_seconds + self.read_seconds
        return self.max_attempts * attempt + self.backoff_seconds

    def config(self) -> Config:
        return Config(
            connect_timeout=self.connect_seconds,
            read_timeout=self.read_seconds,
            retries={"mode": "standard", "total_max_attempts": self.max_attempts},
        )


COMPACTOR_TIMEOUTS: Final = ClientTimeouts()


def aws_client(
    service: str,
    *,
    timeouts: ClientTimeouts = COMPACTOR_TIMEOUTS,
    region_name: str | None = None,
    endpoint_url: str | None = None,
    config: Config | None = None,
) -> Any:
    """A boto3 client of ``service`` with ``timeouts`` (``config`` adds other settings).
    Without ``endpoint_url`` boto3 honours ``AWS_ENDPOINT_URL`` (a local emulator)."""
    bounded = timeouts.config() if config is None else timeouts.config().merge(config)
    return boto3.client(  # type: ignore[call-overload]
        service, region_name=region_name, endpoint_url=endpoint_url, config=bounded
    )
