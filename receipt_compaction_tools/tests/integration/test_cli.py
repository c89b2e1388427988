"""``receipt-compaction`` against a moto server holding one demo dataset (built once for the
module through ``demo --endpoint-url --json``): each command with good input, and the
failures operators hit — exit status, the one line on stderr, and nothing written."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import boto3
import pytest
import zstandard

from receipt_compaction_tools.aws.local_aws import LocalAwsServer
from receipt_compaction_tools.aws.streams import StreamReader
from receipt_compaction_tools.cli.main import main
from receipt_compaction_tools.testing.cli import (
    CliResult,
    DemoStack,
    build_demo_stack,
    depth,
    empty,
    export_stack,
    run_cli,
)
from receipt_dynamo import DynamoClient, ValidationStatus
from receipt_dynamo.testing import make_label
from receipt_dynamo_stream import UnparseableRecordError, park_records

pytestmark = pytest.mark.integration

DIMENSION = 8


@pytest.fixture(scope="module")
def stack(moto_server: LocalAwsServer, tmp_path_factory: pytest.TempPathFactory) -> DemoStack:
    """The demo's resources on the session's moto server, built by the CLI itself."""
    moto_server.reset()
    return build_demo_stack(moto_server, tmp_path_factory.mktemp("cli"), DIMENSION)


@pytest.fixture(autouse=True)
def cli_environment(
    stack: DemoStack, moto_server: LocalAwsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    export_stack(stack, moto_server, monkeypatch)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> CliResult:
    return run_cli(capsys, *argv)


def pointer(stack: Any, collection: str) -> str:
    found = DynamoClient(stack.resources["table"]).get_snapshot_pointer(collection)
    assert found is not None
    return found.version


def word_id(stack: Any) -> str:
    image_id = stack.summary["edits"]["merchant_corrected"]
    return f"IMAGE#{image_id}#RECEIPT#00001#LINE#00001#WORD#00001"


# --- help, version, settings ---------------------------------------------------------------


def test_version_and_help_work_whatever_the_environment_holds(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMBEDDING_DIMENSION", "abc")
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("receipt-compaction ")
    for argv in (["--help"], ["snapshot", "verify", "--help"], ["status", "--help"]):
        assert main(argv) == 0
        assert "usage:" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["snapshot", "list"], {"EMBEDDING_DIMENSION": "abc"}, None),  # not needed: ignored
        (["snapshot", "verify", "v1"], {"EMBEDDING_DIMENSION": "abc"}, "v1 does not exist"),
        (
            ["snapshot", "flush", "--collection", "words", "--yes"],
            {"EMBEDDING_DIMENSION": "abc"},
            "EMBEDDING_DIMENSION must be a positive integer, got 'abc'",
        ),
        (
            ["status", "--endpoint-url", "not-a-url"],
            {},
            "--endpoint-url must be a URL such as http://127.0.0.1:5000, got 'not-a-url'",
        ),
        (["status", "--timeout", "1"], {}, "argument --timeout: must be at least 2 seconds"),
        (["demo", "--dim", "0"], {}, "argument --dim: must be a positive integer, got '0'"),
        (["demo", "--receipts", "2"], {}, "must be at least 3"),
        (["status"], {"DYNAMODB_TABLE_NAME": ""}, "--table (or DYNAMODB_TABLE_NAME) is required"),
        (
            ["backfill"],
            {"LINES_QUEUE_URL": ""},
            "--lines-queue-url (or LINES_QUEUE_URL) is required",
        ),
        (["run"], {"WORDS_QUEUE_URL": ""}, "--words-queue-url (or WORDS_QUEUE_URL) is required"),
        (["query"], {}, "one of the arguments --id --vector is required"),
        (["snapshot", "rollback", "v1"], {}, "the following arguments are required: --collection"),
        (["dlq", "export", "nowhere", "-o", "x.jsonl"], {}, "expected lines, words, stream"),
    ],
)
def test_usage_and_configuration_errors_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    env: dict[str, str],
    message: str | None,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = cli(capsys, *argv)
    if message is None:
        assert result.code == 0, result.err
        return
    assert result.code == 2
    assert message in result.error_line
    assert result.out == ""


def test_flags_override_the_environment(
    stack: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DYNAMODB_TABLE_NAME", "no-such-table")
    table = stack.resources["table"]
    assert cli(capsys, "status", "--table", table, "--json").json["table"] == table
    monkeypatch.setenv("DYNAMODB_TABLE_NAME", table)
    result = cli(capsys, "status", "--table", "no-such-table")
    assert result.code == 2
    assert result.error_line == (
        "error: table no-such-table not found (ResourceNotFoundException in GetItem)"
    )


def test_an_unreachable_endpoint_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    result = cli(capsys, "snapshot", "inspect", "v1", "--endpoint-url", "http://127.0.0.1:9")
    assert result.code == 1
    assert "cannot reach http://127.0.0.1:9: [Errno 111] Connection refused" in result.error_line


def test_missing_resources_are_named(stack: DemoStack, capsys: pytest.CaptureFixture[str]) -> None:
    bucket = cli(capsys, "snapshot", "inspect", "v1", "--bucket", "no-such-bucket")
    assert bucket.code == 2
    assert "bucket no-such-bucket not found (NoSuchBucket in " in bucket.error_line
    gone = stack.resources["words_dlq_url"].rsplit("/", 1)[0] + "/no-such-queue"
    queue = cli(capsys, "status", "--words-dlq-url", gone)
    assert queue.code == 2
    assert f"queue {gone} not found" in queue.error_line


# --- status and query ----------------------------------------------------------------------


def test_status_reports_pointer_lease_queues_and_index(
    stack: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    report = cli(capsys, "status", "--json", "--deep").json
    words = report["collections"]["words"]
    assert words["pointer"]["version"] == pointer(stack, "words")
    assert [h["version"] for h in words["pointer"]["history"]] == stack.summary["versions"]["words"]
    assert words["lease"]["held"] is False
    assert words["lease"]["fencing_token"] >= 1
    assert words["queue"]["visible"] == 0
    assert words["dlq"]["queue"].endswith("-words-dlq")
    # Below HNSW_SYNC_THRESHOLD nothing is in the HNSW files yet (deletions count too).
    assert words["unindexed"]["records"] >= stack.summary["records"]["words"]
    assert report["stream_parking"]["visible"] == 0
    text = cli(capsys, "status", "--collection", "lines")
    assert text.code == 0
    assert f"pointer       {pointer(stack, 'lines')}" in text.out
    assert "words:" not in text.out


def test_status_watch_prints_one_json_document_per_report(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = cli(capsys, "status", "--watch", "0.05", "--count", "2", "--json")
    assert result.code == 0
    reports = [json.loads(line) for line in result.out.splitlines()]
    assert len(reports) == 2
    assert all(r["collections"]["words"]["pointer"] for r in reports)


def test_query_by_id_with_a_filter_and_by_vector(
    stack: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    found = cli(capsys, "query", "--id", word_id(stack), "-n", "3", "--json").json
    assert found["version"] == pointer(stack, "words")
    assert found["neighbours"][0]["id"] == word_id(stack)
    assert len(found["neighbours"]) == 3
    validated = cli(
        capsys, "query", "--id", word_id(stack), "--where", "label_status=validated", "--json"
    ).json
    assert validated["neighbours"]
    assert all(n["metadata"]["label_status"] == "validated" for n in validated["neighbours"])
    vector = tmp_path / "v.json"
    vector.write_text(json.dumps([0.1] * DIMENSION))
    assert (
        len(cli(capsys, "query", "--vector", str(vector), "-n", "2", "--json").json["neighbours"])
        == 2
    )
    vector.write_text("[1, 2]")
    wrong = cli(capsys, "query", "--vector", str(vector))
    assert wrong.code == 2
    assert (
        f"the vector has 2 dimensions, words version {pointer(stack, 'words')} holds "
        f"{DIMENSION}-dimensional embeddings"
    ) in wrong.error_line
    missing = cli(capsys, "query", "--id", "IMAGE#nope")
    assert missing.code == 2
    assert "is not in the words collection" in missing.error_line


# --- snapshots ------------------------------------------------------------------------------


def test_snapshot_list_verify_inspect(
    stack: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    both = cli(capsys, "snapshot", "list", "--json").json
    assert {c: both[c]["pointer"] for c in both} == {
        c: pointer(stack, c) for c in ("lines", "words")
    }
    text = cli(capsys, "snapshot", "list").out
    assert "collection    lines" in text
    assert "collection    words" in text
    listed = cli(capsys, "snapshot", "list", "--collection", "words", "--json").json
    assert listed["pointer"] == pointer(stack, "words")
    version = listed["history"][-1]
    # The dimension comes from the manifest, whatever the compactor's setting says.
    monkeypatch.delenv("EMBEDDING_DIMENSION")
    verified = cli(capsys, "snapshot", "verify", version, "--json").json
    assert verified["ok"] is True
    assert verified["dimension"] == DIMENSION
    assert verified["collection"] == "words"
    wrong = cli(capsys, "snapshot", "verify", version, "--dim", "16")
    assert wrong.code == 1
    assert f"dimension {DIMENSION}, expected 16" in wrong.error_line
    inspected = cli(capsys, "snapshot", "inspect", version, "--collection", "lines", "--json")
    assert inspected.code == 2  # a words version is not a lines version
    assert cli(capsys, "snapshot", "inspect", version, "--json").json["records"] > 0


def _crafted_version(bucket: str, body: dict[str, Any]) -> str:
    """A new hash-valid words version with the manifest ``body`` (files re-sorted)."""
    from receipt_chroma.snapshots import new_version_id

    version = new_version_id()
    files = sorted(body["files"], key=lambda e: e["path"])
    data = json.dumps({**body, "version_id": version, "files": files}, indent=1).encode()
    s3, prefix = boto3.client("s3"), f"words/snapshot/versions/{version}/"
    s3.put_object(Bucket=bucket, Key=f"{prefix}manifest.json", Body=data)
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}".encode()
    s3.put_object(Bucket=bucket, Key=f"{prefix}.manifest_hash", Body=digest)
    return version


def test_snapshot_verify_failures_exit_1_with_one_line_naming_the_version(
    stack: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = stack.resources["bucket"]
    base = pointer(stack, "words")
    key = f"words/snapshot/versions/{base}/manifest.json"
    body = json.loads(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    garbage = b"this is not a database" * 100
    garbage_sha = hashlib.sha256(garbage).hexdigest()
    boto3.client("s3").put_object(
        Bucket=bucket,
        Key=f"words/snapshot/objects/{garbage_sha}.zst",
        Body=zstandard.compress(garbage),
    )

    def changed(name: str, **fields: Any) -> dict[str, Any]:
        files = [dict(f, **fields) if f["path"] == name else f for f in body["files"]]
        return {**body, "files": files}

    first = body["files"][0]["path"]
    cases = {
        "is missing": changed(first, sha256="1" * 64),
        "not a safe relative path": changed(first, path="a\x00b"),
        "does not open as a Chroma snapshot": changed(
            "chroma.sqlite3", sha256=garbage_sha, size=len(garbage)
        ),
    }
    for problem, crafted in cases.items():
        version = _crafted_version(bucket, crafted)
        result = cli(capsys, "snapshot", "verify", version)
        assert result.code == 1, (problem, result.err)
        line = result.error_line
        assert f"words version {version}" in line, line
        assert problem in line, line
        assert "unexpected" not in line, line
        assert tempfile.gettempdir() not in line, line
        assert "verify-" not in line, line
    absent = cli(capsys, "snapshot", "verify", "20261201_000000_000000_00000000")
    assert absent.code == 2  # no such version: nothing to verify
    assert "does not exist" in absent.error_line


def test_snapshot_download_refuses_existing_files_and_non_empty_directories(
    stack: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    version = pointer(stack, "words")
    existing = tmp_path / "file"
    existing.write_text("keep")
    crowded = tmp_path / "crowded"
    crowded.mkdir()
    (crowded / "mine").write_text("keep")
    for target in (existing, crowded):
        result = cli(capsys, "snapshot", "download", version, "--to", str(target))
        assert result.code == 2
        assert "refusing to download" in result.error_line
    assert existing.read_text() == "keep"
    assert [p.name for p in crowded.iterdir()] == ["mine"]
    fresh = tmp_path / "fresh"
    assert cli(capsys, "snapshot", "download", version, "--to", str(fresh)).code == 0
    assert (fresh / "chroma.sqlite3").is_file()


def test_rollback_asks_unless_yes_and_flush_publishes(
    stack: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    current = pointer(stack, "lines")
    older = stack.summary["versions"]["lines"][-1]
    refused = cli(capsys, "snapshot", "rollback", older, "--collection", "lines")
    assert refused.code == 2
    assert "pass --yes" in refused.error_line
    assert pointer(stack, "lines") == current
    moved = cli(capsys, "snapshot", "rollback", older, "--collection", "lines", "--yes", "--json")
    assert moved.json["version"] == older
    assert pointer(stack, "lines") == older
    # Back to where it was (still in the history), then a planned flush on top.
    assert cli(capsys, "snapshot", "rollback", current, "--collection", "lines", "--yes").code == 0
    flushed = cli(capsys, "snapshot", "flush", "--collection", "lines", "--yes", "--json").json
    assert flushed["base_version"] == current
    assert flushed["published"] is True
    assert pointer(stack, "lines") == flushed["version"]
    assert flushed["unindexed_before"] > 0


# --- backfill, run, replay, dead letters -----------------------------------------------------


def test_backfill_dry_run_sends_nothing_and_a_real_one_publishes_no_new_version(
    stack: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    words_queue = stack.resources["words_queue_url"]
    dry = cli(capsys, "backfill", "--dry-run", "--collection", "words", "--json").json
    assert dry["would_publish"]["words/RECEIPT_WORD_LABEL"] > 0
    assert not any(key.startswith("lines/") for key in dry["would_publish"])
    assert depth(words_queue) == 0
    before = pointer(stack, "words")
    sent = cli(capsys, "backfill", "--collection", "words", "--json").json
    assert sent["published"] == dry["would_publish"]
    assert depth(words_queue) == sum(sent["published"].values())
    assert depth(stack.resources["lines_queue_url"]) == 0
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    drained = cli(capsys, "replay", str(empty), "--json")  # no mapping: local compactor
    assert drained.code == 0, drained.err
    assert drained.json["mode"] == "local-compactor"
    assert drained.json["cycles"]
    # Nothing changed in the table: the re-merge writes nothing, so nothing is published.
    assert not any(c["published"] for c in drained.json["cycles"])
    assert pointer(stack, "words") == before
    assert depth(words_queue) == 0


def test_run_publishes_the_stream_once_and_keeps_its_position(
    stack: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    first = cli(capsys, "run", "--publish-only", "--json")
    assert first.code == 0, first.err
    report = first.json
    assert report["mode"] == "publish-only"
    # Every record the demo pumped, plus the lease and pointer writes of its last cycles.
    assert report["stream_records"] >= stack.summary["stream_records"]
    assert sum(report["messages_published"].values()) > 0
    assert Path(report["state_file"]).is_file()
    second = cli(capsys, "run", "--publish-only", "--json").json
    assert second["stream_records"] == 0
    assert second["positions"] == report["positions"]
    for key in ("lines_queue_url", "words_queue_url"):
        empty(stack.resources[key])


def test_replay_rejects_bad_files_and_parks_unparseable_records(
    stack: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    queues = [stack.resources[k] for k in ("lines_queue_url", "words_queue_url")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"dynamodb": {}}\nnot json\n')
    result = cli(capsys, "replay", str(bad), "--publish-only")
    assert result.code == 2
    assert "bad.jsonl:2: not a JSON record" in result.error_line
    assert [depth(q) for q in queues] == [0, 0]

    unparseable = tmp_path / "unparseable.jsonl"
    record = {
        "eventID": "1",
        "eventName": "MODIFY",
        "dynamodb": {
            "Keys": {
                "PK": {"S": "IMAGE#3f1c7a52-6a3e-4c1e-9d0b-2b7a1f0c9e11"},
                "SK": {"S": "RECEIPT#00000#METADATA"},
            },
            "SequenceNumber": "7",
        },
    }
    unparseable.write_text(json.dumps(record) + "\n")
    parked = cli(capsys, "replay", str(unparseable), "--publish-only", "--json")
    assert parked.code == 1
    assert "1 record(s) could not be parsed (1 parked on" in parked.error_line
    assert parked.json["parked"] == 1
    assert depth(stack.resources["stream_dlq_url"]) == 1
    assert [depth(q) for q in queues] == [0, 0]
    empty(stack.resources["stream_dlq_url"])


def test_a_parked_change_exported_and_replayed_reaches_the_snapshot(
    stack: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The stream processor parked a label change; dlq export unwraps the record, replay
    publishes it and the compactor applies it end to end."""
    dynamo = DynamoClient(stack.resources["table"])
    image_id = stack.summary["edits"]["merchant_corrected"]
    label = make_label(image_id, 1, 1, 1, label="TOTAL", validation_status=ValidationStatus.VALID)
    dynamo.put_receipt_word_label(label)
    records = StreamReader(stack.resources["stream_arn"]).read()
    change = next(
        r
        for r in reversed(records)
        if r["dynamodb"]["Keys"]["SK"]["S"].endswith("#LABEL#TOTAL")
        and r["dynamodb"]["Keys"]["PK"]["S"] == f"IMAGE#{image_id}"
    )
    parking = stack.resources["stream_dlq_url"]
    assert park_records([(change, UnparseableRecordError("simulated"))], parking) == []

    exported = tmp_path / "parked.jsonl"
    result = cli(capsys, "dlq", "export", "stream", "-o", str(exported), "--delete", "--json")
    assert result.code == 0, result.err
    assert result.json["exported"] == 1
    line = json.loads(exported.read_text())  # the parked body: the record and its reason
    assert line["record"] == json.loads(json.dumps(change, default=str))
    assert (line["error_type"], line["error"]) == ("UnparseableRecordError", "simulated")
    assert result.json["errors"][0]["error"] == "UnparseableRecordError: simulated"
    assert depth(parking) == 0
    again = cli(capsys, "dlq", "export", "stream", "-o", str(exported))
    assert again.code == 2  # never overwrites without --force
    assert "exists; pass --force" in again.error_line

    replayed = cli(capsys, "replay", str(exported), "--json")
    assert replayed.code == 0, replayed.err
    assert replayed.json["messages_published"] == {"words": 1}
    assert any(c["published"] for c in replayed.json["cycles"])
    neighbours = cli(capsys, "query", "--id", word_id(stack), "-n", "1", "--json").json
    metadata = neighbours["neighbours"][0]["metadata"]
    assert "TOTAL" in metadata["valid_labels_array"]
    assert metadata["label_status"] == "validated"


def test_dlq_redrive_moves_dead_letters_back(
    stack: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    sqs = boto3.client("sqs")
    dlq, queue = stack.resources["lines_dlq_url"], stack.resources["lines_queue_url"]
    body = json.dumps({"schema_version": 1, "note": "a dead letter"})
    sqs.send_message(
        QueueUrl=dlq,
        MessageBody=body,
        MessageAttributes={"collection": {"DataType": "String", "StringValue": "lines"}},
    )
    result = cli(capsys, "dlq", "redrive", "lines", "--json")
    assert result.code == 0, result.err
    assert result.json["sent"] == 1
    assert depth(dlq) == 0
    moved = sqs.receive_message(QueueUrl=queue, MessageAttributeNames=["All"])["Messages"]
    assert moved[0]["Body"] == body
    assert moved[0]["MessageAttributes"]["collection"]["StringValue"] == "lines"
    empty(queue)


def test_query_on_a_chroma_server(
    stack: Any,
    chroma_server: Any,
    chroma_database: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from receipt_chroma.compaction import chroma_server_from_env

    server = chroma_server_from_env()  # the fixture's CHROMA_* variables: a fresh database
    ids = [
        f"IMAGE#{stack.summary['edits']['merchant_corrected']}#RECEIPT#00001#LINE#0000{i}"
        for i in (1, 2, 3)
    ]
    with server.connect(mode="write") as client:
        lines = client.get_or_create_collection("lines")
        client.upsert(
            lines,
            ids,
            [[float(i), 1.0] + [0.0] * (DIMENSION - 2) for i in (1, 2, 3)],
            ["a", "b", "c"],
            [{"text": t, "receipt_id": 1} for t in ("a", "b", "c")],
        )
    result = cli(
        capsys,
        "query",
        "--collection",
        "lines",
        "--id",
        ids[0],
        "-n",
        "2",
        "--host",
        server.host,
        "--port",
        str(server.port),
        "--json",
    )
    assert result.code == 0, result.err
    assert chroma_database in result.json["server"]
    assert [n["id"] for n in result.json["neighbours"]] == ids[:2]
