"""The whole pipeline as one component, configured from the stack."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from chromadb_compaction import settings
from chromadb_compaction.alarms import PipelineAlarms
from chromadb_compaction.chroma_sink import ChromaSinkConfig
from chromadb_compaction.dashboard import PipelineDashboard
from chromadb_compaction.functions import Compactor, StreamProcessor
from chromadb_compaction.image import CompactorImage
from chromadb_compaction.network import CompactorNetwork
from chromadb_compaction.queues import CompactionQueues
from chromadb_compaction.storage import SnapshotBucket
from chromadb_compaction.table import ReceiptTable


@dataclass(frozen=True)
class PipelineConfig:
    compactor_image_uri: str = ""
    stream_zip_path: str = "../dist/stream_processor.zip"
    existing_table: tuple[str, str, str] | None = None
    alarm_email: str = ""
    vpc_cidr: str = "10.42.0.0/16"
    # The table, the snapshot bucket and the image repository refuse deletion together
    # (deleting the table loses every receipt): on unless the stack says otherwise.
    destroy_protection: bool = True
    # The compactor image's build context (the repository root), relative to the project.
    image_build_context: str = ".."
    # -1 reserves nothing (a new account's quota of 10 leaves nothing to reserve).
    compactor_reserved_concurrency: int = settings.COMPACTOR_RESERVED_CONCURRENCY
    chroma: ChromaSinkConfig = field(default_factory=ChromaSinkConfig)

    def __post_init__(self) -> None:
        if self.compactor_reserved_concurrency == 0 or self.compactor_reserved_concurrency < -1:
            raise ValueError(
                "compactorReservedConcurrency must be a positive number of executions, or -1 "
                f"to reserve none, got {self.compactor_reserved_concurrency} (a reservation "
                "of 0 throttles every invocation: the compactor would never run)"
            )

    @classmethod
    def from_stack(cls) -> PipelineConfig:
        config = pulumi.Config()
        if config.get("tableDeletionProtection") is not None:
            raise ValueError(
                "tableDeletionProtection was replaced by destroyProtection, which guards the "
                "table, the snapshot bucket and the image repository together: run `pulumi "
                "config rm tableDeletionProtection` (and `pulumi config set destroyProtection "
                "false` only to tear the stack down)"
            )
        existing = (
            config.get("existingTableName") or "",
            config.get("existingTableArn") or "",
            config.get("existingTableStreamArn") or "",
        )
        if any(existing) and not all(existing):
            raise ValueError(
                "existingTableName, existingTableArn and existingTableStreamArn go together"
            )
        reserved = config.get_int("compactorReservedConcurrency")
        return cls(
            compactor_image_uri=config.get("compactorImageUri") or "",
            stream_zip_path=config.get("streamZipPath") or "../dist/stream_processor.zip",
            existing_table=existing if all(existing) else None,
            alarm_email=config.get("alarmEmail") or "",
            vpc_cidr=config.get("vpcCidr") or "10.42.0.0/16",
            destroy_protection=config.get_bool("destroyProtection") is not False,
            image_build_context=config.get("imageBuildContext") or "..",
            compactor_reserved_concurrency=settings.COMPACTOR_RESERVED_CONCURRENCY
            if reserved is None
            else reserved,
            chroma=ChromaSinkConfig.from_stack(config),
        )


class ReceiptCompactionPipeline(pulumi.ComponentResource):
    def __init__(
        self, name: str, config: PipelineConfig, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("receipt:compaction:Pipeline", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.table = ReceiptTable(
            f"{name}-table",
            table_name=f"{name}-receipts",
            existing=config.existing_table,
            protect=config.destroy_protection,
            opts=child,
        )
        self.queues = CompactionQueues(f"{name}", opts=child)
        self.storage = SnapshotBucket(
            f"{name}-chroma", protect=config.destroy_protection, opts=child
        )
        self.network = self._network(name, config, child)
        token_secret_arn = self._token_secret(name, config.chroma, child)
        # Unless a prebuilt image is configured, the image is built and pushed within this
        # update, before the function that needs it: the first `pulumi up` on an empty
        # account works. The repository stays either way (it holds rollback targets).
        self.image = CompactorImage(
            f"{name}-compactor",
            context=config.image_build_context,
            build=not config.compactor_image_uri,
            protect=config.destroy_protection,
            opts=child,
        )
        image_uri: pulumi.Input[str] = self.image.ref or config.compactor_image_uri
        self.stream_processor = StreamProcessor(
            f"{name}-stream-processor",
            zip_path=config.stream_zip_path,
            stream_arn=self.table.stream_arn,
            queues=self.queues,
            opts=child,
        )
        self.compactor = self._compactor(name, config, image_uri, token_secret_arn, child)
        self.queues.restrict_access(
            producer_role_arn=self.stream_processor.role.arn,
            consumer_role_arn=self.compactor.role.arn,
        )
        self._observability(name, config, child)
        self.outputs = self._outputs(image_uri, token_secret_arn)
        self.register_outputs(dict(self.outputs))

    def _network(
        self, name: str, config: PipelineConfig, child: pulumi.ResourceOptions
    ) -> CompactorNetwork | None:
        """The VPC is there for EFS (snapshots) or for a private Chroma server; a public
        server alone needs neither. Writing both to EFS and a public server (migration)
        the VPC gets a NAT gateway."""
        sink = config.chroma
        if not sink.in_vpc:
            return None
        return CompactorNetwork(
            f"{name}-net",
            cidr=config.vpc_cidr,
            efs=sink.snapshot,
            private_server_port=sink.port if sink.server and sink.private else None,
            internet_egress=sink.snapshot and sink.server and not sink.private,
            secrets_endpoint=sink.server,
            opts=child,
        )

    def _token_secret(
        self, name: str, sink: ChromaSinkConfig, child: pulumi.ResourceOptions
    ) -> pulumi.Input[str] | None:
        """The server token's one secret (``self.chroma_token``): the stack's own unless an
        existing one is named."""
        self.chroma_token: aws.secretsmanager.Secret | None = None
        token_secret_arn: pulumi.Input[str] | None = sink.token_secret_arn or None
        if sink.server and not sink.token_secret_arn:
            self.chroma_token = aws.secretsmanager.Secret(
                f"{name}-chroma-token",
                description="Chroma server token of the receipt compactor (put its value "
                "with aws secretsmanager put-secret-value)",
                opts=child,
            )
            token_secret_arn = self.chroma_token.arn
        return token_secret_arn

    def _compactor(
        self,
        name: str,
        config: PipelineConfig,
        image_uri: pulumi.Input[str],
        token_secret_arn: pulumi.Input[str] | None,
        child: pulumi.ResourceOptions,
    ) -> Compactor:
        return Compactor(
            f"{name}-compactor",
            image_uri=image_uri,
            table_name=self.table.name,
            table_arn=self.table.arn,
            bucket=self.storage.bucket,
            queues=self.queues,
            network=self.network,
            sink=config.chroma,
            token_secret_arn=token_secret_arn,
            reserved_concurrency=config.compactor_reserved_concurrency,
            opts=child,
        )

    def _observability(
        self, name: str, config: PipelineConfig, child: pulumi.ResourceOptions
    ) -> None:
        """The alarms (``self.alarms``) and the dashboard (``self.dashboard``)."""
        self.alarms = PipelineAlarms(
            f"{name}-alarms",
            queues=self.queues,
            stream_function_name=self.stream_processor.function.name,
            compactor_function_name=self.compactor.function.name,
            email=config.alarm_email or None,
            server_sink=config.chroma.server,
            opts=child,
        )
        self.dashboard = PipelineDashboard(
            f"{name}-compaction",
            queues=self.queues,
            alarms=self.alarms,
            stream_function_name=self.stream_processor.function.name,
            compactor_function_name=self.compactor.function.name,
            sink=config.chroma,
            opts=child,
        )

    def _outputs(
        self, image_uri: pulumi.Input[str], token_secret_arn: pulumi.Input[str] | None
    ) -> dict[str, pulumi.Output[str]]:
        outputs: dict[str, pulumi.Output[str]] = {
            "lines_queue_url": self.queues.collections["lines"].url,
            "words_queue_url": self.queues.collections["words"].url,
            "lines_dlq_url": self.queues.dead_letters["lines"].url,
            "words_dlq_url": self.queues.dead_letters["words"].url,
            "stream_dlq_url": self.queues.stream_parking.url,
            "stream_failures_queue_url": self.queues.stream_failures.url,
            "bucket_name": self.storage.bucket.bucket,
            "stream_processor_arn": self.stream_processor.function.arn,
            "compactor_arn": self.compactor.function.arn,
            "table_name": self.table.name,
            "table_stream_arn": self.table.stream_arn,
            "alarm_topic_arn": self.alarms.topic.arn,
            "dashboard_name": self.dashboard.dashboard.dashboard_name,
            "dashboard_url": self.dashboard.url,
        }
        # What operators inspect (docs/deploy.md, docs/operations.md): the table's ARN, the
        # image the compactor runs and each event source mapping.
        outputs["table_arn"] = self.table.arn
        outputs["compactor_image_uri"] = pulumi.Output.from_input(image_uri)
        outputs["stream_mapping_id"] = self.stream_processor.mapping.uuid
        for collection, mapping in zip(("lines", "words"), self.compactor.mappings, strict=True):
            outputs[f"{collection}_mapping_id"] = mapping.uuid
        if self.network is not None and self.network.file_system is not None:
            outputs["file_system_id"] = self.network.file_system.id
        if token_secret_arn is not None:
            outputs["chroma_token_secret_arn"] = pulumi.Output.from_input(token_secret_arn)
        outputs["compactor_repository_url"] = self.image.repository.repository_url
        return outputs
