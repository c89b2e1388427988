"""AWS and Chroma clients bounded by the command's budget (``--timeout``), whose errors
name the table, bucket or queue they are about. boto3 is imported when a client is made,
never when the command line is parsed."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from receipt_compaction_tools.cli.settings import TABLE, budget

if TYPE_CHECKING:
    from receipt_chroma.chroma_server import ChromaServer
    from receipt_dynamo import ClientTimeouts, DynamoClient


def client_timeouts(args: argparse.Namespace) -> ClientTimeouts:
    from receipt_dynamo import ClientTimeouts

    return ClientTimeouts.within(budget(args))


# Request parameters that name what a call is about, and what to call it in an error.
RESOURCE_PARAMETERS = (
    ("TableName", "table"),
    ("Bucket", "bucket"),
    ("QueueUrl", "queue"),
    ("StreamArn", "stream"),
    ("FunctionName", "function"),
    ("SecretId", "secret"),
)


def _remember_resource(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    for parameter, kind in RESOURCE_PARAMETERS:
        if params.get(parameter):
            context["resource"] = f"{kind} {params[parameter]}"
            return


def _name_resource(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """An error answer carries the resource the call named (``Error.Resource``), so the
    one-line error can say which table, bucket or queue was not found."""
    error = parsed.get("Error")
    if isinstance(error, dict) and context.get("resource"):
        error.setdefault("Resource", context["resource"])


def aws(args: argparse.Namespace, service: str) -> Any:
    """A boto3 client bounded by the command's budget (--timeout), whose errors name the
    table, bucket or queue they are about."""
    from receipt_dynamo import aws_client

    client = aws_client(service, timeouts=client_timeouts(args))
    client.meta.events.register("before-parameter-build", _remember_resource)
    client.meta.events.register("after-call", _name_resource)
    return client


def dynamo(args: argparse.Namespace) -> DynamoClient:
    from receipt_dynamo import DynamoClient

    table = TABLE.value(args, required=True)
    return DynamoClient(table, client=aws(args, "dynamodb"))


def chroma_server(args: argparse.Namespace, server: ChromaServer) -> ChromaServer:
    """``server`` with every call bounded by the command's budget (--timeout)."""
    return server.within(budget(args))
