"""IAM and resource policy documents, least privilege: explicit actions only (no ``*``
action anywhere), resources scoped to the table, its stream and indexes, the named
queues, the bucket's prefixes, the EFS access point and the Chroma token secret."""

from __future__ import annotations

from typing import Any

Document = dict[str, Any]

SQS_CONSUME = [
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    # Also authorises ChangeMessageVisibilityBatch: the compactor shortens the visibility
    # of messages failed by lease contention (contract §7). The queue URL is built from the
    # event's ARN, so no sqs:GetQueueUrl.
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
]
SQS_ALL_USED = ["sqs:SendMessage", *SQS_CONSUME]
TABLE_READ_WRITE = [
    "dynamodb:GetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:BatchWriteItem",
]
STREAM_READ = [
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
]
VPC_NETWORK_INTERFACES = [
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
]
LOG_WRITE = ["logs:CreateLogStream", "logs:PutLogEvents"]


def document(*statements: Document) -> Document:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(sid: str, actions: list[str], resources: list[str], **extra: Any) -> Document:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources, **extra}


def lambda_trust_policy() -> Document:
    return document(
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": ["sts:AssumeRole"],
        }
    )


def stream_processor_policy(
    *, stream_arn: str, queue_arns: list[str], log_group_arn: str
) -> Document:
    """Read the table's stream, send to the queues, write its logs. No S3, no EFS."""
    return document(
        allow("ReadTableStream", STREAM_READ, [stream_arn]),
        allow("PublishMessages", ["sqs:SendMessage"], queue_arns),
        allow("WriteLogs", LOG_WRITE, [f"{log_group_arn}:*"]),
    )


def compactor_policy(
    *,
    table_arn: str,
    bucket_arn: str,
    queue_arns: list[str],
    file_system_arn: str | None,
    access_point_arn: str | None,
    log_group_arn: str,
    in_vpc: bool = True,
    chroma_token_secret_arn: str | None = None,
) -> Document:
    """Table rows and indexes (not the stream), the bucket's two collection prefixes, the
    compaction queues, the EFS access point (when the snapshot is a sink), its logs, its
    VPC network interfaces (when in the VPC) and the one Chroma token secret (when a
    server is a sink)."""
    prefixes = ["lines/*", "words/*"]
    statements = [
        allow("TableRows", TABLE_READ_WRITE, [table_arn, f"{table_arn}/index/*"]),
        allow(
            "SnapshotObjects",
            ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            [f"{bucket_arn}/{prefix}" for prefix in prefixes],
        ),
        allow(
            "ListSnapshotPrefixes",
            ["s3:ListBucket"],
            [bucket_arn],
            Condition={"StringLike": {"s3:prefix": prefixes}},
        ),
        allow("ConsumeQueues", SQS_CONSUME, queue_arns),
    ]
    if file_system_arn and access_point_arn:
        statements.append(
            allow(
                "MountChromaFileSystem",
                ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
                [file_system_arn],
                Condition={"StringEquals": {"elasticfilesystem:AccessPointArn": access_point_arn}},
            )
        )
    if chroma_token_secret_arn:
        # Contract §12: the server token is read from this one secret, never from a variable.
        statements.append(
            allow("ReadChromaToken", ["secretsmanager:GetSecretValue"], [chroma_token_secret_arn])
        )
    statements.append(allow("WriteLogs", LOG_WRITE, [f"{log_group_arn}:*"]))
    if in_vpc:
        # Describe calls cannot be scoped to a resource; the actions stay explicit.
        statements.append(allow("VpcNetworkInterfaces", VPC_NETWORK_INTERFACES, ["*"]))
    return document(*statements)


def queue_policy(queue_arn: str, producer_arn: str | None, consumer_arn: str | None) -> Document:
    statements: list[Document] = [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": SQS_ALL_USED,
            "Resource": queue_arn,
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    ]
    if producer_arn:
        statements.append(
            {
                "Sid": "Producer",
                "Effect": "Allow",
                "Principal": {"AWS": producer_arn},
                "Action": ["sqs:SendMessage"],
                "Resource": queue_arn,
            }
        )
    if consumer_arn:
        statements.append(
            {
                "Sid": "Consumer",
                "Effect": "Allow",
                "Principal": {"AWS": consumer_arn},
                "Action": SQS_CONSUME,
                "Resource": queue_arn,
            }
        )
    return document(*statements)


def bucket_tls_only_policy(bucket_arn: str) -> Document:
    return document(
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"],
            "Resource": [bucket_arn, f"{bucket_arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    )
