"""Settings from the environment (contract §8): the stream side's, and the one way every
setting of the pipeline is read.

``Environment`` reads one mapping of variables and refuses a bad value in one form: the
variable, the value it holds and what is allowed (``ConfigurationError``). The stream
Lambda's handler resolves ``StreamSettings`` and ``Telemetry`` here and passes the values
down; nothing else in this package reads the environment. The compactor
(``receipt_chroma.compaction.config``) reads its own variables with the same
``Environment``. ``LOG_LEVEL`` is Powertools' own variable, read by its ``Logger``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, TypeVar
from urllib.parse import urlsplit

from receipt_dynamo.constants import ChromaDBCollection
from receipt_dynamo_stream.exceptions import ConfigurationError

QUEUE_URL_VARIABLES: Final = {
    ChromaDBCollection.LINES: "LINES_QUEUE_URL",
    ChromaDBCollection.WORDS: "WORDS_QUEUE_URL",
}
STREAM_DLQ_URL: Final = "STREAM_DLQ_URL"
# Powertools' service name and metrics namespace (contract §9), one service per Lambda.
SERVICE_STREAM: Final = "receipt-stream"
SERVICE_COMPACTOR: Final = "receipt-compactor"
METRICS_NAMESPACE: Final = "ReceiptCompaction"

Choice = TypeVar("Choice", bound=StrEnum)
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})


class Environment:
    """One mapping of variables (``os.environ`` unless given), read variable by variable.
    An unset or blank variable takes its default; a bad value raises ``ConfigurationError``
    naming the variable, its value and what is allowed."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.values: Mapping[str, str] = os.environ if env is None else env

    def refuse(self, name: str, allowed: str) -> ConfigurationError:
        return ConfigurationError(f"{name} must be {allowed}, got {self.text(name)!r}")

    def text(self, name: str, default: str = "") -> str:
        return self.values.get(name, "").strip() or default

    def optional(self, name: str) -> str | None:
        return self.text(name) or None

    def required(self, name: str, purpose: str) -> str:
        value = self.text(name)
        if not value:
            raise ConfigurationError(f"{name} is not set ({purpose})")
        return value

    def url(self, name: str) -> str | None:
        """An http(s) URL such as an SQS queue URL, or None when unset."""
        value = self.text(name)
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise self.refuse(name, "an http(s) URL")
        return value

    def whole(self, name: str, default: int, *, low: int, high: int | None = None) -> int:
        """A whole number from ``low`` (to ``high`` when given)."""
        value = self.text(name)
        if not value:
            return default
        if value.isascii() and value.isdigit():
            number = int(value)
            if number >= low and (high is None or number <= high):
                return number
        bounds = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise self.refuse(name, f"a whole number {bounds}")

    def seconds(self, name: str, default: float) -> float:
        """A positive, finite number of seconds (fractions allowed)."""
        value = self.text(name)
        if not value:
            return default
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not (math.isfinite(number) and number > 0):
            raise self.refuse(name, "a positive number of seconds")
        return number

    def flag(self, name: str, default: bool) -> bool:
        value = self.text(name).lower()
        if not value:
            return default
        if value not in _TRUE | _FALSE:
            raise self.refuse(name, "true or false")
        return value in _TRUE

    def choice(self, name: str, default: Choice) -> Choice:
        """One of the values of ``default``'s enum (case-insensitive)."""
        kinds = type(default)
        value = self.text(name).lower()
        if not value:
            return default
        try:
            return kinds(value)
        except ValueError:
            raise self.refuse(name, "|".join(kind.value for kind in kinds)) from None


@dataclass(frozen=True)
class StreamSettings:
    """Where the stream Lambda sends messages and parks unparseable records (§3.5). A
    queue URL that is not set fails the batch only when a message needs it
    (``publish_messages`` names the variable); without ``STREAM_DLQ_URL`` unparseable
    records are logged, not parked (local runs)."""

    lines_queue_url: str | None = None
    words_queue_url: str | None = None
    dlq_url: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StreamSettings:
        variables = Environment(env)
        return cls(
            lines_queue_url=variables.url(QUEUE_URL_VARIABLES[ChromaDBCollection.LINES]),
            words_queue_url=variables.url(QUEUE_URL_VARIABLES[ChromaDBCollection.WORDS]),
            dlq_url=variables.url(STREAM_DLQ_URL),
        )


@dataclass(frozen=True)
class Telemetry:
    """The Powertools service name and metrics namespace of one Lambda (§8, §9)."""

    service: str
    metrics_namespace: str = METRICS_NAMESPACE

    @classmethod
    def from_env(cls, *, service: str, env: Mapping[str, str] | None = None) -> Telemetry:
        """``service`` is this Lambda's default service name."""
        variables = Environment(env)
        return cls(
            service=variables.text("POWERTOOLS_SERVICE_NAME", service),
            metrics_namespace=variables.text("POWERTOOLS_METRICS_NAMESPACE", METRICS_NAMESPACE),
        )
