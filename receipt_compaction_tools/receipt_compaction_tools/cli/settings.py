"""What a command needs to know: each setting is a flag, else its environment variable,
else a default; plus the endpoint, region and timeout every AWS call uses.

Only the standard library is imported here: ``--help`` and argument errors must work
(and be fast) whatever the environment holds.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from receipt_compaction_tools.cli.exceptions import UsageError
from receipt_dynamo_stream import compactor_defaults as defaults

# How long a command may wait on an endpoint that does not answer (--timeout).
DEFAULT_TIMEOUT_SECONDS = 15.0
# Throw-away credentials and region for an emulator on this machine (moto accepts any).
LOCAL_REGION = "us-east-1"
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


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
