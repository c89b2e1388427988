"""The two Lambda functions, their roles, log groups and event source mappings."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

from chromadb_compaction import settings
from chromadb_compaction.chroma_sink import ChromaSinkConfig
from chromadb_compaction.iam import compactor_policy, lambda_trust_policy, stream_processor_policy
from chromadb_compaction.network import CompactorNetwork
from chromadb_compaction.queues import CompactionQueues


def _role(name: str, parent: pulumi.Resource) -> aws.iam.Role:
    role = aws.iam.Role(
        name,
        assume_role_policy=json.dumps(lambda_trust_policy()),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    # Both handlers trace with Powertools Tracer (active tracing): segments go to X-Ray.
    aws.iam.RolePolicyAttachment(
        f"{name}-xray",
        role=role.name,
        policy_arn=settings.XRAY_WRITE_POLICY_ARN,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return role


def _log_group(name: str, function_name: str, parent: pulumi.Resource) -> aws.cloudwatch.LogGroup:
    return aws.cloudwatch.LogGroup(
        name,
        name=f"/aws/lambda/{function_name}",
        retention_in_days=settings.LOG_RETENTION_DAYS,
        opts=pulumi.ResourceOptions(parent=parent),
    )


class StreamProcessor(pulumi.ComponentResource):
    """Zip Lambda on the table's stream; publishes messages to the queues."""

    def __init__(
        self,
        resource_name: str,
        *,
        zip_path: str,
        stream_arn: pulumi.Input[str],
        queues: CompactionQueues,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("receipt:compaction:StreamProcessor", resource_name, None, opts)
        self.role = _role(f"{resource_name}-role", self)
        log_group = _log_group(f"{resource_name}-logs", resource_name, self)
        self._policy(resource_name, stream_arn, log_group, queues)
        self.function = self._function(resource_name, zip_path, queues, log_group)
        self.mapping = self._stream_mapping(resource_name, stream_arn, queues)
        self.register_outputs({"arn": self.function.arn})

    def _policy(
        self,
        resource_name: str,
        stream_arn: pulumi.Input[str],
        log_group: aws.cloudwatch.LogGroup,
        queues: CompactionQueues,
    ) -> None:
        queue_arns = [
            q.arn
            for q in (*queues.collections.values(), queues.stream_parking, queues.stream_failures)
        ]
        aws.iam.RolePolicy(
            f"{resource_name}-policy",
            role=self.role.id,
            policy=pulumi.Output.all(stream_arn, log_group.arn, *queue_arns).apply(
                lambda args: json.dumps(
                    stream_processor_policy(
                        stream_arn=args[0], log_group_arn=args[1], queue_arns=list(args[2:])
                    )
                )
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _function(
        self,
        resource_name: str,
        zip_path: str,
        queues: CompactionQueues,
        log_group: aws.cloudwatch.LogGroup,
    ) -> aws.lambda_.Function:
        return aws.lambda_.Function(
            resource_name,
            name=resource_name,
            role=self.role.arn,
            runtime=settings.PYTHON_RUNTIME,
            architectures=[settings.ARCHITECTURE],
            handler="stream_processor.lambda_handler",
            tracing_config=aws.lambda_.FunctionTracingConfigArgs(mode="Active"),
            code=pulumi.FileArchive(zip_path),
            memory_size=settings.STREAM_MEMORY_MB,
            timeout=settings.STREAM_TIMEOUT_SECONDS,
            environment=aws.lambda_.FunctionEnvironmentArgs(
                variables={
                    "LINES_QUEUE_URL": queues.collections["lines"].url,
                    "WORDS_QUEUE_URL": queues.collections["words"].url,
                    "STREAM_DLQ_URL": queues.stream_parking.url,
                    "LOG_LEVEL": "INFO",
                    "POWERTOOLS_SERVICE_NAME": settings.SERVICE_STREAM,
                    "POWERTOOLS_METRICS_NAMESPACE": settings.METRICS_NAMESPACE,
                }
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_group]),
        )

    def _stream_mapping(
        self, resource_name: str, stream_arn: pulumi.Input[str], queues: CompactionQueues
    ) -> aws.lambda_.EventSourceMapping:
        return aws.lambda_.EventSourceMapping(
            f"{resource_name}-stream",
            function_name=self.function.arn,
            event_source_arn=stream_arn,
            starting_position="TRIM_HORIZON",
            batch_size=settings.STREAM_BATCH_SIZE,
            maximum_batching_window_in_seconds=settings.STREAM_BATCHING_WINDOW_SECONDS,
            function_response_types=["ReportBatchItemFailures"],
            bisect_batch_on_function_error=True,
            maximum_retry_attempts=settings.STREAM_MAX_RETRIES,
            maximum_record_age_in_seconds=settings.STREAM_MAX_RECORD_AGE_SECONDS,
            destination_config=aws.lambda_.EventSourceMappingDestinationConfigArgs(
                on_failure=aws.lambda_.EventSourceMappingDestinationConfigOnFailureArgs(
                    destination_arn=queues.stream_failures.arn
                )
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )


def _compactor_environment(
    table_name: pulumi.Input[str],
    bucket: aws.s3.Bucket,
    sink: ChromaSinkConfig,
    token_secret_arn: pulumi.Input[str] | None,
    *,
    efs: bool,
) -> dict[str, pulumi.Input[str]]:
    """The compactor's settings (contract §8); ``CHROMA_ROOT`` only with an EFS tier."""
    environment: dict[str, pulumi.Input[str]] = {
        "DYNAMODB_TABLE_NAME": table_name,
        "CHROMADB_BUCKET": bucket.bucket,
        "CHROMA_ROOT": settings.EFS_MOUNT_PATH,
        "CHROMA_WORK_DIR": settings.CHROMA_WORK_DIR,
        "EMBEDDING_DIMENSION": str(settings.EMBEDDING_DIMENSION),
        "LOCK_DURATION_SECONDS": str(settings.LOCK_DURATION_SECONDS),
        "HEARTBEAT_INTERVAL_SECONDS": str(settings.HEARTBEAT_INTERVAL_SECONDS),
        "HEARTBEAT_MAX_FAILURES": str(settings.HEARTBEAT_MAX_FAILURES),
        "LOCK_WAIT_SECONDS": str(settings.LOCK_WAIT_SECONDS),
        "LEASE_SAFETY_MARGIN_SECONDS": str(settings.LEASE_SAFETY_MARGIN_SECONDS),
        "RETRY_VISIBILITY_SECONDS": settings.RETRY_VISIBILITY_SECONDS,
        "LOG_LEVEL": "INFO",
        "POWERTOOLS_SERVICE_NAME": settings.SERVICE_COMPACTOR,
        "POWERTOOLS_METRICS_NAMESPACE": settings.METRICS_NAMESPACE,
        **sink.environment(token_secret_arn),
    }
    if not efs:
        del environment["CHROMA_ROOT"]  # no EFS tier to mount
    return environment


class Compactor(pulumi.ComponentResource):
    """Container Lambda, one mapping per queue. Writing snapshots, it runs in the VPC with
    EFS at /mnt/chroma; writing only to a Chroma server it needs neither EFS nor (for a
    public server) a VPC, and may read the server's token secret (contract §12)."""

    def __init__(
        self,
        resource_name: str,
        *,
        image_uri: pulumi.Input[str],
        table_name: pulumi.Input[str],
        table_arn: pulumi.Input[str],
        bucket: aws.s3.Bucket,
        queues: CompactionQueues,
        network: CompactorNetwork | None,
        sink: ChromaSinkConfig | None = None,
        token_secret_arn: pulumi.Input[str] | None = None,
        reserved_concurrency: int = settings.COMPACTOR_RESERVED_CONCURRENCY,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``reserved_concurrency`` -1 reserves nothing (the mappings' maximum concurrency
        still caps the compactor)."""
        super().__init__("receipt:compaction:Compactor", resource_name, None, opts)
        sink = sink or ChromaSinkConfig()
        self.role = _role(f"{resource_name}-role", self)
        log_group = _log_group(f"{resource_name}-logs", resource_name, self)
        self._policy(
            resource_name,
            table_arn=table_arn,
            bucket=bucket,
            queues=queues,
            network=network,
            log_group=log_group,
            token_secret_arn=token_secret_arn,
        )
        efs = network is not None and network.access_point is not None
        environment = _compactor_environment(table_name, bucket, sink, token_secret_arn, efs=efs)
        self.function = self._function(
            resource_name,
            image_uri=image_uri,
            sink=sink,
            network=network,
            environment=environment,
            log_group=log_group,
            reserved_concurrency=reserved_concurrency,
        )
        self.mappings = self._queue_mappings(resource_name, queues)
        self.register_outputs({"arn": self.function.arn})

    def _policy(
        self,
        resource_name: str,
        *,
        table_arn: pulumi.Input[str],
        bucket: aws.s3.Bucket,
        queues: CompactionQueues,
        network: CompactorNetwork | None,
        log_group: aws.cloudwatch.LogGroup,
        token_secret_arn: pulumi.Input[str] | None,
    ) -> None:
        queue_arns: Sequence[pulumi.Output[str]] = [q.arn for q in queues.collections.values()]
        file_system = network.file_system if network is not None else None
        access_point = network.access_point if network is not None else None
        aws.iam.RolePolicy(
            f"{resource_name}-policy",
            role=self.role.id,
            policy=pulumi.Output.all(
                table_arn,
                bucket.arn,
                file_system.arn if file_system else "",
                access_point.arn if access_point else "",
                log_group.arn,
                token_secret_arn or "",
                *queue_arns,
            ).apply(
                lambda args: json.dumps(
                    compactor_policy(
                        table_arn=args[0],
                        bucket_arn=args[1],
                        file_system_arn=args[2] or None,
                        access_point_arn=args[3] or None,
                        log_group_arn=args[4],
                        chroma_token_secret_arn=args[5] or None,
                        in_vpc=network is not None,
                        queue_arns=list(args[6:]),
                    )
                )
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _function(
        self,
        resource_name: str,
        *,
        image_uri: pulumi.Input[str],
        sink: ChromaSinkConfig,
        network: CompactorNetwork | None,
        environment: dict[str, pulumi.Input[str]],
        log_group: aws.cloudwatch.LogGroup,
        reserved_concurrency: int,
    ) -> aws.lambda_.Function:
        access_point = network.access_point if network is not None else None
        return aws.lambda_.Function(
            resource_name,
            name=resource_name,
            role=self.role.arn,
            package_type="Image",
            tracing_config=aws.lambda_.FunctionTracingConfigArgs(mode="Active"),
            image_uri=image_uri,
            architectures=[settings.COMPACTOR_ARCHITECTURE],
            memory_size=settings.COMPACTOR_MEMORY_MB
            if sink.snapshot
            else settings.COMPACTOR_SERVER_MEMORY_MB,
            ephemeral_storage=aws.lambda_.FunctionEphemeralStorageArgs(
                size=settings.COMPACTOR_EPHEMERAL_STORAGE_MB
                if sink.snapshot
                else settings.COMPACTOR_SERVER_EPHEMERAL_STORAGE_MB
            ),
            timeout=settings.COMPACTOR_TIMEOUT_SECONDS,
            reserved_concurrent_executions=reserved_concurrency,
            vpc_config=aws.lambda_.FunctionVpcConfigArgs(
                subnet_ids=[s.id for s in network.subnets],
                security_group_ids=[network.compactor_security_group.id],
            )
            if network is not None
            else None,
            file_system_config=aws.lambda_.FunctionFileSystemConfigArgs(
                arn=access_point.arn, local_mount_path=settings.EFS_MOUNT_PATH
            )
            if access_point is not None
            else None,
            environment=aws.lambda_.FunctionEnvironmentArgs(variables=environment),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[log_group, *(network.mount_targets if network is not None else [])],
            ),
        )

    def _queue_mappings(
        self, resource_name: str, queues: CompactionQueues
    ) -> list[aws.lambda_.EventSourceMapping]:
        return [
            aws.lambda_.EventSourceMapping(
                f"{resource_name}-{collection}",
                function_name=self.function.arn,
                event_source_arn=queue.arn,
                batch_size=settings.COMPACTOR_BATCH_SIZE,
                maximum_batching_window_in_seconds=settings.COMPACTOR_BATCHING_WINDOW_SECONDS,
                function_response_types=["ReportBatchItemFailures"],
                scaling_config=aws.lambda_.EventSourceMappingScalingConfigArgs(
                    maximum_concurrency=settings.COMPACTOR_MAX_CONCURRENCY
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
            for collection, queue in queues.collections.items()
        ]
