"""The Chroma server as the sink (contract §12): full cycles against a real ``chroma run``
server (one per session, a fresh database per test) and a moto server — the §4 ids and
metadata, the §5.4 rules without a local copy, runs COMPLETED once acknowledged, an
unreachable server, a server that restarts or dies mid-batch, batches within the server's
limit. Both sinks at once: ``test_both_sinks_stay_in_step.py``."""

from __future__ import annotations

import dataclasses
import http.server
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from chromadb.api.models.Collection import Collection
from server_sink_support import IMPATIENT, patient_server, populate, run_states

from receipt_chroma import chroma_client
from receipt_chroma.chroma_client import ChromaClient
from receipt_chroma.chroma_server import ChromaServer, forget_tokens
from receipt_chroma.compaction import FailureCause, LockManager, produce_compaction_run
from receipt_chroma.exceptions import CredentialsRefusedError, SinkUnavailableError
from receipt_chroma.ids import line_vector_id, word_vector_id
from receipt_compaction_tools.local.chroma_server import LocalChromaServer, _free_port
from receipt_compaction_tools.testing.synthetic import SyntheticReceipt, embedding_for
from receipt_compaction_tools.testing.world import CompactionWorld
from receipt_dynamo.testing import (
    IMAGE_ID,
    OTHER_IMAGE_ID,
    make_label,
    make_metadata,
)
from receipt_dynamo_stream import StreamMessage
from receipt_dynamo_stream.compactor_defaults import CHROMA_DATABASE, SinkKind

pytestmark = pytest.mark.integration


@pytest.fixture
def server(chroma_server: LocalChromaServer, chroma_database: str) -> ChromaServer:
    return patient_server(chroma_server, chroma_database)


@pytest.fixture
def world(aws_endpoint: str, tmp_path: Path, server: ChromaServer) -> CompactionWorld:
    world = CompactionWorld(tmp_path)
    world.use_sink(SinkKind.SERVER, server)
    return world


class Gateway:
    """A reverse proxy in front of the Chroma server, as a load balancer or an API gateway:
    with ``token`` set it answers a plain (non-JSON) 401 to requests without that
    ``X-Chroma-Token`` (``/heartbeat`` too); an upstream it cannot reach is a 502; a path
    containing ``fail[0]`` is answered with status ``fail[1]``, one containing ``stall``
    only after ``stall_seconds``."""

    def __init__(self, upstream: str, token: str | None = None) -> None:
        self.upstream, self.token = upstream, token
        self.stall, self.stall_seconds = "", 0.0
        self.fail: tuple[str, int] | None = None  # (path part, status) answered instead
        self.seen: list[tuple[str, str | None]] = []  # (path, token) of every request
        gateway = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                token = self.headers.get("X-Chroma-Token")
                gateway.seen.append((self.path, token))
                if gateway.stall and gateway.stall in self.path:
                    time.sleep(gateway.stall_seconds)
                if gateway.fail and gateway.fail[0] in self.path:
                    self.answer(gateway.fail[1], b"<html>Service Unavailable</html>", {})
                    return
                if gateway.token is not None and token != gateway.token:
                    self.answer(401, b"<html>401 Authorization Required</html>", {})
                    return
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "content-length")
                }
                try:
                    reply = httpx.request(
                        self.command, gateway.upstream + self.path, content=body, headers=headers
                    )
                except httpx.TransportError:
                    self.answer(502, b"<html>502 Bad Gateway</html>", {})
                    return
                kept = {
                    k: v
                    for k, v in reply.headers.items()
                    if k.lower() in ("content-type", "chroma-trace-id")
                }
                self.answer(reply.status_code, reply.content, kept)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = forward

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.block_on_close = False  # a stalled request does not hold up the test
        self.httpd.handle_error = lambda *_: None  # type: ignore[method-assign]  # clients gone
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def gateway(chroma_server: LocalChromaServer) -> Iterator[Gateway]:
    proxy = Gateway(chroma_server.url)
    yield proxy
    proxy.close()


def _through(gateway: Gateway, database: str, **settings: Any) -> ChromaServer:
    return ChromaServer(host="127.0.0.1", port=gateway.port, database=database, **settings)


@pytest.fixture
def chroma_calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, Callable[[], None]]:
    """Hooks run before chromadb's own ``Collection.upsert`` / ``update`` (the library is
    wrapped, never this project's modules): a test puts a callable under a method name and
    it runs once, before that method's next call."""
    hooks: dict[str, Callable[[], None]] = {}
    for name in ("upsert", "update"):
        original = getattr(Collection, name)

        def wrapped(self: Any, *args: Any, _name: str = name, _orig: Any = original, **kw: Any):
            hook = hooks.pop(_name, None)
            if hook is not None:
                hook()
            return _orig(self, *args, **kw)

        monkeypatch.setattr(Collection, name, wrapped)
    return hooks


def test_server_mode_applies_the_contract_ids_metadata_and_deletions(
    world: CompactionWorld,
) -> None:
    first, _ = populate(world)
    results = world.compact(world.pump())
    assert all(r.failures == [] for r in results), [r.failures for r in results]
    assert {(r.sink, r.server_applied, r.tier, r.published_version) for r in results} == {
        ("server", True, None, None)
    }
    assert run_states(world, IMAGE_ID) == {("COMPLETED", "COMPLETED")}

    world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1, merchant_name="Corner Mkt"))
    world.dynamo.delete_receipt_line(IMAGE_ID, 1, 3)
    for row in SyntheticReceipt(OTHER_IMAGE_ID, 1).rows:
        world.dynamo.delete_entity(row)
    results = world.compact(world.pump())
    assert all(r.failures == [] for r in results), [r.failures for r in results]

    words = world.server_records("words")
    assert set(words) == {r[0] for r in first.word_records()}
    metadata, vector = words[word_vector_id(IMAGE_ID, 1, 1, 1)]
    run = world.dynamo.list_compaction_runs_for_receipt(IMAGE_ID, 1)[0]
    label = make_label(IMAGE_ID, 1, 1, 1, "TOTAL")
    assert metadata == {
        "image_id": IMAGE_ID,
        "receipt_id": 1,
        "line_id": 1,
        "word_id": 1,
        "text": "w1.1",
        "embedding_run_id": run.run_id,
        "embedding_created_at": run.created_at,
        "merchant_name": "Corner Mkt",
        "merchant_category": "grocery",
        "address": "1 Main St",
        "phone_number": "555-0100",
        "place_id": "ChIJ-test-place",
        "merchant_updated_at": make_metadata(IMAGE_ID, 1).timestamp,
        "label_status": "validated",
        "valid_labels_array": ["TOTAL"],
        "label_validated_at": label.timestamp_added,
        "labels_updated_at": label.timestamp_added,
    }
    assert vector == [round(x, 5) for x in embedding_for(word_vector_id(IMAGE_ID, 1, 1, 1), 8)]
    assert set(world.server_records("lines")) == {line_vector_id(IMAGE_ID, 1, n) for n in (1, 2)}
    # No working copy, snapshot or pointer: the server is the only sink.
    assert world.dynamo.get_snapshot_pointer("words") is None
    assert (
        not boto3.client("s3")
        .list_objects_v2(Bucket=world.bucket, Prefix="words/snapshot/")
        .get("Contents")
    )
    assert not (world.config.work_dir / "words" / "snapshot").exists()


def test_merges_are_order_proof_without_a_local_copy(world: CompactionWorld) -> None:
    receipt = SyntheticReceipt(IMAGE_ID, 1, lines=2, words_per_line=1, dimension=world.dimension)
    world.add_receipt(receipt, run_id="00000000-0000-4000-8000-000000000001")
    older = world.pump()
    newer_words = [
        (record_id, embedding_for(f"{record_id} again", world.dimension), text, meta)
        for record_id, _, text, meta in receipt.word_records()
    ]
    newer = produce_compaction_run(
        world.dynamo,
        image_id=IMAGE_ID,
        receipt_id=1,
        run_id="00000000-0000-4000-8000-000000000002",
        lines=receipt.line_records(),
        words=newer_words,
        bucket=world.bucket,
    )
    later = world.pump()
    # The newer run is merged first, the older one after it: the record keeps the newer.
    assert world.cycle("words").run(later["words"]).failures == []
    assert world.cycle("words").run(older["words"]).failures == []
    assert world.cycle("words").run(older["words"] + later["words"]).failures == []
    words = world.server_records("words")
    for record_id, vector, _, _ in newer_words:
        assert words[record_id][0]["embedding_run_id"] == newer.run_id
        assert words[record_id][1] == [round(x, 5) for x in vector]


def test_an_unreachable_server_fails_every_message_with_one_error(
    world: CompactionWorld,
) -> None:
    populate(world)
    closed = ChromaServer(host="127.0.0.1", port=_free_port(), retry=IMPATIENT)
    world.use_sink(SinkKind.SERVER, closed)
    messages = world.pump()["words"]
    result = world.cycle("words").run(messages)
    assert result.cause is FailureCause.SINK_UNAVAILABLE
    assert result.failed_message_ids == {m for m, _ in messages}
    (reason,) = {f.reason for f in result.failures}
    assert reason.startswith("sink_unavailable: Chroma server http://127.0.0.1:")
    assert "cannot be used" in reason or "unreachable" in reason
    assert run_states(world, IMAGE_ID) == {("PENDING", "PENDING")}
    lock = world.dynamo.get_compaction_lock("words")
    assert lock is not None
    assert lock.owner is None  # released


def test_a_server_restart_mid_batch_costs_a_pause_not_the_batch(
    world: CompactionWorld,
    killable_chroma_server: LocalChromaServer,
    chroma_calls: dict[str, Callable[[], None]],
) -> None:
    chroma_server = killable_chroma_server
    world.use_sink(SinkKind.SERVER, patient_server(chroma_server, CHROMA_DATABASE))
    first, _ = populate(world)
    messages = world.pump()["words"]

    restarted = threading.Timer(1.0, chroma_server.start)

    def restart() -> None:
        # Killed just before the merge's upsert; back a second later, while it retries.
        chroma_server.stop(kill=True)
        restarted.start()

    chroma_calls["upsert"] = restart
    try:
        result = world.cycle("words").run(messages)
    finally:
        if restarted.is_alive() or restarted.finished.is_set():
            restarted.join()  # the next test finds the server up, not half started
    assert result.failures == [], result.failures
    assert chroma_server.running
    words = world.server_records("words")
    assert len(words) == 12
    assert words[word_vector_id(IMAGE_ID, 1, 1, 1)][0]["valid_labels_array"] == ["TOTAL"]
    assert run_states(world, IMAGE_ID) == {("PENDING", "COMPLETED")}
    assert set(words) >= {record[0] for record in first.word_records()}


def test_a_server_gone_mid_batch_fails_the_batch_then_the_retry_converges(
    world: CompactionWorld,
    killable_chroma_server: LocalChromaServer,
    chroma_calls: dict[str, Callable[[], None]],
) -> None:
    chroma_server = killable_chroma_server
    server = patient_server(chroma_server, CHROMA_DATABASE)
    populate(world)
    messages = world.pump()["words"]
    world.use_sink(SinkKind.SERVER, dataclasses.replace(server, retry=IMPATIENT))
    chroma_calls["upsert"] = lambda: chroma_server.stop(kill=True)
    try:
        result = world.cycle("words").run(messages)
    finally:
        chroma_server.start()
    assert result.cause is FailureCause.SINK_UNAVAILABLE
    assert result.failed_message_ids == {m for m, _ in messages}
    (reason,) = {f.reason for f in result.failures}
    assert "unreachable after 2 attempts" in reason
    assert run_states(world, IMAGE_ID) == {("PENDING", "PROCESSING")}  # not COMPLETED

    retried = world.cycle("words").run(messages)
    assert retried.failures == []
    words = world.server_records("words")
    assert len(words) == 12
    assert words[word_vector_id(IMAGE_ID, 1, 1, 1)][0]["valid_labels_array"] == ["TOTAL"]
    assert run_states(world, IMAGE_ID) == {("PENDING", "COMPLETED")}


def test_writes_are_split_within_the_server_batch_limit(
    server: ChromaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    original = Collection.upsert

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(len(kwargs["ids"]))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Collection, "upsert", counting)
    with server.connect() as client:
        assert client.max_batch_size == 5461  # what `chroma run` 1.5.9 reports
        assert client.write_batch_size == 1000  # a request of seconds, not tens of them
        client._max_batch_size = 3  # as a server with a small limit (Chroma Cloud) says
        words = client.get_or_create_collection("words")
        ids = [f"id-{n}" for n in range(7)]
        words.upsert(ids=ids, embeddings=[embedding_for(i, 4) for i in ids])
        assert calls == [3, 3, 1]
        assert words.count() == 7
        assert words.configuration["hnsw"]["space"] == "cosine"


def test_every_request_has_a_timeout(server: ChromaServer) -> None:
    """chromadb 1.5 sets none; ChromaClient sets one on chromadb's session (if a chromadb
    upgrade moves that session, this fails here rather than a cycle hanging in AWS)."""
    with server.connect(mode="read") as client:
        session = client.client._server._session  # type: ignore[attr-defined]
        assert session.timeout.connect == server.connect_timeout_seconds
        assert session.timeout.read == server.request_timeout_seconds


def test_a_client_that_gave_up_fails_at_once(chroma_server: LocalChromaServer) -> None:
    port = _free_port()
    with pytest.raises(SinkUnavailableError, match=f"127.0.0.1:{port}"):
        ChromaServer(host="127.0.0.1", port=port, retry=IMPATIENT).connect()
    client = ChromaClient(http_host=chroma_server.host, http_port=chroma_server.port, mode="write")
    client.unavailable = "gave up earlier"
    with pytest.raises(SinkUnavailableError, match="gave up earlier"):
        client.get_or_create_collection("words")
    client.close()


def test_a_message_for_a_missing_database_fails_as_sink_unavailable(
    world: CompactionWorld, chroma_server: LocalChromaServer
) -> None:
    world.use_sink(
        SinkKind.SERVER,
        ChromaServer(
            host=chroma_server.host, port=chroma_server.port, database=f"nope-{uuid.uuid4().hex}"
        ),
    )
    populate(world)
    messages: list[tuple[str, StreamMessage]] = world.pump()["lines"]
    result = world.cycle("lines").run(messages)
    assert result.cause is FailureCause.SINK_UNAVAILABLE
    assert "NotFoundError" in result.failures[0].reason


def test_a_lease_lost_mid_merge_fails_as_lease_lost(
    world: CompactionWorld,
    chroma_calls: dict[str, Callable[[], None]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    populate(world)
    messages = world.pump()["words"]
    # A server with a small batch limit (as Chroma Cloud): the merge writes in several calls.
    monkeypatch.setattr(ChromaClient, "max_batch_size", property(lambda self: 3))
    leases: list[LockManager] = []
    acquire = LockManager.acquire

    def recorded(self: LockManager) -> None:
        leases.append(self)
        acquire(self)

    monkeypatch.setattr(LockManager, "acquire", recorded)
    upserts: list[int] = []

    def taken_over() -> None:  # during the merge's first write another holder takes over
        world.dynamo.acquire_lease(
            "words", owner="other", duration_seconds=600, now=datetime.now(UTC) + timedelta(hours=1)
        )
        leases[-1].heartbeat()

    chroma_calls["upsert"] = taken_over
    original = Collection.upsert

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        upserts.append(len(kwargs["ids"]))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Collection, "upsert", counted)
    result = world.cycle("words").run(messages)
    assert result.cause is FailureCause.LEASE_LOST, result.failures
    assert result.failed_message_ids == {m for m, _ in messages}
    assert upserts == [3]  # no write after the takeover
    assert run_states(world, IMAGE_ID) == {("PENDING", "PROCESSING")}  # not COMPLETED


@pytest.mark.parametrize(
    ("path", "status"), [("/heartbeat", 502), ("/tenants/", 503), ("/upsert", 504)]
)
def test_a_gateway_without_its_server_is_an_unreachable_server(
    world: CompactionWorld, gateway: Gateway, chroma_database: str, path: str, status: int
) -> None:
    populate(world)
    messages = world.pump()["words"]
    world.use_sink(SinkKind.SERVER, _through(gateway, chroma_database, retry=IMPATIENT))
    if status == 502:
        gateway.upstream = f"http://127.0.0.1:{_free_port()}"  # the server behind it is down
    else:
        gateway.fail = (path, status)
    result = world.cycle("words").run(messages)
    assert result.cause is FailureCause.SINK_UNAVAILABLE, result.failures
    (reason,) = {f.reason for f in result.failures}
    assert f"unreachable after 2 attempts: HTTP {status} " in reason, reason
    assert len([p for p, _ in gateway.seen if path in p]) == 2  # retried, then given up
    assert ("COMPLETED", "COMPLETED") not in run_states(world, IMAGE_ID)


def test_a_rotated_token_is_picked_up_behind_a_gateway_with_plain_401s(
    world: CompactionWorld, gateway: Gateway, chroma_database: str
) -> None:
    forget_tokens()
    secrets = boto3.client("secretsmanager")
    secret = f"chroma-{uuid.uuid4().hex[:8]}"
    secrets.create_secret(Name=secret, SecretString="old-token-1")
    gateway.token = "old-token-1"  # /heartbeat guarded too, 401s as plain HTML
    world.use_sink(
        SinkKind.SERVER,
        _through(gateway, chroma_database, auth_token_secret=secret, retry=IMPATIENT),
    )
    populate(world)
    assert world.cycle("words").run(world.pump()["words"]).failures == []

    secrets.put_secret_value(SecretId=secret, SecretString="new-token-2")
    gateway.token = "new-token-2"  # rotated; this container still holds the old one
    world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1, merchant_name="Rotated"))
    result = world.cycle("words").run(world.pump()["words"])
    assert result.failures == [], result.failures
    assert [t for _, t in gateway.seen[-3:]] == ["new-token-2"] * 3

    gateway.token = "newer-token-3"  # the secret was not updated: still refused
    world.dynamo.put_receipt_metadata(make_metadata(IMAGE_ID, 1, merchant_name="Refused"))
    messages = world.pump()["words"]
    result = world.cycle("words").run(messages)
    assert result.cause is FailureCause.SINK_UNAVAILABLE
    assert result.failed_message_ids == {m for m, _ in messages}
    (reason,) = {f.reason for f in result.failures}
    assert "refused the credentials (HTTP 401)" in reason
    assert repr(secret) in reason
    assert "token-" not in reason.replace(repr(secret), "")


def test_chromadb_auth_environment_variables_are_ignored(
    gateway: Gateway, chroma_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token comes from its secret only (§12), never from chromadb's own variables."""
    gateway.token = "plain-variable-token"
    monkeypatch.setenv(
        "CHROMA_CLIENT_AUTH_PROVIDER", "chromadb.auth.token_authn.TokenAuthClientProvider"
    )
    monkeypatch.setenv("CHROMA_CLIENT_AUTH_CREDENTIALS", "plain-variable-token")
    monkeypatch.setenv("CHROMA_SERVER_HEADERS", '{"X-Chroma-Token": "plain-variable-token"}')
    chroma_client._settings_template.cache_clear()  # as a container started with them
    try:
        with pytest.raises(CredentialsRefusedError, match="no token"):
            _through(gateway, chroma_database, retry=IMPATIENT).connect()
    finally:
        chroma_client._settings_template.cache_clear()
    assert {token for _, token in gateway.seen} == {None}


def test_a_server_that_stalls_while_the_client_is_built_fails_in_time(
    world: CompactionWorld, gateway: Gateway, chroma_database: str
) -> None:
    """The heartbeat is answered, the tenant lookup chromadb makes while it builds its
    client is not: the request timeout applies there too, and the cycle gives up."""
    gateway.stall, gateway.stall_seconds = "/tenants/", 30.0
    timeouts = {"connect_timeout_seconds": 1.0, "request_timeout_seconds": 1.0}
    world.use_sink(SinkKind.SERVER, _through(gateway, chroma_database, retry=IMPATIENT, **timeouts))
    populate(world)
    messages = world.pump()["words"]
    started = time.monotonic()
    result = world.cycle("words").run(messages)
    assert time.monotonic() - started < 15
    assert result.cause is FailureCause.SINK_UNAVAILABLE, result.failures
    assert "ReadTimeout" in result.failures[0].reason
    lock = world.dynamo.get_compaction_lock("words")
    assert lock is not None
    assert lock.owner is None


def test_a_server_collection_in_another_distance_space_fails_the_cycle(
    world: CompactionWorld, server: ChromaServer
) -> None:
    with server.connect() as client:
        client.client.create_collection(
            "words", configuration={"hnsw": {"space": "l2"}}, embedding_function=None
        )
    populate(world)
    messages = world.pump()["words"]
    result = world.cycle("words").run(messages)
    assert result.cause is FailureCause.SINK_UNAVAILABLE
    assert result.failed_message_ids == {m for m, _ in messages}
    (reason,) = {f.reason for f in result.failures}
    assert "server collection words" in reason
    assert "space l2" in reason
    assert "requires cosine" in reason
    assert run_states(world, IMAGE_ID) == {("PENDING", "PENDING")}
