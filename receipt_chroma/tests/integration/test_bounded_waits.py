"""Bounded waits against a Chroma server and AWS: a server that accepts connections and never
answers, or refuses them, fails a call within its deadline, and the compactor's deadlines
fit inside the time a holder's lease has left when a call stalls (contract §7)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import httpx
import pytest

from receipt_chroma.chroma_http import RetryPolicy, call_with_retries
from receipt_chroma.chroma_server import ChromaServer
from receipt_chroma.compaction import CompactionCycle
from receipt_chroma.exceptions import SinkUnavailableError
from receipt_compaction_tools.testing.synthetic import SyntheticReceipt
from receipt_compaction_tools.testing.world import CompactionWorld
from receipt_dynamo import COMPACTOR_TIMEOUTS, ClientTimeouts, ValidationStatus, aws_client
from receipt_dynamo.testing import IMAGE_ID, RefusedEndpoint, SilentEndpoint, make_label
from receipt_dynamo_stream import compactor_defaults as settings

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


@pytest.mark.integration
def test_a_stalled_s3_fails_the_cycle_before_its_lease_runs_out(
    aws_endpoint: str, tmp_path: Path, silent_endpoint: SilentEndpoint
) -> None:
    """S3 accepts connections and never answers while a cycle runs (DynamoDB is fine): the
    cycle fails its messages, releases the lease and returns well inside the lease; once
    S3 answers again, the same messages are applied."""
    world = CompactionWorld(tmp_path)
    world.add_receipt(SyntheticReceipt(IMAGE_ID, 1, dimension=world.dimension))
    assert not any(r.failures for r in world.compact(world.pump()))
    world.dynamo.put_receipt_word_label(
        make_label(IMAGE_ID, 1, 1, 1, "TOTAL", validation_status=ValidationStatus.VALID)
    )
    messages = world.pump()["words"]
    quick = ClientTimeouts(connect_seconds=0.5, read_seconds=0.5, max_attempts=2)
    stalled_s3 = aws_client("s3", timeouts=quick, endpoint_url=silent_endpoint.url)
    config = dataclasses.replace(world.config, work_dir=tmp_path / "cold")  # no warm copy
    cycle = CompactionCycle(config, "words", dynamo=world.dynamo, s3_client=stalled_s3)
    started = time.monotonic()
    result = cycle.run(messages)
    elapsed = time.monotonic() - started
    assert result.failed_message_ids == {message_id for message_id, _ in messages}
    margin = config.lock_duration_seconds / 4  # the lease's safety margin at 30 s
    assert elapsed < config.lock_duration_seconds - margin
    lock = world.dynamo.get_compaction_lock("words")
    assert lock is not None
    assert lock.owner is None  # released, not left to expire
    retried = world.cycle("words").run(messages)
    assert not retried.failures
    assert retried.published_version is not None
