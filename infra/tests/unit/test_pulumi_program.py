"""The Pulumi program under Pulumi's own mocks: assertions on the resources it creates."""

from __future__ import annotations

import json
import zipfile
from typing import Any

import pulumi
import pytest

from receipt_chroma.compaction import CompactionConfig
from receipt_compaction_tools.local.reliability_scales import SCALES
from receipt_compaction_tools.local.reliability_world import STREAM_BATCH
from receipt_dynamo.schema import TTL_ATTRIBUTE, table_definition

ACCOUNT = "123456789012"


class RecordingMocks(pulumi.runtime.Mocks):
    """Echoes inputs as outputs (plus the ids, ARNs and URLs AWS would assign) and records
    every resource the program registers."""

    def __init__(self) -> None:
        self.resources: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources.append(args)
        name = args.inputs.get("name") or args.name
        service = args.typ.split(":")[1].split("/")[0]
        outputs = {
            "arn": f"arn:aws:{service}:us-east-1:{ACCOUNT}:{name}",
            # Pulumi names a resource after its logical name unless a name is given.
            "name": name,
            **args.inputs,
        }
        if args.typ == "aws:sqs/queue:Queue":
            outputs["url"] = f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/{name}"
        if args.typ == "aws:dynamodb/table:Table":
            outputs["streamArn"] = f"{outputs['arn']}/stream/2026-11-28T00:00:00.000"
        if args.typ == "aws:ecr/repository:Repository":
            outputs["repositoryUrl"] = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/{name}"
        if args.typ == "aws:s3/bucket:Bucket":
            outputs["bucket"] = f"{args.name}-bucket"
        if args.typ == "docker-build:index:Image":
            outputs["ref"] = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/{args.name}@sha256:1"
        if args.typ == "aws:lambda/eventSourceMapping:EventSourceMapping":
            outputs["uuid"] = f"{args.name}-uuid"
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        if args.token == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
            return {"userName": "AWS", "password": "token", "id": "us-east-1"}
        if args.token == "aws:index/getRegion:getRegion":
            return {"name": "us-east-1", "region": "us-east-1", "id": "us-east-1"}
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            zones = ["us-east-1a", "us-east-1b", "us-east-1c"]
            return {"names": zones, "zoneIds": zones, "id": "us-east-1"}
        return {}

    def of_type(self, typ: str) -> list[pulumi.runtime.MockResourceArgs]:
        return [r for r in self.resources if r.typ == typ]

    def named(self, typ: str, name: str) -> dict[str, Any]:
        (match,) = [r for r in self.of_type(typ) if r.name == name]
        return dict(match.inputs)


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> RecordingMocks:
    from chromadb_compaction.pipeline import PipelineConfig, ReceiptCompactionPipeline

    bundle = tmp_path_factory.mktemp("dist") / "stream_processor.zip"
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr("stream_processor.py", "")
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="receipt-compaction", stack="test", preview=False)

    @pulumi.runtime.test
    def deploy() -> pulumi.Output[list[str]]:
        pipeline = ReceiptCompactionPipeline(
            "test", PipelineConfig(stream_zip_path=str(bundle), alarm_email="ops@example.com")
        )
        return pulumi.Output.all(*pipeline.outputs.values())

    deploy()
    return mocks


def _policy(inputs: dict[str, Any]) -> dict[str, Any]:
    return json.loads(inputs["policy"])


def _statements(program: RecordingMocks, role: str) -> list[dict[str, Any]]:
    policy = program.named("aws:iam/rolePolicy:RolePolicy", f"{role}-policy")
    return list(_policy(policy)["Statement"])


def test_table_matches_the_receipt_dynamo_schema(program: RecordingMocks) -> None:
    table = program.named("aws:dynamodb/table:Table", "test-table")
    definition = table_definition(table["name"])
    assert (table["hashKey"], table["rangeKey"]) == ("PK", "SK")
    assert sorted((a["name"], a["type"]) for a in table["attributes"]) == sorted(
        (a["AttributeName"], a["AttributeType"]) for a in definition["AttributeDefinitions"]
    )
    indexes = {
        i["name"]: (
            i["projectionType"],
            [(k["attributeName"], k["keyType"]) for k in i["keySchemas"]],
        )
        for i in table["globalSecondaryIndexes"]
    }
    assert indexes == {
        i["IndexName"]: (
            i["Projection"]["ProjectionType"],
            [(k["AttributeName"], k["KeyType"]) for k in i["KeySchema"]],
        )
        for i in definition["GlobalSecondaryIndexes"]
    }
    assert (table["streamEnabled"], table["streamViewType"]) == (True, "NEW_AND_OLD_IMAGES")
    assert table["ttl"] == {"attributeName": TTL_ATTRIBUTE, "enabled": True}
    assert table["pointInTimeRecovery"]["enabled"] is True
    assert table["billingMode"] == "PAY_PER_REQUEST"


def test_no_iam_statement_allows_a_wildcard_action(program: RecordingMocks) -> None:
    for policy in program.of_type("aws:iam/rolePolicy:RolePolicy"):
        for statement in _policy(dict(policy.inputs))["Statement"]:
            actions = statement["Action"]
            assert all("*" not in action for action in actions), statement


def test_stream_role_reads_the_stream_and_sends_only(program: RecordingMocks) -> None:
    statements = {s["Sid"]: s for s in _statements(program, "test-stream-processor")}
    assert set(statements) == {"ReadTableStream", "PublishMessages", "WriteLogs"}
    assert statements["ReadTableStream"]["Resource"] == [
        f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:test-receipts/stream/2026-11-28T00:00:00.000"
    ]
    assert statements["PublishMessages"]["Action"] == ["sqs:SendMessage"]
    assert sorted(r.rsplit(":", 1)[1] for r in statements["PublishMessages"]["Resource"]) == [
        "test-lines",
        "test-stream-mapping-failures",
        "test-stream-unparseable",
        "test-words",
    ]
    actions = [a for s in statements.values() for a in s["Action"]]
    assert not [a for a in actions if a.startswith(("s3:", "elasticfilesystem:"))]


def test_compactor_role_is_scoped_and_cannot_read_the_stream(program: RecordingMocks) -> None:
    statements = {s["Sid"]: s for s in _statements(program, "test-compactor")}
    actions = [a for s in statements.values() for a in s["Action"]]
    assert not {
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:DescribeStream",
    } & set(actions)
    table_arn = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:test-receipts"
    assert statements["TableRows"]["Resource"] == [table_arn, f"{table_arn}/index/*"]
    assert all(
        r.endswith(("/lines/*", "/words/*")) for r in statements["SnapshotObjects"]["Resource"]
    )
    assert statements["ListSnapshotPrefixes"]["Condition"] == {
        "StringLike": {"s3:prefix": ["lines/*", "words/*"]}
    }
    assert sorted(r.rsplit(":", 1)[1] for r in statements["ConsumeQueues"]["Resource"]) == [
        "test-lines",
        "test-words",
    ]
    assert "elasticfilesystem:AccessPointArn" in json.dumps(
        statements["MountChromaFileSystem"]["Condition"]
    )


def test_compactor_may_shorten_visibility_on_exactly_its_two_queues(
    program: RecordingMocks,
) -> None:
    """contract §7 fast retry: ChangeMessageVisibilityBatch is authorised by
    sqs:ChangeMessageVisibility, granted on the lines and words queues and nothing else
    (not the DLQs); the queue URL comes from the event's ARN, so no sqs:GetQueueUrl."""
    statements = _statements(program, "test-compactor")
    granting = [s for s in statements if "sqs:ChangeMessageVisibility" in s["Action"]]
    assert all(s["Effect"] == "Allow" and "Condition" not in s for s in granting)
    assert sorted(r for s in granting for r in s["Resource"]) == [
        f"arn:aws:sqs:us-east-1:{ACCOUNT}:test-lines",
        f"arn:aws:sqs:us-east-1:{ACCOUNT}:test-words",
    ]
    actions = {a for s in statements for a in s["Action"]}
    assert "sqs:GetQueueUrl" not in actions
    for collection in ("lines", "words"):
        policy = _policy(
            program.named("aws:sqs/queuePolicy:QueuePolicy", f"test-{collection}-policy")
        )
        consumer = {s["Sid"]: s for s in policy["Statement"]}["Consumer"]
        assert consumer["Principal"]["AWS"].endswith(":test-compactor-role")
        assert "sqs:ChangeMessageVisibility" in consumer["Action"]
        assert consumer["Resource"] == f"arn:aws:sqs:us-east-1:{ACCOUNT}:test-{collection}"


def test_stream_mapping_reports_failures_and_is_bounded(program: RecordingMocks) -> None:
    mapping = program.named(
        "aws:lambda/eventSourceMapping:EventSourceMapping", "test-stream-processor-stream"
    )
    assert mapping["functionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["bisectBatchOnFunctionError"] is True
    assert 0 < mapping["maximumRetryAttempts"] <= 10
    assert 0 < mapping["maximumRecordAgeInSeconds"] <= 24 * 3600
    assert mapping["destinationConfig"]["onFailure"]["destinationArn"].endswith(
        ":test-stream-mapping-failures"
    )
    assert mapping["startingPosition"] == "TRIM_HORIZON"


def test_compactor_mappings_batch_and_cap_concurrency(program: RecordingMocks) -> None:
    for collection in ("lines", "words"):
        mapping = program.named(
            "aws:lambda/eventSourceMapping:EventSourceMapping", f"test-compactor-{collection}"
        )
        assert mapping["eventSourceArn"].endswith(f":test-{collection}")
        assert mapping["functionResponseTypes"] == ["ReportBatchItemFailures"]
        assert mapping["batchSize"] >= 100
        assert mapping["maximumBatchingWindowInSeconds"] > 0
        assert mapping["scalingConfig"]["maximumConcurrency"] >= 2


def test_queue_redrive_arithmetic(program: RecordingMocks) -> None:
    compactor = program.named("aws:lambda/function:Function", "test-compactor")
    for collection in ("lines", "words"):
        queue = program.named("aws:sqs/queue:Queue", f"test-{collection}")
        redrive = json.loads(queue["redrivePolicy"])
        assert redrive["deadLetterTargetArn"].endswith(f":test-{collection}-dlq")
        assert queue["visibilityTimeoutSeconds"] >= 6 * compactor["timeout"]
        assert (
            redrive["maxReceiveCount"] * queue["visibilityTimeoutSeconds"]
            < queue["messageRetentionSeconds"]
        )
    for queue in program.of_type("aws:sqs/queue:Queue"):
        assert queue.inputs["sqsManagedSseEnabled"] is True
        assert queue.inputs["maxMessageSize"] == 262144


def test_queue_policies_name_one_producer_and_one_consumer(program: RecordingMocks) -> None:
    policy = _policy(program.named("aws:sqs/queuePolicy:QueuePolicy", "test-words-policy"))
    allowed = {s["Sid"]: s for s in policy["Statement"] if s["Effect"] == "Allow"}
    assert allowed["Producer"]["Principal"]["AWS"].endswith(":test-stream-processor-role")
    assert allowed["Producer"]["Action"] == ["sqs:SendMessage"]
    assert allowed["Consumer"]["Principal"]["AWS"].endswith(":test-compactor-role")
    parking = _policy(
        program.named("aws:sqs/queuePolicy:QueuePolicy", "test-stream-unparseable-policy")
    )
    assert [s["Sid"] for s in parking["Statement"]] == ["DenyInsecureTransport", "Producer"]


def test_bucket_is_private_versioned_encrypted_and_tls_only(program: RecordingMocks) -> None:
    block = program.of_type("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")[0].inputs
    assert all(
        block[k] is True
        for k in (
            "blockPublicAcls",
            "blockPublicPolicy",
            "ignorePublicAcls",
            "restrictPublicBuckets",
        )
    )
    versioning = program.of_type("aws:s3/bucketVersioning:BucketVersioning")[0].inputs
    assert versioning["versioningConfiguration"]["status"] == "Enabled"
    encryption = program.of_type(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    )[0].inputs
    assert encryption["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"]
    policy = json.loads(program.of_type("aws:s3/bucketPolicy:BucketPolicy")[0].inputs["policy"])
    (deny,) = policy["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    rules = {
        r["id"]: r
        for r in program.of_type(
            "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
        )[0].inputs["rules"]
    }
    for collection in ("lines", "words"):
        rule = rules[f"expire-{collection}-deltas"]
        assert (rule["filter"]["prefix"], rule["expiration"]["days"]) == (f"{collection}/delta/", 7)
    assert rules["expire-noncurrent-versions"]["noncurrentVersionExpiration"]["noncurrentDays"] > 0


def test_efs_is_encrypted_with_a_non_root_access_point_in_two_zones(
    program: RecordingMocks,
) -> None:
    assert program.of_type("aws:efs/fileSystem:FileSystem")[0].inputs["encrypted"] is True
    point = program.of_type("aws:efs/accessPoint:AccessPoint")[0].inputs
    assert point["posixUser"]["uid"] != 0
    assert point["rootDirectory"]["path"] != "/"
    targets = program.of_type("aws:efs/mountTarget:MountTarget")
    subnets = {r.name: r.inputs for r in program.of_type("aws:ec2/subnet:Subnet")}
    assert len({subnets[name]["availabilityZone"] for name in subnets}) >= 2
    assert len(targets) >= 2
    efs_group = program.named("aws:ec2/securityGroup:SecurityGroup", "test-net-efs")
    (rule,) = efs_group["ingress"]
    assert (rule["fromPort"], rule["toPort"]) == (2049, 2049)
    assert "cidrBlocks" not in rule
    assert len(rule["securityGroups"]) == 1


def test_lambda_environments_follow_the_spec(program: RecordingMocks) -> None:
    stream = program.named("aws:lambda/function:Function", "test-stream-processor")
    compactor = program.named("aws:lambda/function:Function", "test-compactor")
    assert set(stream["environment"]["variables"]) == {
        "LINES_QUEUE_URL",
        "WORDS_QUEUE_URL",
        "STREAM_DLQ_URL",
        "LOG_LEVEL",
        "POWERTOOLS_SERVICE_NAME",
        "POWERTOOLS_METRICS_NAMESPACE",
    }
    compactor_env = compactor["environment"]["variables"]
    assert set(compactor_env) == {
        "DYNAMODB_TABLE_NAME",
        "CHROMADB_BUCKET",
        "CHROMA_ROOT",
        "CHROMA_WORK_DIR",
        "EMBEDDING_DIMENSION",
        "LOCK_DURATION_SECONDS",
        "HEARTBEAT_INTERVAL_SECONDS",
        "HEARTBEAT_MAX_FAILURES",
        "LOCK_WAIT_SECONDS",
        "LEASE_SAFETY_MARGIN_SECONDS",
        "RETRY_VISIBILITY_SECONDS",
        "CHROMA_SINK",
        "LOG_LEVEL",
        "POWERTOOLS_SERVICE_NAME",
        "POWERTOOLS_METRICS_NAMESPACE",
    }
    assert compactor_env["CHROMA_ROOT"] == "/mnt/chroma"
    assert compactor_env["LEASE_SAFETY_MARGIN_SECONDS"] == "10"  # contract §7 rev 3
    # The fast-retry window parses and stays far below the queues' own visibility timeout.
    low, high = CompactionConfig.from_env(compactor_env).retry_visibility_seconds
    assert (low, high) == (30, 90)
    for collection in ("lines", "words"):
        queue = program.named("aws:sqs/queue:Queue", f"test-{collection}")
        assert high < queue["visibilityTimeoutSeconds"]
    assert compactor_env["POWERTOOLS_SERVICE_NAME"] == "receipt-compactor"
    assert stream["environment"]["variables"]["POWERTOOLS_SERVICE_NAME"] == "receipt-stream"
    assert (stream["runtime"], stream["architectures"]) == ("python3.12", ["arm64"])
    assert "vpcConfig" not in stream
    assert compactor["packageType"] == "Image"
    assert compactor["fileSystemConfig"]["localMountPath"] == "/mnt/chroma"
    assert compactor["ephemeralStorage"]["size"] >= 4096
    assert compactor["reservedConcurrentExecutions"] >= 2
    assert compactor["vpcConfig"]["subnetIds"]


def test_alarms_cover_dead_letters_lag_errors_and_compactor_failures(
    program: RecordingMocks,
) -> None:
    alarms = [r.inputs for r in program.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")]
    by_metric: dict[str, list[dict[str, Any]]] = {}
    for alarm in alarms:
        by_metric.setdefault(alarm["metricName"], []).append(alarm)
    assert len(by_metric["ApproximateNumberOfMessagesVisible"]) == 4
    assert by_metric["IteratorAge"][0]["dimensions"]["FunctionName"] == "test-stream-processor"
    assert len(by_metric["Errors"]) == 2
    compactor_metrics = (
        "LeaseAcquisitionFailures",
        "LeaseLost",
        "SnapshotPublishFailures",
        "SnapshotUnavailable",
        "InvalidTableRows",
    )
    for metric in compactor_metrics:
        assert {a["dimensions"]["collection"] for a in by_metric[metric]} == {"lines", "words"}
        assert all(a["namespace"] == "ReceiptCompaction" for a in by_metric[metric])
        assert all(a["dimensions"]["service"] == "receipt-compactor" for a in by_metric[metric])
    for metric in ("StreamParseFailures", "StreamPublishFailures"):
        (alarm,) = by_metric[metric]
        assert alarm["dimensions"] == {"service": "receipt-stream"}
        assert (alarm["namespace"], alarm["threshold"]) == ("ReceiptCompaction", 0)
    oldest = by_metric["ApproximateAgeOfOldestMessage"]
    assert sorted(a["dimensions"]["QueueName"] for a in oldest) == ["test-lines", "test-words"]
    topic_arns = {a["alarmActions"][0] for a in alarms}
    assert len(topic_arns) == 1


def test_the_reliability_suite_batches_as_the_deployed_mappings_do(
    program: RecordingMocks,
) -> None:
    compactor = program.named(
        "aws:lambda/eventSourceMapping:EventSourceMapping", "test-compactor-words"
    )
    stream = program.named(
        "aws:lambda/eventSourceMapping:EventSourceMapping", "test-stream-processor-stream"
    )
    assert SCALES["full"].queue_batch == compactor["batchSize"]
    assert stream["batchSize"] == STREAM_BATCH
