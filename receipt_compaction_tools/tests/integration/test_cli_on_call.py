"""What an operator at 3 a.m. needs from ``receipt-compaction`` (issue 23): bounded waits on
endpoints that never answer or refuse, the local walkthrough's environment, reasons kept
through the dead-letter tools, freshness in ``status``, and a Ctrl-C that hands the
messages in flight back. Damaged snapshots: ``test_cli_snapshot_verification_and_repair``.

The stack is built by ``demo --endpoint-url … --print-env``: the export lines it prints
are the environment of every other command here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from on_call_stack import (
    BUDGET_SECONDS,
    DIMENSION,
    SLACK_SECONDS,
    cli,
    exports,
    retained,
    shell,
)

from receipt_compaction_tools.aws.local_aws import LocalAwsServer
from receipt_compaction_tools.cli.main import build_parser, main
from receipt_compaction_tools.local.chroma_server import LocalChromaServer
from receipt_compaction_tools.testing.cli import CliResult, visible
from receipt_dynamo import DynamoClient
from receipt_dynamo.testing import (
    RefusedEndpoint,
    SilentEndpoint,
    TricklingEndpoint,
    make_compaction_run,
)
from receipt_dynamo_stream import UnparseableRecordError, park_records

pytestmark = [pytest.mark.integration, pytest.mark.slow(seconds=40)]

__all__ = ["exports", "shell"]  # the fixtures, from the stack's module


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
    from receipt_compaction_tools.local import queue_consumer

    monkeypatch.setattr(queue_consumer, "load_handler", lambda _name: _Interrupted())
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
        "from receipt_compaction_tools.cli.local_compactor import local_consumer\n"
        "from receipt_compaction_tools.local.pump_stats import PumpStats\n"
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
