"""Running ``receipt-compaction`` in tests: a command's exit status, stdout and stderr, and
a demo stack (the demo's resources left on a moto server, as an operator would have)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from receipt_compaction_tools.aws.local_aws import LocalAwsServer
from receipt_compaction_tools.cli.main import main
from receipt_dynamo.testing import LOCAL_CREDENTIALS

# What the demo's ``resources`` are called in the environment (contract §8 and the CLI).
RESOURCE_VARIABLES = {
    "table": "DYNAMODB_TABLE_NAME",
    "bucket": "CHROMADB_BUCKET",
    "lines_queue_url": "LINES_QUEUE_URL",
    "words_queue_url": "WORDS_QUEUE_URL",
    "lines_dlq_url": "LINES_DLQ_URL",
    "words_dlq_url": "WORDS_DLQ_URL",
    "stream_dlq_url": "STREAM_DLQ_URL",
}
# moto 5.2 stores a wrong CRC32 for some uploads; integrity is checked by our own sha256s.
CHECKSUMS = {
    "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
    "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
}


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def error_line(self) -> str:
        """The command's own error line (other stderr lines are logs), never a traceback."""
        lines = [line for line in self.err.splitlines() if line.startswith("error: ")]
        assert len(lines) == 1, self.err
        assert "Traceback" not in self.err
        return lines[0]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> CliResult:
    """One command in this process; nothing but its result may reach stdout."""
    capsys.readouterr()
    out = io.StringIO()
    code = main(list(argv), stdout=out)
    captured = capsys.readouterr()
    assert captured.out == "", "only the result may reach stdout"
    return CliResult(code, out.getvalue(), captured.err)


@dataclass(frozen=True)
class DemoStack:
    summary: dict[str, Any]
    home: Path

    @property
    def resources(self) -> dict[str, str]:
        resources: dict[str, str] = self.summary["resources"]
        return resources


def build_demo_stack(moto_server: LocalAwsServer, home: Path, dimension: int) -> DemoStack:
    """``demo --receipts 3 --endpoint-url <moto> --json``: its resources stay on the server."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**LOCAL_CREDENTIALS, **CHECKSUMS}.items():
            patch.setenv(name, value)
        patch.setenv("RECEIPT_COMPACTION_STATE_DIR", str(home / "state"))
        out = io.StringIO()
        argv = ["demo", "--receipts", "3", "--dim", str(dimension)]
        code = main([*argv, "--endpoint-url", moto_server.endpoint_url, "--json"], stdout=out)
        assert code == 0
        return DemoStack(json.loads(out.getvalue()), home)  # nothing but JSON on stdout


def export_stack(
    stack: DemoStack, moto_server: LocalAwsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What an operator's shell would export for the stack (flags override it)."""
    for name, value in {**moto_server.environment(), **CHECKSUMS}.items():
        monkeypatch.setenv(name, value)
    for key, variable in RESOURCE_VARIABLES.items():
        monkeypatch.setenv(variable, stack.resources[key])
    monkeypatch.setenv("EMBEDDING_DIMENSION", str(stack.summary["dimension"]))
    monkeypatch.setenv("RECEIPT_COMPACTION_STATE_DIR", str(stack.home / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(stack.home / "cache"))
    monkeypatch.setenv("CHROMA_WORK_DIR", str(stack.home / "work"))
    monkeypatch.setenv("LOCK_WAIT_SECONDS", "10")


def depth(url: str) -> int:
    """Visible plus in-flight messages of a queue."""
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def visible(url: str) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def empty(url: str) -> None:
    """Delete every message (moto allows one PurgeQueue a minute per queue)."""
    sqs = boto3.client("sqs")
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )
