"""The first deploy, its teardown and what operators read from a stack, under Pulumi's
mocks: the image is built and pushed inside the update before the function that runs it,
for linux/amd64, into a repository that keeps a bounded number of images; the table, the
bucket and the repository refuse deletion together unless ``destroyProtection`` is off, and
then each is deletable with its contents; the outputs name the table, bucket, queues and
event source mappings; both functions trace to X-Ray."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pulumi
import pytest
from test_pulumi_program import RecordingMocks

REPO = Path(__file__).resolve().parents[3]
LAMBDA = "aws:lambda/function:Function"
TABLE = "aws:dynamodb/table:Table"
BUCKET = "aws:s3/bucket:Bucket"
REPOSITORY = "aws:ecr/repository:Repository"


class DeployedStack:
    """What the program registered: resources (inputs) and the Pulumi ``protect`` option
    each was created with (read by a transformation, as Pulumi's engine would see it)."""

    def __init__(self) -> None:
        self.mocks = RecordingMocks()
        self.outputs: dict[str, Any] = {}
        self.protect: dict[tuple[str, str], bool] = {}

    def record_options(
        self, args: pulumi.ResourceTransformationArgs
    ) -> pulumi.ResourceTransformationResult | None:
        self.protect[(args.type_, args.name)] = bool(args.opts.protect)
        return None

    def protected(self) -> set[tuple[str, str]]:
        return {key for key, protect in self.protect.items() if protect}


def _deploy_stack(bundle: Path, **config: Any) -> DeployedStack:
    from chromadb_compaction.pipeline import PipelineConfig, ReceiptCompactionPipeline

    stack = DeployedStack()
    pulumi.runtime.set_mocks(
        stack.mocks, project="receipt-compaction", stack="deploy", preview=False
    )

    @pulumi.runtime.test
    def deploy() -> pulumi.Output[list[Any]]:
        pipeline = ReceiptCompactionPipeline(
            "deploy",
            PipelineConfig(stream_zip_path=str(bundle), **config),
            pulumi.ResourceOptions(transformations=[stack.record_options]),
        )
        keys = list(pipeline.outputs)
        return pulumi.Output.all(*pipeline.outputs.values()).apply(
            lambda values: stack.outputs.update(zip(keys, values, strict=True))
        )

    deploy()
    return stack


def _deploy(bundle: Path, **config: Any) -> tuple[RecordingMocks, dict[str, Any]]:
    stack = _deploy_stack(bundle, **config)
    return stack.mocks, stack.outputs


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


def test_a_prebuilt_image_skips_the_build_and_keeps_the_repository(bundle: Path) -> None:
    """The repository holds the previous builds a rollback names (``compactorImageUri`` set
    to one of its digests): configuring a prebuilt image must not delete it."""
    mocks, outputs = _deploy(bundle, compactor_image_uri="registry.example/compactor:v1")
    assert mocks.of_type("docker-build:index:Image") == []
    assert [r.name for r in mocks.of_type(REPOSITORY)] == ["deploy-compactor"]
    assert mocks.named(LAMBDA, "deploy-compactor")["imageUri"] == "registry.example/compactor:v1"
    assert outputs["compactor_image_uri"] == "registry.example/compactor:v1"
    assert outputs["compactor_repository_url"].endswith("/deploy-compactor")


def test_the_repository_keeps_a_bounded_number_of_images(
    stack: tuple[RecordingMocks, dict[str, Any]],
) -> None:
    mocks, _ = stack
    (policy,) = mocks.of_type("aws:ecr/lifecyclePolicy:LifecyclePolicy")
    assert policy.inputs["repository"] == "deploy-compactor"
    rules = json.loads(policy.inputs["policy"])["rules"]
    # Every image counts (tagged or not): the newest few survive, so the running image
    # (the newest build) and at least one rollback target are never expired.
    (rule,) = rules
    assert rule["selection"]["tagStatus"] == "any"
    assert rule["selection"]["countType"] == "imageCountMoreThan"
    assert rule["selection"]["countNumber"] >= 2
    assert rule["action"] == {"type": "expire"}


def test_the_docker_context_leaves_out_everything_the_image_does_not_copy() -> None:
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert "**/.venv" in ignored
    assert ".git" in ignored
    dockerfile = (REPO / "infra/chromadb_compaction/lambdas/Dockerfile").read_text()
    assert "FROM --platform=linux/amd64 " in dockerfile
    copied = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("COPY ")]
    for source in copied:  # nothing the Dockerfile copies is excluded
        assert not any(source.rstrip("/").startswith(p.strip("*/")) for p in ignored if p), source


def test_destroy_protection_guards_the_table_bucket_and_repository_together(
    bundle: Path,
) -> None:
    stack = _deploy_stack(bundle)  # destroyProtection is on unless configured off
    mocks = stack.mocks
    assert stack.protected() == {
        (TABLE, "deploy-table"),
        (BUCKET, "deploy-chroma"),
        (REPOSITORY, "deploy-compactor"),
    }
    assert mocks.named(TABLE, "deploy-table")["deletionProtectionEnabled"] is True
    assert mocks.named(BUCKET, "deploy-chroma")["forceDestroy"] is False
    assert mocks.named(REPOSITORY, "deploy-compactor")["forceDelete"] is False


def test_without_destroy_protection_pulumi_destroy_can_delete_everything(
    bundle: Path,
) -> None:
    """What `pulumi destroy` needs, set by the `pulumi up` that turns protection off: no
    protected resource, a table AWS lets go, a versioned bucket emptied of every object
    version, a repository deleted with its images."""
    stack = _deploy_stack(bundle, destroy_protection=False)
    mocks = stack.mocks
    assert stack.protected() == set()
    assert (TABLE, "deploy-table") in stack.protect  # the transformation saw them all
    assert mocks.named(TABLE, "deploy-table")["deletionProtectionEnabled"] is False
    assert mocks.named(BUCKET, "deploy-chroma")["forceDestroy"] is True
    assert mocks.named(REPOSITORY, "deploy-compactor")["forceDelete"] is True


def test_an_existing_table_is_never_the_stacks_to_delete(bundle: Path) -> None:
    existing = (
        "receipts",
        "arn:aws:dynamodb:us-east-1:123456789012:table/receipts",
        "arn:aws:dynamodb:us-east-1:123456789012:table/receipts/stream/2026-01-01T00:00:00.000",
    )
    stack = _deploy_stack(bundle, destroy_protection=False, existing_table=existing)
    assert stack.mocks.of_type(TABLE) == []
    assert stack.outputs["table_name"] == "receipts"


def test_the_compactor_reservation_can_be_dropped_for_a_new_account(bundle: Path) -> None:
    """A new account's quota of 10 concurrent executions cannot spare a reservation:
    -1 reserves none (the mappings' maximum concurrency still caps the compactor)."""
    from chromadb_compaction.pipeline import PipelineConfig

    mocks, _ = _deploy(bundle, compactor_reserved_concurrency=-1)
    assert mocks.named(LAMBDA, "deploy-compactor")["reservedConcurrentExecutions"] == -1
    with pytest.raises(ValueError, match=r"compactorReservedConcurrency .* got 0"):
        PipelineConfig(compactor_reserved_concurrency=0)


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
