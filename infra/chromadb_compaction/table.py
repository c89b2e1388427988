"""The receipt table: created with exactly ``receipt_dynamo.schema``'s definition, or an
existing table named in stack configuration (never deleted by this stack's destroy, since
the stack does not own it)."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from receipt_dynamo.schema import TTL_ATTRIBUTE, table_definition


def table_args(name: str) -> dict[str, Any]:
    """``aws.dynamodb.Table`` arguments equivalent to ``table_definition(name)``."""
    definition = table_definition(name)
    keys = {k["KeyType"]: k["AttributeName"] for k in definition["KeySchema"]}
    return {
        "name": name,
        "billing_mode": definition["BillingMode"],
        "hash_key": keys["HASH"],
        "range_key": keys["RANGE"],
        "attributes": [
            aws.dynamodb.TableAttributeArgs(name=a["AttributeName"], type=a["AttributeType"])
            for a in definition["AttributeDefinitions"]
        ],
        "global_secondary_indexes": [
            aws.dynamodb.TableGlobalSecondaryIndexArgs(
                name=index["IndexName"],
                projection_type=index["Projection"]["ProjectionType"],
                key_schemas=[
                    aws.dynamodb.TableGlobalSecondaryIndexKeySchemaArgs(
                        attribute_name=key["AttributeName"], key_type=key["KeyType"]
                    )
                    for key in index["KeySchema"]
                ],
            )
            for index in definition["GlobalSecondaryIndexes"]
        ],
        "stream_enabled": definition["StreamSpecification"]["StreamEnabled"],
        "stream_view_type": definition["StreamSpecification"]["StreamViewType"],
        "ttl": aws.dynamodb.TableTtlArgs(attribute_name=TTL_ATTRIBUTE, enabled=True),
        "point_in_time_recovery": aws.dynamodb.TablePointInTimeRecoveryArgs(enabled=True),
    }


class ReceiptTable(pulumi.ComponentResource):
    name: pulumi.Output[str]
    arn: pulumi.Output[str]
    stream_arn: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        table_name: str,
        existing: tuple[str, str, str] | None = None,
        protect: bool = True,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("receipt:compaction:ReceiptTable", resource_name, None, opts)
        if existing is not None:
            name, arn, stream_arn = existing
            self.name = pulumi.Output.from_input(name)
            self.arn = pulumi.Output.from_input(arn)
            self.stream_arn = pulumi.Output.from_input(stream_arn)
        else:
            table = aws.dynamodb.Table(
                resource_name,
                **table_args(table_name),
                # Deleting the table loses every receipt. With stack config
                # destroyProtection Pulumi refuses to delete it, and AWS refuses too (the
                # console and CLI included, which Pulumi's protect cannot stop).
                deletion_protection_enabled=protect,
                opts=pulumi.ResourceOptions(parent=self, protect=protect),
            )
            self.name = table.name
            self.arn = table.arn
            self.stream_arn = table.stream_arn
        self.register_outputs({"name": self.name, "arn": self.arn, "stream_arn": self.stream_arn})
