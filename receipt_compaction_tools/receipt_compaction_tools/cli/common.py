"""What every command shares: settings (a flag, else its environment variable, else a
default), user errors, output (JSON or tables on stdout; progress and logs on stderr) and
confirmation.

Only the standard library is imported here: ``--help`` and argument errors must work
(and be fast) whatever the environment holds, so boto3, rich and chromadb are imported by
the functions that need them.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

from receipt_chroma import settings as defaults

if TYPE_CHECKING:
    from receipt_chroma.chroma_server import ChromaServer
    from receipt_dynamo import ClientTimeouts, DynamoClient

PROG = "receipt-compaction"
# How long a command may wait on an endpoint that does not answer (--timeout).
DEFAULT_TIMEOUT_SECONDS = 15.0
# Throw-away credentials and region for an emulator on this machine (moto accepts any).
LOCAL_REGION = "us-east-1"
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


class UsageError(Exception):
    """A mistake in what the user asked for or configured (exit status 2)."""


class OperationFailed(Exception):
    """The command ran but part of its work failed; the result is still printed
    (exit status 1)."""


_LITERAL = re.compile(r"``?([^`]+)``?")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help as plain text: the ``literal`` markup of docstrings and help strings is
    dropped (a terminal shows no typography)."""

    def _format_text(self, text: str) -> str:
        return super()._format_text(_LITERAL.sub(r"\1", text))

    def _expand_help(self, action: argparse.Action) -> str:
        return _LITERAL.sub(r"\1", super()._expand_help(action))


class CliParser(argparse.ArgumentParser):
    """argparse with one-line errors (``error: …`` on stderr, exit status 2) and plain
    help text; subcommand parsers are built the same way."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


# --- settings --------------------------------------------------------------------------


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise ValueError(f"must be a positive integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"must be a positive number, got {text!r}") from None
    if not value > 0:
        raise ValueError(f"must be a positive number, got {text!r}")
    return value


@dataclass(frozen=True)
class Setting:
    """A value a command needs: ``flag`` overrides ``env``, which overrides ``default``."""

    dest: str
    flag: str
    env: str | None
    help: str
    default: str | None = None
    parse: Callable[[str], Any] = str

    def add_to(self, parser: argparse._ActionsContainer, *, note: str = "") -> None:
        origin = f"default: ${self.env}" if self.env else "no default"
        if self.default is not None:
            origin += f", else {self.default}"
        # The default stays None: the environment is read when the command runs, so a bad
        # variable never breaks --help or another command.
        parser.add_argument(
            self.flag,
            dest=self.dest,
            default=None,
            metavar=self.dest.upper(),
            help=f"{self.help}{note} ({origin})",
        )

    def value(self, args: argparse.Namespace, *, required: bool = False) -> Any:
        text = getattr(args, self.dest, None)
        source = self.flag
        if text is None and self.env:
            text = os.environ.get(self.env) or None
            source = self.env
        if text is None:
            text, source = self.default, "default"
        if text is None:
            if required:
                also = f" (or {self.env})" if self.env else ""
                raise UsageError(f"{self.flag}{also} is required")
            return None
        try:
            return self.parse(text)
        except ValueError as error:
            raise UsageError(f"{source} {error}") from None


def endpoint_url(text: str) -> str:
    """An ``http(s)://host[:port]`` URL (what boto3 accepts as an endpoint)."""
    try:
        parts = urlsplit(text.strip())
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be a URL such as http://127.0.0.1:5000, got {text!r}")
    return text.strip()


def is_local(url: str) -> bool:
    """Whether an endpoint is on this machine (an emulator such as the moto server)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


ENDPOINT = Setting(
    "endpoint_url",
    "--endpoint-url",
    "AWS_ENDPOINT_URL",
    "AWS-compatible endpoint; on this machine (an emulator) region and credentials default "
    f"to {LOCAL_REGION} and throw-away keys",
    parse=endpoint_url,
)
REGION = Setting("region", "--region", "AWS_DEFAULT_REGION", "AWS region")
TABLE = Setting("table", "--table", "DYNAMODB_TABLE_NAME", "the receipt table")
BUCKET = Setting("bucket", "--bucket", "CHROMADB_BUCKET", "the snapshot and delta bucket")
LINES_QUEUE = Setting("lines_queue_url", "--lines-queue-url", "LINES_QUEUE_URL", "lines queue")
WORDS_QUEUE = Setting("words_queue_url", "--words-queue-url", "WORDS_QUEUE_URL", "words queue")
LINES_DLQ = Setting("lines_dlq_url", "--lines-dlq-url", "LINES_DLQ_URL", "lines dead-letter queue")
WORDS_DLQ = Setting("words_dlq_url", "--words-dlq-url", "WORDS_DLQ_URL", "words dead-letter queue")
STREAM_DLQ = Setting(
    "stream_dlq_url",
    "--stream-dlq-url",
    "STREAM_DLQ_URL",
    "parking queue of unparseable stream records",
)
CHROMA_ROOT = Setting(
    "chroma_root", "--chroma-root", "CHROMA_ROOT", "the EFS tier (a plain directory locally)"
)
WORK_DIR = Setting(
    "work_dir",
    "--work-dir",
    "CHROMA_WORK_DIR",
    "local working copies",
    default=defaults.CHROMA_WORK_DIR,
)
DIMENSION = Setting(
    "dimension",
    "--dim",
    "EMBEDDING_DIMENSION",
    "embedding dimension",
    default=str(defaults.EMBEDDING_DIMENSION),
    parse=positive_int,
)
QUEUES = (LINES_QUEUE, WORDS_QUEUE)
DEAD_LETTERS = (LINES_DLQ, WORDS_DLQ, STREAM_DLQ)


def add_settings(parser: argparse._ActionsContainer, *settings: Setting) -> None:
    for setting in settings:
        setting.add_to(parser)


def queue_urls(args: argparse.Namespace, collections: list[str]) -> dict[str, str]:
    """The queue URL of each collection in ``collections`` (each required)."""
    settings = {"lines": LINES_QUEUE, "words": WORDS_QUEUE}
    return {c: settings[c].value(args, required=True) for c in collections}


def apply_aws_settings(args: argparse.Namespace) -> None:
    """Endpoint and region reach every boto3 client through the standard variables. An
    endpoint on this machine is an emulator: without a region or credentials of their
    own, it gets ``us-east-1`` and throw-away keys (nothing real can be reached with them)."""
    endpoint = ENDPOINT.value(args)  # UsageError for anything but an http(s) URL
    if endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
    region = getattr(args, REGION.dest, None)
    if region:
        os.environ["AWS_DEFAULT_REGION"] = region
    if endpoint and is_local(endpoint):
        if not (os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")):
            os.environ["AWS_DEFAULT_REGION"] = LOCAL_REGION
        if not (os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")):
            os.environ.update(LOCAL_CREDENTIALS)


def timeout_seconds(text: str) -> float:
    value = positive_float(text)
    if value < 2:
        raise ValueError(f"must be at least 2 seconds, got {text!r}")
    return value


def budget(args: argparse.Namespace) -> float:
    """The seconds a command may wait on an endpoint that does not answer (--timeout)."""
    return float(getattr(args, "timeout", None) or DEFAULT_TIMEOUT_SECONDS)


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


def state_dir() -> Path:
    """Where commands keep state between calls (``run``'s stream positions):
    ``$RECEIPT_COMPACTION_STATE_DIR``, else ``$XDG_STATE_HOME/receipt-compaction``, else
    ``~/.local/state/receipt-compaction``."""
    explicit = os.environ.get("RECEIPT_COMPACTION_STATE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / PROG


def cache_dir() -> Path:
    """Downloaded snapshot versions (immutable, so safe to reuse):
    ``$XDG_CACHE_HOME/receipt-compaction``, else ``~/.cache/receipt-compaction``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / PROG


# --- objects verified here ---------------------------------------------------------------


def _verified_file(bucket: str, collection: str) -> Path:
    return state_dir() / "verified-objects" / f"{bucket}-{collection}.json"


def verified_etags(bucket: str, collection: str) -> dict[str, str]:
    """sha256 → ETag of the snapshot objects this machine read back and hashed (``status
    --deep``, ``snapshot repair``): objects are immutable, so a later status flags one
    whose ETag changed without reading it again."""
    try:
        data = json.loads(_verified_file(bucket, collection).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write_verified(bucket: str, collection: str, etags: dict[str, str]) -> None:
    path = _verified_file(bucket, collection)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps(etags, sort_keys=True))
    temporary.replace(path)


def remember_verified(bucket: str, collection: str, etags: dict[str, str]) -> None:
    if etags:
        _write_verified(bucket, collection, {**verified_etags(bucket, collection), **etags})


def forget_verified(bucket: str, collection: str, sha256: str) -> None:
    """Drop an object's recorded ETag (a repair rewrote it)."""
    etags = verified_etags(bucket, collection)
    if etags.pop(sha256, None) is not None:
        _write_verified(bucket, collection, etags)


# --- output ----------------------------------------------------------------------------


@dataclass
class Output:
    """Where results go (stdout) and whether they are JSON; everything else — logs,
    progress bars, prompts — goes to stderr."""

    stream: IO[str]
    as_json: bool

    def emit(self, result: Any, render: Callable[[Any, IO[str]], None] | None = None) -> None:
        if self.as_json or render is None:
            self.stream.write(json.dumps(result, indent=2, default=str) + "\n")
        else:
            render(result, self.stream)
        self.stream.flush()


def console(stream: IO[str]) -> Any:
    from rich.console import Console

    # Plain text when the output is not a terminal, and never wrapped: lines stay greppable.
    return Console(file=stream, soft_wrap=True, highlight=False)


def render_mapping(result: dict[str, Any], stream: IO[str]) -> None:
    """``key  value`` lines of a flat result (never cut to the terminal's width)."""
    width = max((len(k) for k in result), default=0)
    for key, value in result.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        stream.write(f"{key.replace('_', ' '):<{width}}  {text}\n")


Advance = Callable[[int], None]
ProgressFactory = Callable[[str, int | None], Advance]


@contextmanager
def progress(enabled: bool = True) -> Iterator[ProgressFactory]:
    """Progress bars on stderr (rich; none when stderr is not a terminal). The factory
    takes a description and a total (None: a running count) and returns ``advance(n)``."""
    if not enabled or not sys.stderr.isatty():  # bars are for people at a terminal
        yield lambda _description, _total: lambda _n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    bars = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )

    def factory(description: str, total: int | None) -> Advance:
        task = bars.add_task(description, total=total)
        return lambda n: bars.advance(task, n)

    with bars:
        yield factory


def confirm(question: str, *, assume_yes: bool) -> None:
    """Ask on stderr before a change to a live deployment; UsageError when declined or
    when there is no terminal to ask on (scripts pass ``--yes``)."""
    if assume_yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"{question} — refusing without confirmation; pass --yes")
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise UsageError("not confirmed; nothing changed")
