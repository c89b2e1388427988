"""The convergence model of SPEC §5.4 with a Chroma server as the sink (§12).

The same state machine as ``test_convergence_model`` — the same table model and oracle,
messages built by the real stream code from the stream records of the table writes,
shuffled, duplicated and redelivered, the same faults (a
delta uploaded late, a Chroma write raising before or after it is done, the lease taken
away once the batch is applied) — drives real ``CompactionCycle``s whose sink is a real
``chroma run`` server (the test's own, since the test kills it; each example starts from
empty collections). One more fault, in every example: during the final drain the server is
killed just before a cycle's first write and comes back a moment later, while that write
is being retried. When the queues drain, the server's collections must equal what the
oracle computes from the final table.

``CONVERGENCE_SERVER_EXAMPLES`` (default 4, about half a minute each on this 2-core
machine: every cycle talks to the server) and ``CONVERGENCE_STEPS`` size the run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from convergence_machine import ConvergenceMachine
from convergence_world import DELTAS, STATS, Aws, ChromaWriteFaults, Fault, World, count
from hypothesis.stateful import run_state_machine_as_test
from test_convergence_model import aws, sample_settings

from receipt_chroma.chroma_http import RetryPolicy
from receipt_chroma.chroma_server import ChromaServer
from receipt_compaction_tools.local.chroma_server import LocalChromaServer
from receipt_compaction_tools.testing.published import PublishedRecord, read_server_collection
from receipt_dynamo_stream.compactor_defaults import CHROMA_DATABASE, SinkKind

__all__ = ["aws"]  # the fixture, shared with the snapshot variant

EXAMPLES = int(os.environ.get("CONVERGENCE_SERVER_EXAMPLES", "4"))
# Longer than `chroma run` takes to come back after a kill (~3 s here).
PATIENT = RetryPolicy(attempts=10, base_seconds=0.2, max_seconds=2.0)
RESTART_DOWN_SECONDS = 0.5


class ServerWorld(World):
    """The snapshot variant's world, with the compactor writing to the Chroma server."""

    def __init__(self, aws: Aws, root: Path, server: LocalChromaServer, database: str) -> None:
        super().__init__(aws, root)
        self.server = server
        self.database = database
        self.config = dataclasses.replace(
            self.config,
            sink=SinkKind.SERVER,
            server=ChromaServer(server.host, server.port, database=database, retry=PATIENT),
        )
        assert self.config.server is not None
        with self.config.server.connect() as client:  # every example starts empty
            for name in client.list_collection_names():
                client.client.delete_collection(name)

    def published(self, collection: str) -> dict[str, PublishedRecord] | None:
        """What the server's collection holds (None: no cycle ever created it)."""
        found = read_server_collection(
            collection, host=self.server.host, port=self.server.port, database=self.database
        )
        return found or None


class ServerFaults(ChromaWriteFaults):
    """The snapshot variant's Chroma write faults, plus ``restart``: the server is killed
    just before the chosen write and started again a moment later (the write's own
    retries carry it across)."""

    def __init__(self, server: LocalChromaServer) -> None:
        super().__init__()
        self.server = server
        self.restarts: list[threading.Thread] = []

    def _wrap(self, original: Callable[..., Any], name: str) -> Callable[..., Any]:
        inject = super()._wrap(original, name)
        faults = self

        def write(collection: Any, *args: Any, **kwargs: Any) -> Any:
            fault = faults.armed
            if fault is None or fault.kind != "restart" or faults.fired:
                return inject(collection, *args, **kwargs)
            faults.calls += 1
            if faults.calls == fault.call:
                faults.fired = True
                count("server restarts")
                faults.server.stop(kill=True)
                restart = threading.Timer(RESTART_DOWN_SECONDS, faults.server.start)
                restart.start()
                faults.restarts.append(restart)
            return original(collection, *args, **kwargs)

        return write

    def settle(self) -> None:
        """Wait for a restart still under way (a write that failed over may leave one)."""
        for restart in self.restarts:
            restart.join()
        self.restarts.clear()
        if not self.server.running:
            self.server.start()


class ServerConvergenceMachine(ConvergenceMachine):
    server: LocalChromaServer
    database: str

    def new_world(self, aws: Aws, root: Path) -> World:
        return ServerWorld(aws, root, self.server, self.database)

    def on_stage(self, collection: str, stage: str) -> None:
        # The server sink's "applied": every write acknowledged, the runs not yet marked.
        if stage == "applied" and self.fault.kind == "lease":
            self.world.steal_lease(collection)
        super().on_stage(collection, stage)

    def drain(self) -> None:
        """The snapshot variant's drain, its first cycle restarting the server mid-batch
        (before its first write) in every example."""
        self.drain_faults = [Fault("restart", 1), *self.drain_faults]
        super().drain()

    def run_cycle(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().run_cycle(*args, **kwargs)
        finally:
            assert isinstance(self.faults, ServerFaults)
            self.faults.settle()


@pytest.fixture
def server_faults(
    monkeypatch: pytest.MonkeyPatch, killable_chroma_server: LocalChromaServer
) -> ServerFaults:
    faults = ServerFaults(killable_chroma_server)
    faults.install(monkeypatch)
    return faults


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.timeout(max(600, EXAMPLES * 30))
def test_compactor_converges_to_the_oracle_on_a_chroma_server(
    aws: Aws,
    tmp_path: Path,
    killable_chroma_server: LocalChromaServer,
    server_faults: ServerFaults,
) -> None:
    examples = iter(range(10**9))
    ServerConvergenceMachine.server = killable_chroma_server
    ServerConvergenceMachine.database = CHROMA_DATABASE

    def machine() -> ServerConvergenceMachine:
        root = tmp_path / f"example-{next(examples)}"
        return ServerConvergenceMachine(aws, root, server_faults)

    STATS.clear()
    started = time.perf_counter()
    run_state_machine_as_test(machine, settings=sample_settings(EXAMPLES))
    STATS["delta cache hits"], STATS["delta cache misses"] = DELTAS.hits, DELTAS.misses
    print(
        f"convergence (server sink): {time.perf_counter() - started:.1f} s, "
        f"{json.dumps(STATS, sort_keys=True)}"
    )
