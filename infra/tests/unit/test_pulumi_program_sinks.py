"""The Pulumi program's shapes for a Chroma server as the sink (contract §12), under
Pulumi's mocks: a public server (no VPC, no EFS), a private one (VPC, no EFS) and both
sinks while migrating (EFS, and a NAT gateway to reach a public server). The snapshot
shape is ``test_pulumi_program.py``."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pulumi
import pytest
from test_pulumi_program import ACCOUNT, RecordingMocks

from chromadb_compaction.chroma_sink import ChromaSinkConfig
from receipt_chroma.compaction import CompactionConfig
from receipt_dynamo_stream.compactor_defaults import SinkKind

EXISTING_SECRET = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:chroma/prod-AbC123"
EFS_TYPES = ("aws:efs/fileSystem:FileSystem", "aws:efs/accessPoint:AccessPoint")


def deploy(tmp: Path, sink: ChromaSinkConfig) -> RecordingMocks:
    from chromadb_compaction.pipeline import PipelineConfig, ReceiptCompactionPipeline

    bundle = tmp / "stream_processor.zip"
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr("stream_processor.py", "")
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="receipt-compaction", stack="test", preview=False)

    @pulumi.runtime.test
    def program() -> pulumi.Output[list[str]]:
        pipeline = ReceiptCompactionPipeline(
            "test", PipelineConfig(stream_zip_path=str(bundle), chroma=sink)
        )
        mocks.outputs = pipeline.outputs  # type: ignore[attr-defined]
        return pulumi.Output.all(*pipeline.outputs.values())

    program()
    return mocks


@pytest.fixture(scope="module")
def public_server(tmp_path_factory: pytest.TempPathFactory) -> RecordingMocks:
    return deploy(
        tmp_path_factory.mktemp("public"),
        ChromaSinkConfig(kind="server", host="api.trychroma.com", port=443, ssl=True),
    )


@pytest.fixture(scope="module")
def private_server(tmp_path_factory: pytest.TempPathFactory) -> RecordingMocks:
    return deploy(
        tmp_path_factory.mktemp("private"),
        ChromaSinkConfig(
            kind="server",
            host="chroma.internal",
            port=8000,
            database="receipts",
            token_secret_arn=EXISTING_SECRET,
            private=True,
        ),
    )


@pytest.fixture(scope="module")
def migrating(tmp_path_factory: pytest.TempPathFactory) -> RecordingMocks:
    return deploy(
        tmp_path_factory.mktemp("both"),
        ChromaSinkConfig(kind="both", host="api.trychroma.com", port=443, ssl=True),
    )


def _compactor(program: RecordingMocks) -> dict[str, Any]:
    return program.named("aws:lambda/function:Function", "test-compactor")


def _statements(program: RecordingMocks) -> dict[str, dict[str, Any]]:
    policy = program.named("aws:iam/rolePolicy:RolePolicy", "test-compactor-policy")
    return {s["Sid"]: s for s in json.loads(policy["policy"])["Statement"]}


def _secret_arn(program: RecordingMocks) -> str:
    (secret,) = program.of_type("aws:secretsmanager/secret:Secret")
    return f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:{secret.name}"


def test_a_public_server_needs_no_vpc_and_no_efs(public_server: RecordingMocks) -> None:
    compactor = _compactor(public_server)
    assert "vpcConfig" not in compactor
    assert "fileSystemConfig" not in compactor
    assert compactor["memorySize"] < 4096  # no working copy to hold
    for typ in (*EFS_TYPES, "aws:ec2/vpc:Vpc", "aws:ec2/natGateway:NatGateway"):
        assert not public_server.of_type(typ), typ
    statements = _statements(public_server)
    assert "MountChromaFileSystem" not in statements
    assert "VpcNetworkInterfaces" not in statements
    assert "file_system_id" not in public_server.outputs  # type: ignore[attr-defined]


def test_the_compactor_reads_exactly_its_one_token_secret(public_server: RecordingMocks) -> None:
    secret_arn = _secret_arn(public_server)
    statements = _statements(public_server)
    assert statements["ReadChromaToken"]["Action"] == ["secretsmanager:GetSecretValue"]
    assert statements["ReadChromaToken"]["Resource"] == [secret_arn]
    granting = [
        s
        for policy in public_server.of_type("aws:iam/rolePolicy:RolePolicy")
        for s in json.loads(policy.inputs["policy"])["Statement"]
        if any(a.startswith("secretsmanager:") for a in s["Action"])
    ]
    assert granting == [statements["ReadChromaToken"]]  # the stream role has none
    environment = _compactor(public_server)["environment"]["variables"]
    assert environment["CHROMA_AUTH_TOKEN_SECRET"] == secret_arn  # the token is never a variable


def test_the_compactor_environment_selects_the_server_sink(public_server: RecordingMocks) -> None:
    environment = _compactor(public_server)["environment"]["variables"]
    assert "CHROMA_ROOT" not in environment
    config = CompactionConfig.from_env(environment)
    assert config.sink is SinkKind.SERVER
    assert config.server is not None
    assert (config.server.host, config.server.port, config.server.ssl) == (
        "api.trychroma.com",
        443,
        True,
    )
    assert config.server.auth_token_secret == _secret_arn(public_server)


def test_a_server_sink_has_sink_unavailable_alarms(public_server: RecordingMocks) -> None:
    alarms = [r.inputs for r in public_server.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")]
    sink = [a for a in alarms if a["metricName"] == "SinkUnavailable"]
    assert {a["dimensions"]["collection"] for a in sink} == {"lines", "words"}
    assert all(a["dimensions"]["service"] == "receipt-compactor" for a in sink)


def test_a_private_server_runs_the_compactor_in_the_vpc_without_efs(
    private_server: RecordingMocks,
) -> None:
    compactor = _compactor(private_server)
    assert compactor["vpcConfig"]["subnetIds"]
    assert "fileSystemConfig" not in compactor
    for typ in EFS_TYPES:
        assert not private_server.of_type(typ), typ
    assert not private_server.of_type("aws:secretsmanager/secret:Secret")  # an existing one
    statements = _statements(private_server)
    assert statements["ReadChromaToken"]["Resource"] == [EXISTING_SECRET]
    assert "VpcNetworkInterfaces" in statements
    assert "MountChromaFileSystem" not in statements
    endpoints = {
        r.inputs["serviceName"].rsplit(".", 1)[1]
        for r in private_server.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    }
    assert endpoints == {"dynamodb", "s3", "sqs", "secretsmanager"}
    group = private_server.named("aws:ec2/securityGroup:SecurityGroup", "test-net-compactor")
    ports = {(rule["fromPort"], tuple(rule["cidrBlocks"])) for rule in group["egress"]}
    assert (8000, ("10.42.0.0/16",)) in ports
    assert 2049 not in {port for port, _ in ports}
    assert not private_server.of_type("aws:ec2/natGateway:NatGateway")


def test_migrating_writes_efs_and_reaches_a_public_server_through_nat(
    migrating: RecordingMocks,
) -> None:
    compactor = _compactor(migrating)
    assert compactor["fileSystemConfig"]["localMountPath"] == "/mnt/chroma"
    assert compactor["memorySize"] == 4096
    environment = compactor["environment"]["variables"]
    assert (environment["CHROMA_SINK"], environment["CHROMA_ROOT"]) == ("both", "/mnt/chroma")
    statements = _statements(migrating)
    assert {"MountChromaFileSystem", "ReadChromaToken", "VpcNetworkInterfaces"} <= set(statements)
    (nat,) = migrating.of_type("aws:ec2/natGateway:NatGateway")
    routes = migrating.of_type("aws:ec2/route:Route")
    assert [r.inputs["destinationCidrBlock"] for r in routes] == ["0.0.0.0/0"]
    assert nat.inputs["subnetId"] == "test-net-public-id"
    assert "file_system_id" in migrating.outputs  # type: ignore[attr-defined]


def test_a_bad_sink_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="chromaSink must be"):
        ChromaSinkConfig(kind="cloud")
    with pytest.raises(ValueError, match="needs chromaHost"):
        ChromaSinkConfig(kind="server")
