"""What an operator at 3 a.m. needs from ``receipt-compaction`` (issue 23): bounded waits on
endpoints that never answer or refuse, the local walkthrough's environment, reasons kept
through the dead-letter tools, freshness in ``status``, corrupt snapshot objects flagged
and repaired under the lease, and a Ctrl-C that hands the messages in flight back.

The stack is built by ``demo --endpoint-url … --print-env``: the export lines it prints
are the environment of every other command here."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import zstandard

from receipt_compaction_tools.aws.local_aws import LocalAwsServer
from receipt_compaction_tools.cli.main import build_parser, main
from receipt_compaction_tools.local.chroma_server import LocalChromaServer
from receipt_compaction_tools.testing.cli import CHECKSUMS, CliResult, run_cli, visible
from receipt_compaction_tools.testing.endpoints import (
    RefusedEndpoint,
    SilentEndpoint,
    TricklingEndpoint,
)
from receipt_compaction_tools.testing.factories import make_compaction_run
from receipt_dynamo import DynamoClient
from receipt_dynamo_stream import UnparseableRecordError, park_records

pytestmark = pytest.mark.integration

DIMENSION = 8
BUDGET_SECONDS = 15  # the default --timeout: the whole command, a silent endpoint included
SLACK_SECONDS = 2.0  # a loaded test machine


@pytest.fixture(scope="module")
def exports(
    moto_server: LocalAwsServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """The demo's resources as the export lines ``demo --print-env`` prints."""
    moto_server.reset()
    home = tmp_path_factory.mktemp("on-call")
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            patch.delenv(name, raising=False)  # an endpoint on this machine needs none
        patch.delenv("AWS_DEFAULT_REGION", raising=False)
        for name, value in CHECKSUMS.items():
            patch.setenv(name, value)
        patch.setenv("RECEIPT_COMPACTION_STATE_DIR", str(home / "state"))
        argv = ["demo", "--receipts", "3", "--dim", str(DIMENSION), "--region", "eu-west-1"]
        out = io.StringIO()
        code = main([*argv, "--endpoint-url", moto_server.endpoint_url, "--print-env"], stdout=out)
        assert code == 0
        lines = out.getvalue().splitlines()
    assert lines
    assert all(line.startswith("export ") for line in lines)  # nothing else
    variables = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in lines)
    return {**variables, "HOME_DIR": str(home)}


@pytest.fixture
def shell(exports: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """An operator's shell after ``eval "$(receipt-compaction demo … --print-env)"``."""
    home = Path(exports["HOME_DIR"])
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {**exports, **CHECKSUMS}.items():
        if name != "HOME_DIR":
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("RECEIPT_COMPACTION_STATE_DIR", str(home / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("CHROMA_WORK_DIR", str(home / "work"))
    monkeypatch.setenv("LOCK_WAIT_SECONDS", "10")
    return exports


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> CliResult:
    return run_cli(capsys, *argv)


def s3() -> Any:
    return boto3.client("s3")


def manifest(bucket: str, collection: str, version: str) -> dict[str, Any]:
    key = f"{collection}/snapshot/versions/{version}/manifest.json"
    return dict(json.loads(s3().get_object(Bucket=bucket, Key=key)["Body"].read()))


def object_key(collection: str, sha: str) -> str:
    return f"{collection}/snapshot/objects/{sha}.zst"


def retained(shell: dict[str, str], collection: str) -> list[str]:
    pointer = DynamoClient(shell["DYNAMODB_TABLE_NAME"]).get_snapshot_pointer(collection)
    assert pointer is not None
    return list(pointer.history)


# --- the local walkthrough ---------------------------------------------------------------


def test_print_env_gives_the_environment_of_every_other_command(
    shell: dict[str, str], capsys: pytest.CaptureFixture[str], moto_server: LocalAwsServer
) -> None:
    assert shell["AWS_ENDPOINT_URL"] == moto_server.endpoint_url
    assert shell["AWS_DEFAULT_REGION"] == "eu-west-1"  # --region
    assert shell["EMBEDDING_DIMENSION"] == str(DIMENSION)
    assert shell["DYNAMODB_TABLE_NAME"].endswith("-receipts")
    report = cli(capsys, "status", "--json")
    assert report.code == 0, report.err
    assert report.json["table"] == shell["DYNAMODB_TABLE_NAME"]
    assert all(entry["pointer"] for entry in report.json["collections"].values())


def test_print_env_without_an_endpoint_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    result = cli(capsys, "demo", "--print-env")
    assert result.code == 2
    assert "--print-env needs --endpoint-url" in result.error_line


def test_a_local_endpoint_needs_no_region_or_credentials(
    shell: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    version = retained(shell, "words")[0]
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    # us-east-1 and throw-away keys (S3 answers in any region; the table is in eu-west-1).
    verified = cli(capsys, "snapshot", "verify", version)
    assert verified.code == 0, verified.err


def test_a_missing_region_is_a_configuration_error_with_a_hint(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    result = cli(
        capsys, "status", "--table", "t", "--endpoint-url", "https://dynamodb.example.invalid"
    )
    assert result.code == 2
    assert "no AWS region: pass --region or set AWS_DEFAULT_REGION" in result.error_line


def test_a_malformed_region_is_a_configuration_error_naming_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = cli(capsys, "status", "--table", "t", "--region", "us east")
    assert result.code == 2
    assert result.error_line == "error: 'us east' is not an AWS region (e.g. us-east-1)"


# --- bounded waits -------------------------------------------------------------------------


def _timed(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[CliResult, float]:
    started = time.monotonic()
    result = cli(capsys, *argv)
    return result, time.monotonic() - started


def test_a_silent_aws_endpoint_is_one_line_within_the_budget(
    silent_endpoint: SilentEndpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole command, started as an operator starts it (a new process)."""
    started = time.monotonic()
    finished = subprocess.run(
        [sys.executable, "-m", "receipt_compaction_tools.cli.main", "status", "--table", "t"],
        env={**os.environ, "AWS_ENDPOINT_URL": silent_endpoint.url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert finished.returncode == 1
    assert finished.stdout == ""
    assert finished.stderr.startswith(f"error: {silent_endpoint.url} accepted the connection")
    assert len(finished.stderr.splitlines()) == 1
    assert elapsed <= BUDGET_SECONDS


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "--table", "t"],
        ["snapshot", "list", "--table", "t", "--bucket", "b"],
        ["dlq", "export", "stream", "-o", "out.jsonl"],
        ["backfill", "--dry-run", "--table", "t"],
    ],
)
def test_a_refused_aws_endpoint_is_one_line_at_once(
    refused_endpoint: RefusedEndpoint,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    argv: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STREAM_DLQ_URL", f"{refused_endpoint.url}/1/parking")
    result, elapsed = _timed(capsys, *argv, "--endpoint-url", refused_endpoint.url)
    assert result.code == 1
    assert f"cannot reach {refused_endpoint.url}: [Errno 111] Connection refused" in (
        result.error_line
    )
    assert elapsed <= 5


def test_timeout_sets_the_budget(
    silent_endpoint: SilentEndpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    result, elapsed = _timed(
        capsys, "status", "--table", "t", "--endpoint-url", silent_endpoint.url, "--timeout", "4"
    )
    assert result.code == 1
    assert "did not answer within" in result.error_line
    assert "--timeout 4 s" in result.error_line
    assert elapsed <= 4 + SLACK_SECONDS


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "--table", "t", "--bucket", "b"],
        ["snapshot", "list", "--table", "t", "--bucket", "b"],
        ["snapshot", "inspect", "20200101_000000_000000_deadbeef", "--bucket", "b"],
    ],
)
def test_a_trickling_endpoint_cannot_outlast_a_reporting_command(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """Each read gets a byte in time, so only the bound on the whole command ends it."""
    with TricklingEndpoint() as endpoint:
        url = endpoint.url
        result, elapsed = _timed(capsys, *argv, "--endpoint-url", url, "--timeout", "3")
    assert result.code == 1
    assert result.out == ""
    command = " ".join(argv[:2]) if argv[0] == "snapshot" else "status"
    assert result.error_line == (
        f"error: {url} did not answer {command} within --timeout 3 s "
        "(bounded as a whole: calls were answered too slowly)"
    )
    assert elapsed <= 3 + SLACK_SECONDS


@pytest.mark.parametrize("kind", ["silent", "refused"])
def test_an_unanswering_chroma_server_is_one_line_within_the_budget(
    capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    endpoint = SilentEndpoint() if kind == "silent" else RefusedEndpoint()
    with endpoint:
        port = str(endpoint.port)
        result, elapsed = _timed(
            capsys, "query", "--id", "x", "--host", "127.0.0.1", "--port", port
        )
    assert result.code == 1
    assert f"Chroma server http://127.0.0.1:{port}/api/v2 unreachable" in result.error_line
    assert ("ReadTimeout" if kind == "silent" else "ConnectError") in result.error_line
    assert elapsed <= BUDGET_SECONDS


def test_sink_verify_on_a_silent_server_is_one_line_within_the_budget(
    shell: dict[str, str], silent_endpoint: SilentEndpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    result, elapsed = _timed(
        capsys,
        "sink",
        "verify",
        "--collection",
        "lines",
        "--chroma-host",
        "127.0.0.1",
        "--chroma-port",
        str(silent_endpoint.port),
    )
    assert result.code == 1
    assert f"127.0.0.1:{silent_endpoint.port}" in result.error_line
    assert elapsed <= BUDGET_SECONDS + SLACK_SECONDS  # plus reading the published version


def test_sink_verify_before_seed_says_to_seed(
    shell: dict[str, str],
    chroma_server: LocalChromaServer,
    chroma_database: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = cli(capsys, "sink", "verify", "--collection", "words")
    assert result.code == 1
    assert "has no words collection: load it first with sink seed --collection words" in (
        result.error_line
    )


def test_query_on_a_server_without_the_collection_names_it_and_the_server(
    shell: dict[str, str],
    chroma_server: LocalChromaServer,
    chroma_database: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = cli(
        capsys,
        "query",
        "--id",
        "x",
        "--host",
        chroma_server.host,
        "--port",
        str(chroma_server.port),
    )
    assert result.code == 1
    assert result.error_line.startswith("error: the Chroma server ")
    assert f"{chroma_server.port}" in result.error_line
    assert result.error_line.endswith(
        "has no words collection: load it with sink seed --collection words"
    )


# --- dead letters keep their reasons ----------------------------------------------------------


def _parked_record(sk: str) -> dict[str, Any]:
    return {
        "eventID": uuid.uuid4().hex,
        "eventName": "MODIFY",
        "dynamodb": {
            "Keys": {
                "PK": {"S": "IMAGE#3f1c7a52-6a3e-4c1e-9d0b-2b7a1f0c9e11"},
                "SK": {"S": sk},
            },
            "SequenceNumber": "7",
        },
    }


def test_redrive_prints_why_each_record_stays_parked(
    shell: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    parking = shell["STREAM_DLQ_URL"]
    record = _parked_record("RECEIPT#00000#METADATA")  # receipt id 0: still unparseable
    assert park_records([(record, UnparseableRecordError("id 00000"))], parking) == []
    result = cli(capsys, "dlq", "redrive", "stream", "--json")
    assert result.code == 0, result.err
    (entry,) = result.json["still_parked"]
    assert entry["keys"] == "IMAGE#3f1c7a52-6a3e-4c1e-9d0b-2b7a1f0c9e11 / RECEIPT#00000#METADATA"
    assert "receipt" in entry["reason"].lower()
    assert visible(parking) == 1  # it stays parked
    text = cli(capsys, "dlq", "redrive", "stream")
    assert f"still parked  {entry['keys']}: {entry['reason']}" in text.out
    exported = Path(shell["HOME_DIR"]) / "parked.jsonl"
    dumped = cli(capsys, "dlq", "export", "stream", "-o", str(exported), "--delete", "--force")
    assert dumped.code == 0, dumped.err
    assert f"parked   {entry['keys']}: UnparseableRecordError: id 00000" in dumped.out
    assert json.loads(exported.read_text())["error"] == "id 00000"


def test_dlq_export_names_each_message_and_redrive_says_what_it_moved(
    shell: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The runbook: the id of each dead letter, to find the compactor's log line for it."""
    sqs = boto3.client("sqs")
    dlq, queue = shell["WORDS_DLQ_URL"], shell["WORDS_QUEUE_URL"]
    body = json.dumps({"schema_version": 99})  # what the compactor logs as invalid
    message_id = sqs.send_message(QueueUrl=dlq, MessageBody=body)["MessageId"]
    for _ in range(2):  # two failed deliveries before it is exported
        (received,) = sqs.receive_message(QueueUrl=dlq, VisibilityTimeout=0)["Messages"]
        assert received["MessageId"] == message_id
    exported = Path(shell["HOME_DIR"]) / "words-dlq.jsonl"
    dumped = cli(capsys, "dlq", "export", "words", "-o", str(exported), "--force", "--json")
    assert dumped.code == 0, dumped.err
    (entry,) = dumped.json["messages"]
    assert entry["line"] == 1
    assert entry["message_id"] == message_id
    assert entry["receive_count"] == 3  # the export's own receive counts too
    assert exported.read_text() == body.replace(" ", "") + "\n"  # replay's input, unchanged
    text = cli(capsys, "dlq", "export", "words", "-o", str(exported), "--force")
    assert f"line 1  message_id {message_id}  received 4 times  sent " in text.out

    moved = cli(capsys, "dlq", "redrive", "words")
    assert moved.code == 0, moved.err
    (line,) = [line for line in moved.out.splitlines() if line.startswith("moved")]
    assert line.startswith(f"moved  {message_id} -> {queue} as ")
    new_id = line.rsplit(" ", 1)[-1]
    assert visible(dlq) == 0
    on_queue = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    (redriven,) = [m for m in on_queue if m["MessageId"] == new_id]
    assert redriven["Body"] == body
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=redriven["ReceiptHandle"])


# --- status: freshness ----------------------------------------------------------------------


def test_status_shows_runs_not_yet_applied_and_stream_lag(
    shell: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    dynamo = DynamoClient(shell["DYNAMODB_TABLE_NAME"])
    created = (datetime.now(UTC) - timedelta(minutes=5)).isoformat(timespec="microseconds")
    run = make_compaction_run(
        "3f1c7a52-6a3e-4c1e-9d0b-2b7a1f0c9e11", 1, "stuck-run", created_at=created
    )
    dynamo.add_compaction_run(run)
    try:
        report = cli(capsys, "status", "--json")
        assert report.code == 0, report.err
        for collection in ("lines", "words"):
            runs = report.json["collections"][collection]["runs"]
            assert (runs["pending"], runs["processing"]) == (1, 0)
            assert runs["oldest"]["run_id"] == "stuck-run"
            assert 300 <= runs["oldest"]["age_seconds"] < 600
        stream = report.json["stream"]
        assert stream["iterator_age_seconds"] is None
        assert stream["unavailable"] == "no event source mapping reads the table's stream"
        words = report.json["collections"]["words"]
        assert words["pointer"]["age_seconds"] > 0
        assert words["queue"]["depth"] == 0
        text = cli(capsys, "status", "--collection", "words").out
        assert "runs          1 pending, 0 processing; oldest stuck-run (PENDING, 5.0m" in text
        assert "iterator age unavailable (no event source mapping" in text
    finally:
        dynamo.delete_compaction_run(run.image_id, run.receipt_id, run.run_id)


# --- messages, not attempts; Ctrl-C ------------------------------------------------------------


def test_messages_failed_counts_messages_not_deliveries(
    shell: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    boto3.client("sqs").send_message(
        QueueUrl=shell["WORDS_QUEUE_URL"], MessageBody='{"schema_version": 99}'
    )
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = cli(capsys, "replay", str(empty), "--local-compactor", "--json")
    assert result.code == 1
    assert result.json["messages_failed"] == {"lines": 0, "words": 1}
    assert result.json["failed_deliveries"]["words"] == 3  # maxReceiveCount, then the DLQ
    assert "messages the compactor did not apply: lines 0, words 1" in result.error_line
    assert "{" not in result.error_line  # no Python reprs
    boto3.client("sqs").purge_queue(QueueUrl=shell["WORDS_DLQ_URL"])


class _Interrupted:
    """A compactor handler interrupted by Ctrl-C in the middle of its invocation."""

    def lambda_handler(self, event: Any, context: Any) -> Any:
        raise KeyboardInterrupt


def test_ctrl_c_hands_the_messages_in_flight_back(
    shell: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from receipt_compaction_tools.local import pump

    monkeypatch.setattr(pump, "load_handler", lambda _name: _Interrupted())
    sqs, queue = boto3.client("sqs"), shell["LINES_QUEUE_URL"]
    for number in range(4):
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"n": number}))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = cli(capsys, "replay", str(empty), "--local-compactor")
    assert result.code == 130
    assert "4 message(s) in flight made visible again" in result.err
    assert "Traceback" not in result.err
    assert visible(queue) == 4  # back at once, not after the visibility timeout
    sqs.purge_queue(QueueUrl=queue)


def test_the_compactors_helper_process_leaves_ctrl_c_to_the_command(tmp_path: Path) -> None:
    """A Ctrl-C at the terminal reaches the whole process group: the delta reader started
    with the local compactor ignores it (no traceback of its own); the command handles it."""
    script = (
        "from receipt_compaction_tools.cli.pipeline import local_consumer\n"
        "from receipt_compaction_tools.local.pump import PumpStats\n"
        "from receipt_compaction_tools.local.resources import PipelineResources\n"
        "from receipt_chroma.compaction.deltas.reader import shared_delta_reader\n"
        "resources = PipelineResources(*['x'] * 8)\n"
        "local_consumer(resources, PumpStats())\n"
        "pid = shared_delta_reader().pid\n"
        "status = open(f'/proc/{pid}/status').read()\n"
        "print(next(l for l in status.splitlines() if l.startswith('SigIgn')).split()[1])\n"
    )
    env = {
        **os.environ,
        "DYNAMODB_TABLE_NAME": "t",
        "CHROMADB_BUCKET": "b",
        "LINES_QUEUE_URL": "http://127.0.0.1:9/q",
        "WORDS_QUEUE_URL": "http://127.0.0.1:9/q",
        "CHROMA_ROOT": str(tmp_path / "efs"),
        "CHROMA_WORK_DIR": str(tmp_path / "work"),
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    ignored = int(done.stdout.strip().splitlines()[-1], 16)
    assert ignored & (1 << 1)  # SIGINT (2) is bit 1 of the mask


# --- snapshots: dimension, exit codes, corruption and repair --------------------------------


def test_verify_and_rollback_agree_on_a_missing_version(
    shell: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    absent = "20200101_000000_000000_deadbeef"
    verify = cli(capsys, "snapshot", "verify", absent, "--collection", "lines")
    rollback = cli(capsys, "snapshot", "rollback", absent, "--collection", "lines", "--yes")
    assert (verify.code, rollback.code) == (2, 2)
    assert f"lines version {absent} does not exist" in verify.error_line
    assert rollback.error_line == verify.error_line


def _damage(bucket: str, collection: str, sha: str, *, remove: bool = False) -> bytes:
    """Corrupt (or remove) an object; returns its original stored bytes."""
    key = object_key(collection, sha)
    original: bytes = s3().get_object(Bucket=bucket, Key=key)["Body"].read()
    if remove:
        s3().delete_object(Bucket=bucket, Key=key)
    else:
        s3().put_object(Bucket=bucket, Key=key, Body=zstandard.compress(b"not the file"))
    return original


def _shared_object(bucket: str, collection: str, versions: list[str]) -> tuple[str, str]:
    """(sha256, path) of a file every version in ``versions`` shares."""
    files = [
        {f["sha256"]: f["path"] for f in manifest(bucket, collection, v)["files"]} for v in versions
    ]
    shared = sorted(set.intersection(*(set(f) for f in files)))
    assert shared, "the demo's versions share their HNSW files"
    return shared[0], files[0][shared[0]]


def _lease_token(shell: dict[str, str], collection: str) -> int:
    lock = DynamoClient(shell["DYNAMODB_TABLE_NAME"]).get_compaction_lock(collection)
    assert lock is not None
    return int(lock.fencing_token)


def test_a_corrupt_object_is_flagged_and_repaired_under_the_lease(
    shell: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    bucket = shell["CHROMADB_BUCKET"]
    versions = retained(shell, "words")
    assert len(versions) == 2
    sha, path = _shared_object(bucket, "words", versions)
    assert cli(capsys, "status", "--deep", "--collection", "words").code == 0  # remembered
    good_copy = tmp_path / "good"
    assert cli(capsys, "snapshot", "download", versions[0], "--to", str(good_copy)).code == 0
    _damage(bucket, "words", sha)

    # A cheap status sees the rewritten object; --deep reads it, per version, and goes on.
    cheap = cli(capsys, "status", "--collection", "words", "--json")
    assert cheap.code == 1
    assert "2 retained version(s) do not verify" in cheap.error_line
    flagged = cheap.json["collections"]["words"]["snapshot"]["versions"]
    assert [v["ok"] for v in flagged] == [False, False]
    assert all(
        f"object {sha} for {path} changed since it last verified" in v["problems"][0]
        for v in flagged
    )
    deep = cli(capsys, "status", "--deep", "--json")
    assert deep.code == 1
    words = deep.json["collections"]["words"]
    assert [(v["version"], v["role"], v["ok"]) for v in words["snapshot"]["versions"]] == [
        (versions[0], "current", False),
        (versions[1], "retained", False),
    ]
    assert "does not match its manifest" in words["snapshot"]["versions"][0]["problems"][0]
    assert words["unindexed"]["source"].startswith("not measured")
    assert deep.json["collections"]["lines"]["snapshot"]["ok"] is True  # the rest reported
    assert cli(capsys, "snapshot", "verify", versions[1]).code == 1  # the rollback target too
    refused = cli(capsys, "snapshot", "rollback", versions[1], "--collection", "words", "--yes")
    assert refused.code == 1  # as verify says, and nothing changed
    assert f"words version {versions[1]} does not verify: object {sha}" in refused.error_line
    assert retained(shell, "words") == versions

    # Nothing local holds the file (status --deep reads a private copy it removes, and
    # whatever else the cache held is gone): repair names every version and why, and
    # writes nothing.
    shutil.rmtree(Path(shell["HOME_DIR"]) / "cache", ignore_errors=True)
    unfixed = cli(capsys, "snapshot", "repair", "--collection", "words", "--json")
    assert unfixed.code == 1
    assert [v["state"] for v in unfixed.json["versions"]] == ["damaged", "damaged"]
    assert unfixed.json["versions"][0]["objects"][0]["detail"] == (
        "no verified local copy holds its sha256"
    )

    # Another holder has the lease: repair waits for it, then gives up, writing nothing.
    dynamo = DynamoClient(shell["DYNAMODB_TABLE_NAME"])
    other = dynamo.acquire_lease("words", owner=str(uuid.uuid4()), duration_seconds=60)
    monkeypatch.setenv("LOCK_WAIT_SECONDS", "1")
    try:
        blocked = cli(
            capsys, "snapshot", "repair", "--collection", "words", "--from", str(good_copy)
        )
    finally:
        dynamo.release_lease("words", owner=other.owner or "")
    assert blocked.code == 1
    assert "lease" in blocked.error_line
    waiting = [line for line in blocked.err.splitlines() if line.startswith("waiting")]
    assert waiting == [
        f"waiting up to 1 s for the words lease: lease on words is held by {other.owner} "
        f"until {other.expires} (token {other.fencing_token})"
    ]
    assert cli(capsys, "snapshot", "verify", versions[0]).code == 1

    before = _lease_token(shell, "words")
    repaired = cli(
        capsys, "snapshot", "repair", "--collection", "words", "--from", str(good_copy), "--json"
    )
    assert repaired.code == 0, repaired.err
    assert [v["state"] for v in repaired.json["versions"]] == ["repaired", "repaired"]
    assert repaired.json["objects_repaired"] == 1
    assert _lease_token(shell, "words") == before + 1  # written under a lease of its own
    for version in versions:
        assert cli(capsys, "snapshot", "verify", version).code == 0
    assert cli(capsys, "status", "--collection", "words").code == 0


def test_a_missing_object_is_restored_from_the_efs_tier(
    shell: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version directory on EFS is never opened in place: its files keep their bytes."""
    bucket = shell["CHROMADB_BUCKET"]
    monkeypatch.setenv("CHROMA_ROOT", str(Path(shell["HOME_DIR"]) / "efs"))
    flushed = cli(capsys, "snapshot", "flush", "--collection", "lines", "--yes", "--json")
    assert flushed.json["published"] is True  # written to S3 and to the EFS tier
    current = flushed.json["version"]
    sqlite = next(
        f for f in manifest(bucket, "lines", current)["files"] if f["path"] == "chroma.sqlite3"
    )
    _damage(bucket, "lines", sqlite["sha256"], remove=True)
    flagged = cli(capsys, "status", "--collection", "lines", "--json")
    assert flagged.code == 1  # a missing object needs no memory: it is listed as absent
    problem = flagged.json["collections"]["lines"]["snapshot"]["versions"][0]["problems"][0]
    assert problem == f"object {sqlite['sha256']} for chroma.sqlite3 is missing"
    shown = cli(capsys, "status", "--collection", "lines")
    assert "present" not in shown.out
    assert "(manifest hashes, objects listed; snapshot repair restores their objects)" in (
        shown.out
    )
    repaired = cli(capsys, "snapshot", "repair", "--collection", "lines", "--json")
    assert repaired.code == 0, repaired.out
    (item,) = repaired.json["versions"][0]["objects"]
    assert item["problem"] == "missing"
    assert item["detail"].startswith(f"restored from {os.environ['CHROMA_ROOT']}/snapshots/lines/")
    assert cli(capsys, "snapshot", "verify", current, "--collection", "lines").code == 0


def test_a_manifest_that_does_not_verify_is_reported_never_rewritten(
    shell: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = shell["CHROMADB_BUCKET"]
    older = retained(shell, "lines")[-1]
    key = f"lines/snapshot/versions/{older}/manifest.json"
    original = s3().get_object(Bucket=bucket, Key=key)["Body"].read()
    s3().put_object(Bucket=bucket, Key=key, Body=original + b" ")
    try:
        reported = cli(capsys, "status", "--collection", "lines")
        assert reported.code == 1
        assert "snapshot repair restores" not in reported.err + reported.out
        remedy = (
            f"{older}: a manifest or version that does not verify cannot be repaired — "
            "snapshot rollback to a version that verifies, or restore its keys from a backup"
        )
        assert remedy in reported.error_line
        assert f"DO NOT VERIFY (manifest hashes, objects listed; {remedy})" in reported.out
        refused = cli(capsys, "snapshot", "rollback", older, "--collection", "lines", "--yes")
        assert refused.code == 1
        assert refused.error_line.endswith(
            "nothing changed (it cannot be repaired: roll back to another version that verifies)"
        )
        result = cli(capsys, "snapshot", "repair", "--collection", "lines")
        assert result.code == 1
        assert f"{older}  retained  damaged" in result.out
        assert "(cannot be repaired: only objects are restored)" in result.out
        stored = s3().get_object(Bucket=bucket, Key=key)["Body"].read()
        assert stored == original + b" "  # untouched
    finally:
        s3().put_object(Bucket=bucket, Key=key, Body=original)
    digest = hashlib.sha256(original).hexdigest()
    assert (
        s3()
        .get_object(Bucket=bucket, Key=f"lines/snapshot/versions/{older}/.manifest_hash")["Body"]
        .read()
        == f"sha256:{digest}".encode()
    )


# --- help -------------------------------------------------------------------------------------


def test_help_has_no_markup(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    commands = [["--help"]]
    for name, sub in parser._subparsers._group_actions[0].choices.items():  # type: ignore[union-attr]
        commands.append([name, "--help"])
        nested = [a for a in sub._actions if a.__class__.__name__ == "_SubParsersAction"]
        commands += [[name, action, "--help"] for action in (nested[0].choices if nested else {})]
    for argv in commands:
        assert main(argv) == 0
        shown = capsys.readouterr().out
        assert "usage:" in shown
        assert "`" not in shown, (argv, shown)
