"""``receipt-compaction``: operate the receipt compaction pipeline — its status, queries on
the published snapshots, the snapshots themselves, dead letters, replay and backfill — and
run it locally (``demo``, ``run``).

Settings come from flags, else from the environment variables of the contract (each
flag's help names its variable). Results go to stdout (``--json``: JSON only); logs,
progress and prompts go to stderr. Exit status: 0 done, 1 the operation failed (AWS
refused, an endpoint did not answer, a version does not verify, some messages were not
published), 2 a usage or configuration error — always one line on stderr, never a
traceback (``RECEIPT_COMPACTION_DEBUG=1`` shows it). An endpoint that does not answer is
reported within ``--timeout`` seconds (15). The commands that only read and report
(``status`` without ``--deep``/``--watch``, ``snapshot list``, ``snapshot inspect``) are
bounded as a whole by ``--timeout``: an endpoint answering each call slowly, or trickling
bytes, cannot keep them running longer.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from importlib import metadata
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

from receipt_compaction_tools.cli import (
    backfill,
    clients,
    dlq,
    pipeline,
    query,
    replay,
    sink,
    snapshots,
    status,
)
from receipt_compaction_tools.cli.error_report import error_line, report_error
from receipt_compaction_tools.cli.exceptions import UsageError
from receipt_compaction_tools.cli.output import Output, progress
from receipt_compaction_tools.cli.parser import PROG, CliParser
from receipt_compaction_tools.cli.settings import (
    DEFAULT_TIMEOUT_SECONDS,
    ENDPOINT,
    apply_aws_settings,
    budget,
    positive_int,
    timeout_seconds,
)

if TYPE_CHECKING:
    pass

# Each module adds its commands with ``register(subparsers)``; a new command module only
# needs a line here.
COMMAND_MODULES = (status, query, snapshots, dlq, pipeline, replay, backfill, sink)


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


def _timeout(text: str) -> float:
    try:
        return timeout_seconds(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def command_demo(args: argparse.Namespace, out: Output) -> None:
    from receipt_compaction_tools.cli.demo import run_demo
    from receipt_compaction_tools.cli.demo_render import exports, render_demo

    endpoint = ENDPOINT.value(args)
    if args.print_env and not endpoint:
        raise UsageError(
            "--print-env needs --endpoint-url (or AWS_ENDPOINT_URL): without one the demo's "
            "resources live on its own moto server, which stops when the demo ends; start "
            "one with: python -m receipt_compaction_tools.aws.moto_server -p 5000"
        )
    if endpoint:
        # One bounded call first: an endpoint that does not answer is one line within
        # --timeout, not the first of the demo's many calls waiting on it.
        clients.aws(args, "dynamodb").list_tables(Limit=1)
    with progress() as bars:
        summary = run_demo(
            receipts=args.receipts,
            dimension=args.dim,
            seed=args.seed,
            endpoint_url=endpoint,
            region=args.region,
            progress=bars,
            sink=args.sink,
        )
    summary.pop("snapshot", None)
    summary.pop("server", None)  # the records themselves (vectors included)
    if args.print_env:
        out.stream.write(exports(summary["environment"]))
        out.stream.flush()
        return
    out.emit(summary, render_demo)


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(prog=PROG, description=__doc__)
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    parser.add_argument(
        "--json", action="store_true", help="results as JSON on stdout (logs stay on stderr)"
    )
    parser.add_argument(
        "--timeout",
        type=_timeout,
        default=DEFAULT_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help="how long to wait on an endpoint (AWS, a Chroma server) that does not answer, "
        f"before one line names it ({DEFAULT_TIMEOUT_SECONDS:g})",
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
    demo.add_argument(
        "--endpoint-url",
        help="create the resources on this endpoint (they stay there for the other "
        "commands) instead of a private moto server (default: $AWS_ENDPOINT_URL)",
    )
    demo.add_argument(
        "--region", help="AWS region (default: $AWS_DEFAULT_REGION, else us-east-1 locally)"
    )
    demo.add_argument(
        "--print-env",
        action="store_true",
        help="print only export lines naming the demo's resources (with --endpoint-url), "
        'for eval "$(receipt-compaction demo ... --print-env)"',
    )
    demo.add_argument(
        "--sink",
        choices=["snapshot", "server", "both"],
        default="snapshot",
        help="where the compactor writes (contract §12): server and both start a local "
        "chroma run on a free port for the demo (snapshot)",
    )
    demo.set_defaults(handler=command_demo)

    for module in COMMAND_MODULES:
        module.register(commands)
    # --json and --timeout are accepted after the command too (`status --json`).
    _accept_anywhere(commands)
    return parser


def _accept_anywhere(commands: Any) -> None:
    for sub in commands.choices.values():
        nested = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            _accept_anywhere(nested[0])
            continue
        options = {o for a in sub._actions for o in a.option_strings}
        if "--json" not in options:
            sub.add_argument(
                "--json",
                action="store_true",
                default=argparse.SUPPRESS,
                help="results as JSON on stdout (logs stay on stderr)",
            )
        if "--timeout" not in options:
            sub.add_argument(
                "--timeout",
                type=_timeout,
                default=argparse.SUPPRESS,
                metavar="SECONDS",
                help="wait at most this long on an endpoint that does not answer "
                f"({DEFAULT_TIMEOUT_SECONDS:g})",
            )


class CommandOverBudget(BaseException):
    """Raised by the watchdog of a command bounded as a whole. A BaseException so that no
    ``except Exception`` on the way (a retry loop, a cleanup) takes it for a failed call."""


@contextlib.contextmanager
def _watchdog(seconds: float | None) -> Iterator[None]:
    """Interrupt the command after ``seconds`` (None: no bound). SIGALRM reaches only the
    main thread; elsewhere (a command run from a worker thread) per-call bounds remain."""
    if seconds is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise CommandOverBudget

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _over_budget_line(args: argparse.Namespace, budget: float) -> str:
    url = urlsplit(str(getattr(args, "endpoint_url", None) or ""))
    endpoint = f"{url.scheme}://{url.netloc}" if url.netloc else "AWS"
    command = " ".join(filter(None, (args.command, getattr(args, "action", None))))
    return (
        f"{endpoint} did not answer {command} within --timeout {budget:g} s "
        "(bounded as a whole: calls were answered too slowly)"
    )


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
        bounded: Callable[[argparse.Namespace], bool] = getattr(
            args, "bounded_as_whole", lambda _: False
        )
        whole_budget = budget(args) if bounded(args) else None
        with contextlib.redirect_stdout(sys.stderr), _watchdog(whole_budget):
            handler(args, output)
    except CommandOverBudget:
        error_line(_over_budget_line(args, budget(args)))
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if os.environ.get("RECEIPT_COMPACTION_DEBUG"):
            traceback.print_exc()
        return report_error(error, budget(args))
    return 0


def entry_point() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
