"""``receipt-compaction``: operate the receipt compaction pipeline — its status, queries on
the published snapshots, the snapshots themselves, dead letters, replay and backfill — and
run it locally (``demo``, ``run``).

Settings come from flags, else from the environment variables of the contract (each
flag's help names its variable). Results go to stdout (``--json``: JSON only); logs,
progress and prompts go to stderr. Exit status: 0 done, 1 the operation failed (AWS
refused, a version does not verify, some messages were not published), 2 a usage or
configuration error — always one line on stderr, never a traceback
(``RECEIPT_COMPACTION_DEBUG=1`` shows it).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import IO, Any

from receipt_compaction_tools.cli import backfill, dlq, pipeline, query, sink, snapshots, status
from receipt_compaction_tools.cli.common import (
    PROG,
    CliParser,
    OperationFailed,
    Output,
    UsageError,
    apply_aws_settings,
    positive_int,
)

# Each module adds its commands with ``register(subparsers)``; a new command module only
# needs a line here.
COMMAND_MODULES = (status, query, snapshots, dlq, pipeline, backfill, sink)


def _version() -> str:
    try:
        return metadata.version("receipt-compaction-tools")
    except metadata.PackageNotFoundError:  # running from a source tree without install
        return "unknown"


def _dimension(text: str) -> int:
    try:
        return positive_int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _receipts(text: str) -> int:
    value = _dimension(text)
    if value < 3:
        raise argparse.ArgumentTypeError(f"must be at least 3 (the edits need them), got {value}")
    return value


def command_demo(args: argparse.Namespace, out: Output) -> None:
    from receipt_compaction_tools.cli.common import progress
    from receipt_compaction_tools.cli.demo import render_demo, run_demo

    with progress() as bars:
        summary = run_demo(
            receipts=args.receipts,
            dimension=args.dim,
            seed=args.seed,
            endpoint_url=args.endpoint_url or os.environ.get("AWS_ENDPOINT_URL"),
            progress=bars,
            sink=args.sink,
        )
    summary.pop("snapshot", None)
    summary.pop("server", None)  # the records themselves (vectors included)
    out.emit(summary, render_demo)


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    parser.add_argument(
        "--json", action="store_true", help="results as JSON on stdout (logs stay on stderr)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="the whole pipeline on synthetic data (its own moto server unless "
        "--endpoint-url / AWS_ENDPOINT_URL is set)",
    )
    demo.add_argument("--receipts", type=_receipts, default=25, help="receipts to generate (25)")
    demo.add_argument("--dim", type=_dimension, default=1536, help="embedding dimension (1536)")
    demo.add_argument("--seed", type=int, default=7, help="random seed (7)")
    demo.add_argument("--endpoint-url", help="use this endpoint instead of a private moto server")
    demo.add_argument(
        "--sink",
        choices=["snapshot", "server", "both"],
        default="snapshot",
        help="where the compactor writes (contract §12): server and both start a local "
        "`chroma run` on a free port for the demo (snapshot)",
    )
    demo.set_defaults(handler=command_demo)

    for module in COMMAND_MODULES:
        module.register(commands)
    # --json is accepted after the command too (`receipt-compaction status --json`).
    _accept_json_anywhere(commands)
    return parser


def _accept_json_anywhere(commands: Any) -> None:
    for sub in commands.choices.values():
        nested = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            _accept_json_anywhere(nested[0])
        elif not any("--json" in a.option_strings for a in sub._actions):
            sub.add_argument(
                "--json",
                action="store_true",
                default=argparse.SUPPRESS,
                help="results as JSON on stdout (logs stay on stderr)",
            )


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _error(text: str) -> None:
    print(f"error: {_one_line(text)}", file=sys.stderr)


# AWS error codes that mean a name given by the user does not exist: a configuration error.
NOT_FOUND_CODES = frozenset(
    {
        "ResourceNotFoundException",
        "NoSuchBucket",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
    }
)


def _report(error: BaseException) -> int:
    """The one line for ``error`` and the exit status."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    from receipt_chroma.exceptions import (
        ReceiptChromaError,
        SnapshotDestinationError,
        SnapshotVersionMissingError,
    )
    from receipt_dynamo import ReceiptDynamoError
    from receipt_dynamo_stream import ConfigurationError

    if isinstance(error, UsageError | ConfigurationError | SnapshotDestinationError):
        _error(str(error))
        return 2
    if isinstance(error, SnapshotVersionMissingError):
        _error(str(error))
        return 2
    if isinstance(error, OperationFailed | ReceiptChromaError | ReceiptDynamoError):
        _error(str(error))
        return 1
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "error")
        message = error.response.get("Error", {}).get("Message") or str(error)
        operation = getattr(error, "operation_name", "")
        if code in NOT_FOUND_CODES:
            _error(f"not found ({code}) in {operation}: {message}")
            return 2
        _error(f"AWS refused {operation} ({code}): {message}")
        return 1
    if isinstance(error, NoCredentialsError):
        _error(f"{error} (set AWS credentials, e.g. AWS_PROFILE)")
        return 2
    if isinstance(error, BotoCoreError):
        _error(f"cannot reach AWS: {error}")
        return 1
    if isinstance(error, OSError):
        _error(f"{type(error).__name__}: {error}")
        return 1
    _error(f"unexpected {type(error).__name__}: {error} (RECEIPT_COMPACTION_DEBUG=1 shows more)")
    return 1


def main(argv: Sequence[str] | None = None, *, stdout: IO[str] | None = None) -> int:
    out_stream = stdout or sys.stdout
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help / --version (0) or a usage error (2), printed
        return int(exit_.code or 0)
    handler: Callable[[argparse.Namespace, Output], None] = args.handler
    output = Output(out_stream, as_json=bool(getattr(args, "json", False)))
    try:
        apply_aws_settings(args)
        # Whatever else writes to stdout while the command runs (the handlers' JSON logs,
        # a library's print) goes to stderr: stdout carries only the result.
        with contextlib.redirect_stdout(sys.stderr):
            handler(args, output)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if os.environ.get("RECEIPT_COMPACTION_DEBUG"):
            traceback.print_exc()
        return _report(error)
    return 0


def entry_point() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
