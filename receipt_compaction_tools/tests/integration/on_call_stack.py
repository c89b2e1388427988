"""The stack the on-call tests run against: built by ``demo --endpoint-url … --print-env``
on the session's moto server, whose export lines are the environment of every other
command (``shell``), and the helpers those tests share to read what it holds."""

from __future__ import annotations

import io
import json
import shlex
from pathlib import Path
from typing import Any

import boto3
import pytest

from receipt_compaction_tools.aws.local_aws import LocalAwsServer
from receipt_compaction_tools.cli.main import main
from receipt_compaction_tools.testing.cli import CHECKSUMS, CliResult, run_cli
from receipt_dynamo import DynamoClient

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
