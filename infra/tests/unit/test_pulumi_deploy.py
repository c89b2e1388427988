"""The first deploy and what operators read from a stack, under Pulumi's mocks: the image
is built and pushed inside the update before the function that runs it, for linux/amd64;
the table is protected from deletion unless configured otherwise; the outputs name the
table, bucket, queues and event source mappings; both functions trace to X-Ray."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import pulumi
import pytest
from test_pulumi_program import RecordingMocks

REPO = Path(__file__).resolve().parents[3]
LAMBDA = "aws:lambda/function:Function"


def _deploy(bundle: Path, **config: Any) -> tuple[RecordingMocks, dict[str, Any]]:
    from chromadb_compaction.pipeline import PipelineConfig, ReceiptCompactionPipeline

    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="receipt-compaction", stack="deploy", preview=False)
    outputs: dict[str, Any] = {}

    @pulumi.runtime.test
    def deploy() -> pulumi.Output[list[Any]]:
        pipeline = ReceiptCompactionPipeline(
            "deploy", PipelineConfig(stream_zip_path=str(bundle), **config)
        )
        keys = list(pipeline.outputs)
        return pulumi.Output.all(*pipeline.outputs.values()).apply(
            lambda values: outputs.update(zip(keys, values, strict=True))
        )

    deploy()
    return mocks, outputs


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dist") / "stream_processor.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("stream_processor.py", "")
    return path


@pytest.fixture(scope="module")
def stack(bundle: Path) -> tuple[RecordingMocks, dict[str, Any]]:
    return _deploy(bundle)


def test_the_image_is_built_for_amd64_and_pushed_before_the_function(
    stack: tuple[RecordingMocks, dict[str, Any]],
) -> None:
    mocks, outputs = stack
    (image,) = mocks.of_type("docker-build:index:Image")
    inputs = image.inputs
    assert inputs["push"] is True
    assert inputs["platforms"] == ["linux/amd64"]
    assert inputs["context"]["location"] == ".."
    # Paths are relative to the Pulumi project (infra/), where `pulumi up` runs.
    dockerfile = REPO / "infra" / inputs["dockerfile"]["location"]
    assert dockerfile.resolve() == REPO / "infra/chromadb_compaction/lambdas/Dockerfile"
    registries = inputs["registries"]  # a secret (the password is): the mock wraps it
    (registry,) = registries["value"] if isinstance(registries, dict) else registries
    assert registry["address"].endswith("/deploy-compactor")
    assert registry["username"] == "AWS"
    # The function runs the pushed digest: Pulumi creates it after the push.
    compactor = mocks.named(LAMBDA, "deploy-compactor")
    assert compactor["imageUri"].endswith("/deploy-compactor-image@sha256:1")
    assert compactor["architectures"] == ["x86_64"]
    assert outputs["compactor_image_uri"] == compactor["imageUri"]


def test_a_prebuilt_image_skips_the_build(bundle: Path) -> None:
    mocks, outputs = _deploy(bundle, compactor_image_uri="registry.example/compactor:v1")
    assert mocks.of_type("docker-build:index:Image") == []
    assert mocks.of_type("aws:ecr/repository:Repository") == []
    assert mocks.named(LAMBDA, "deploy-compactor")["imageUri"] == "registry.example/compactor:v1"
    assert outputs["compactor_image_uri"] == "registry.example/compactor:v1"


def test_the_docker_context_leaves_out_everything_the_image_does_not_copy() -> None:
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert "**/.venv" in ignored
    assert ".git" in ignored
    dockerfile = (REPO / "infra/chromadb_compaction/lambdas/Dockerfile").read_text()
    assert "FROM --platform=linux/amd64 " in dockerfile
    copied = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("COPY ")]
    for source in copied:  # nothing the Dockerfile copies is excluded
        assert not any(source.rstrip("/").startswith(p.strip("*/")) for p in ignored if p), source


def test_the_table_is_protected_from_deletion_unless_configured(
    stack: tuple[RecordingMocks, dict[str, Any]], bundle: Path
) -> None:
    mocks, _ = stack
    assert mocks.named("aws:dynamodb/table:Table", "deploy-table")["deletionProtectionEnabled"]
    unprotected, _ = _deploy(bundle, table_deletion_protection=False)
    table = unprotected.named("aws:dynamodb/table:Table", "deploy-table")
    assert table["deletionProtectionEnabled"] is False


def test_outputs_name_what_operators_inspect(stack: tuple[RecordingMocks, dict[str, Any]]) -> None:
    _, outputs = stack
    for key in (
        "table_name",
        "table_arn",
        "table_stream_arn",
        "bucket_name",
        "lines_queue_url",
        "words_queue_url",
        "lines_dlq_url",
        "words_dlq_url",
        "stream_dlq_url",
        "compactor_repository_url",
    ):
        assert outputs[key], key
    assert outputs["stream_mapping_id"] == "deploy-stream-processor-stream-uuid"
    assert outputs["lines_mapping_id"] == "deploy-compactor-lines-uuid"
    assert outputs["words_mapping_id"] == "deploy-compactor-words-uuid"


def test_both_functions_trace_to_xray(stack: tuple[RecordingMocks, dict[str, Any]]) -> None:
    mocks, _ = stack
    for name in ("deploy-stream-processor", "deploy-compactor"):
        assert mocks.named(LAMBDA, name)["tracingConfig"] == {"mode": "Active"}
        attachment = mocks.named(
            "aws:iam/rolePolicyAttachment:RolePolicyAttachment", f"{name}-role-xray"
        )
        assert attachment["policyArn"].endswith(":policy/AWSXRayDaemonWriteAccess")
