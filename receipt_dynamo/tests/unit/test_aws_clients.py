"""Bounded waits of every AWS client: a silent or refused endpoint fails a call within the
worst case its timeouts promise, and the table client uses those timeouts."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

from receipt_dynamo import COMPACTOR_TIMEOUTS, ClientTimeouts, DynamoClient, aws_client
from receipt_dynamo.testing import RefusedEndpoint, SilentEndpoint

QUICK = ClientTimeouts(connect_seconds=0.5, read_seconds=0.5, max_attempts=2)
SLACK_SECONDS = 1.5  # process scheduling on a loaded machine


def test_a_silent_endpoint_fails_a_call_within_the_worst_case(
    silent_endpoint: SilentEndpoint,
) -> None:
    client = aws_client("dynamodb", timeouts=QUICK, endpoint_url=silent_endpoint.url)
    started = time.monotonic()
    with pytest.raises(ReadTimeoutError) as raised:
        client.list_tables()
    elapsed = time.monotonic() - started
    assert elapsed <= QUICK.worst_case_seconds + SLACK_SECONDS
    assert elapsed >= QUICK.max_attempts * QUICK.read_seconds  # every attempt waited
    assert silent_endpoint.url in str(raised.value)


def test_a_refused_endpoint_fails_a_call_at_once(refused_endpoint: RefusedEndpoint) -> None:
    client = aws_client("sqs", timeouts=QUICK, endpoint_url=refused_endpoint.url)
    started = time.monotonic()
    with pytest.raises(EndpointConnectionError) as raised:
        client.list_queues()
    assert time.monotonic() - started <= QUICK.backoff_seconds + SLACK_SECONDS
    assert refused_endpoint.url in str(raised.value)


def test_the_table_client_waits_no_longer_than_the_compactor_timeouts(
    silent_endpoint: SilentEndpoint,
) -> None:
    config = DynamoClient("receipts", endpoint_url=silent_endpoint.url).client.meta.config
    assert config.connect_timeout == COMPACTOR_TIMEOUTS.connect_seconds
    assert config.read_timeout == COMPACTOR_TIMEOUTS.read_seconds
    assert config.retries["total_max_attempts"] == COMPACTOR_TIMEOUTS.max_attempts


def test_worst_case_is_attempts_of_connect_plus_read_plus_the_backoff_ceiling() -> None:
    # 3 attempts of (3 s connect + 10 s read), pauses of at most 1 s and 2 s between them.
    assert COMPACTOR_TIMEOUTS.worst_case_seconds == 3 * (3 + 10) + 1 + 2


@pytest.mark.parametrize("budget", [2.0, 5.0, 15.0, 60.0])
def test_a_budget_bounds_the_worst_case(budget: float) -> None:
    timeouts = ClientTimeouts.within(budget)
    assert timeouts.worst_case_seconds <= budget
    assert timeouts.max_attempts == 2


@pytest.mark.parametrize(
    "arguments",
    [
        {"connect_seconds": 0},
        {"read_seconds": -1},
        {"max_attempts": 0},
    ],
)
def test_nonsense_timeouts_are_refused(arguments: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        ClientTimeouts(**arguments)  # type: ignore[arg-type]


def test_a_budget_under_two_seconds_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 2 seconds"):
        ClientTimeouts.within(1.0)
