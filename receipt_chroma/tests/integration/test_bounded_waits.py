"""Bounded waits against a Chroma server and AWS: a server that accepts connections and never
answers, or refuses them, fails a call within its deadline, and the compactor's deadlines
fit inside the time a holder's lease has left when a call stalls (contract §7)."""

from __future__ import annotations

import time

import httpx
import pytest

from receipt_chroma import settings
from receipt_chroma.chroma_http import RetryPolicy, call_with_retries
from receipt_chroma.chroma_server import ChromaServer
from receipt_chroma.exceptions import SinkUnavailableError
from receipt_compaction_tools.testing.endpoints import RefusedEndpoint, SilentEndpoint
from receipt_dynamo import COMPACTOR_TIMEOUTS

SLACK_SECONDS = 1.5
# When a call stalls, the lease has at least this long before the holder must stop: it
# was renewed at most one heartbeat interval ago, to the full duration, and is treated
# as lost a safety margin before it expires.
LEASE_LEFT_SECONDS = (
    settings.LOCK_DURATION_SECONDS
    - settings.HEARTBEAT_INTERVAL_SECONDS
    - settings.LEASE_SAFETY_MARGIN_SECONDS
)


def test_a_silent_chroma_server_fails_within_the_budget(silent_endpoint: SilentEndpoint) -> None:
    server = ChromaServer(host="127.0.0.1", port=silent_endpoint.port).within(4)
    started = time.monotonic()
    with pytest.raises(SinkUnavailableError) as raised:
        server.connect(mode="read")
    assert time.monotonic() - started <= 4 + SLACK_SECONDS
    assert f"127.0.0.1:{silent_endpoint.port}" in str(raised.value)
    assert "ReadTimeout" in str(raised.value)


def test_a_refused_chroma_server_fails_within_the_budget(refused_endpoint: RefusedEndpoint) -> None:
    server = ChromaServer(host="127.0.0.1", port=refused_endpoint.port).within(4)
    started = time.monotonic()
    with pytest.raises(SinkUnavailableError) as raised:
        server.connect(mode="read")
    assert time.monotonic() - started <= 4 + SLACK_SECONDS
    assert f"127.0.0.1:{refused_endpoint.port}" in str(raised.value)
    assert "ConnectError" in str(raised.value)


def test_no_retry_starts_that_could_end_past_the_deadline() -> None:
    """Each attempt waits its whole timeout (a server that never answers): the retries stop
    as soon as another one could not end within the deadline, not after every attempt."""
    policy = RetryPolicy(
        attempts=20, base_seconds=0.01, max_seconds=0.01, deadline_seconds=1.0, attempt_seconds=0.3
    )
    attempts = 0

    def stalled() -> None:
        nonlocal attempts
        attempts += 1
        time.sleep(policy.attempt_seconds)
        raise httpx.ReadTimeout("no answer")

    started = time.monotonic()
    with pytest.raises(SinkUnavailableError, match="unreachable after 3 attempts"):
        call_with_retries(
            stalled,
            url="http://127.0.0.1:1",
            retry=policy,
            before=None,
            give_up=lambda _reason: None,
        )
    assert attempts == 3  # a 4th would start at ~0.93 s and could end at ~1.23 s
    assert time.monotonic() - started <= policy.deadline_seconds + SLACK_SECONDS


def test_the_compactor_calls_end_before_a_stalled_holder_must_stop() -> None:
    assert LEASE_LEFT_SECONDS == 140
    # An AWS call, and a Chroma server call, that stall end (failed) in time for the
    # cycle to fail and its failure path (lease release, visibility reset) to run too.
    assert 3 * COMPACTOR_TIMEOUTS.worst_case_seconds <= LEASE_LEFT_SECONDS
    assert settings.CHROMA_CALL_DEADLINE_SECONDS < LEASE_LEFT_SECONDS
    attempt = settings.CHROMA_CONNECT_TIMEOUT_SECONDS + settings.CHROMA_REQUEST_TIMEOUT_SECONDS
    assert attempt <= settings.CHROMA_CALL_DEADLINE_SECONDS  # the first attempt fits too
