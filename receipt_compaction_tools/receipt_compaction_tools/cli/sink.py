"""``receipt-compaction sink seed|verify``: moving a collection from snapshots to a Chroma
server (contract §12) — thin calls of ``receipt_chroma.server_migration``.

The migration: pause the compactor's queue mappings, ``sink seed`` each collection (the
published snapshot into the empty server collection), deploy ``CHROMA_SINK=both`` and
resume, ``sink verify`` once the queues drain (exit status 1 while anything differs), then
deploy ``CHROMA_SINK=server``. Both commands hold the collection's lease while they read,
so no cycle changes either side meanwhile (``--no-lease`` skips it: a verify may then see
a cycle in flight). The server settings are the compactor's (contract §8); the token is
read from the Secrets Manager secret ``CHROMA_AUTH_TOKEN_SECRET`` names.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import IO, Any

from receipt_compaction_tools.cli import clients
from receipt_compaction_tools.cli.exceptions import OperationFailed
from receipt_compaction_tools.cli.output import Output, progress, render_mapping
from receipt_compaction_tools.cli.settings import (
    BUCKET,
    ENDPOINT,
    REGION,
    TABLE,
    Setting,
    add_settings,
    positive_float,
    positive_int,
)
from receipt_dynamo_stream import compactor_defaults as defaults

ACTIONS = {
    "seed": "load the published snapshot into the empty server collection (under the lease)",
    "verify": "compare the published snapshot with the server collection: ids, provenance, "
    "every metadata key, documents, vectors (exit status 1 on any difference)",
}


def _port(text: str) -> int:
    value = positive_int(text)
    if value > 65535:
        raise ValueError(f"must be a port number, got {text!r}")
    return value


def _flag(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"must be true or false, got {text!r}")
    return lowered in ("true", "1", "yes")


CHROMA_HOST = Setting("chroma_host", "--chroma-host", "CHROMA_HOST", "the Chroma server's host")
CHROMA_PORT = Setting(
    "chroma_port",
    "--chroma-port",
    "CHROMA_PORT",
    "its port",
    default=str(defaults.CHROMA_PORT),
    parse=_port,
)
CHROMA_SSL = Setting(
    "chroma_ssl", "--chroma-ssl", "CHROMA_SSL", "HTTPS (true/false)", default="false", parse=_flag
)
CHROMA_TENANT = Setting(
    "chroma_tenant", "--chroma-tenant", "CHROMA_TENANT", "tenant", default=defaults.CHROMA_TENANT
)
CHROMA_DATABASE = Setting(
    "chroma_database",
    "--chroma-database",
    "CHROMA_DATABASE",
    "database",
    default=defaults.CHROMA_DATABASE,
)
CHROMA_TOKEN_SECRET = Setting(
    "chroma_auth_token_secret",
    "--chroma-auth-token-secret",
    "CHROMA_AUTH_TOKEN_SECRET",
    "Secrets Manager secret holding the server token (none: no token)",
)
SERVER_SETTINGS = (
    CHROMA_HOST,
    CHROMA_PORT,
    CHROMA_SSL,
    CHROMA_TENANT,
    CHROMA_DATABASE,
    CHROMA_TOKEN_SECRET,
)


def _server(args: argparse.Namespace) -> Any:
    """The server the flags (else the compactor's variables) name, every call bounded by
    the command's --timeout; CHROMA_RETRY_ATTEMPTS applies as it does to the compactor."""
    from receipt_chroma.compaction import chroma_server_from_env

    settings = {
        "CHROMA_HOST": CHROMA_HOST.value(args, required=True),
        "CHROMA_PORT": str(CHROMA_PORT.value(args)),
        "CHROMA_SSL": "true" if CHROMA_SSL.value(args) else "false",
        "CHROMA_TENANT": CHROMA_TENANT.value(args),
        "CHROMA_DATABASE": CHROMA_DATABASE.value(args),
        "CHROMA_AUTH_TOKEN_SECRET": CHROMA_TOKEN_SECRET.value(args) or "",
    }
    return clients.chroma_server(args, chroma_server_from_env({**os.environ, **settings}))


def command_sink(args: argparse.Namespace, out: Output) -> None:
    from chromadb.errors import NotFoundError

    from receipt_chroma import server_migration as migration

    dynamo = clients.dynamo(args)
    bucket = BUCKET.value(args, required=True)
    server = _server(args)
    s3 = clients.aws(args, "s3")
    with progress() as bars:
        if args.action == "seed":
            result = migration.seed(
                dynamo,
                bucket,
                args.collection,
                server,
                hold_lease=not args.no_lease,
                advance=bars(f"seeding {args.collection}", None),
                s3_client=s3,
            )
        else:
            try:
                result = migration.verify(
                    dynamo,
                    bucket,
                    args.collection,
                    server,
                    hold_lease=not args.no_lease,
                    tolerance=args.tolerance,
                    show=args.show,
                    advance=bars(f"comparing {args.collection}", None),
                    s3_client=s3,
                )
            except NotFoundError:
                raise OperationFailed(
                    f"the Chroma server {server.describe()} has no {args.collection} "
                    f"collection: load it first with sink seed --collection {args.collection}"
                ) from None
    if args.action == "seed":
        out.emit(result, render_mapping)
        return
    out.emit(result, render_verify)
    if not result["ok"]:
        raise OperationFailed(
            f"{result['total_differences']} differences between the published "
            f"{result['collection']} snapshot {result['version']} and the server collection"
        )


def render_verify(result: dict[str, Any], stream: IO[str]) -> None:
    summary = {
        k: result[k]
        for k in (
            "collection",
            "version",
            "server",
            "snapshot_records",
            "server_records",
            "compared",
            "total_differences",
            "seconds",
        )
    }
    render_mapping(summary, stream)
    if result["ok"]:
        stream.write("no differences\n")
        return
    stream.write("differences:\n")
    for kind, count in result["differences"].items():
        stream.write(f"  {kind:<18} {count}\n")
    if result["differing_keys"]:
        stream.write(f"differing keys: {json.dumps(result['differing_keys'])}\n")
    for example in result["examples"]:
        stream.write(f"  {example['difference']}: {example['id']}: {example['detail']}\n")
    hidden = result["total_differences"] - len(result["examples"])
    if hidden > 0:
        stream.write(f"  … {hidden} more (--show N)\n")


def register(commands: Any) -> None:
    sink = commands.add_parser(
        "sink", help="move a collection from snapshots to a Chroma server: seed, verify"
    )
    actions = sink.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, text in ACTIONS.items():
        sub = actions.add_parser(action, help=text, description=text)
        sub.add_argument("--collection", choices=["lines", "words"], required=True)
        add_settings(sub, ENDPOINT, REGION, TABLE, BUCKET, *SERVER_SETTINGS)
        sub.add_argument(
            "--no-lease",
            action="store_true",
            help="do not hold the collection's lease (cycles may run meanwhile)",
        )
        if action == "verify":
            sub.add_argument(
                "--tolerance",
                type=_argument(positive_float),
                default=1e-6,
                help="largest difference of a vector component counted as equal (1e-6)",
            )
            sub.add_argument(
                "--show",
                type=_argument(positive_int),
                default=20,
                help="differences to print in full (20)",
            )
        sub.set_defaults(handler=command_sink)


def _argument(parse: Any) -> Any:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return convert
