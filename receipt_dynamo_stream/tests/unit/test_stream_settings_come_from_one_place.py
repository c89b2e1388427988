"""The stream side's settings (contract §8) are read in one place, with their defaults, and
a bad value is refused naming the variable, its value and what is allowed. Expected
names and defaults are typed here from the contract's table, not taken from the package.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

import pytest

import receipt_dynamo_stream
from receipt_dynamo.testing import environment_reads, settings_resolvers
from receipt_dynamo_stream import ConfigurationError, StreamSettings, Telemetry
from receipt_dynamo_stream.settings import Environment

PACKAGE_DIR = Path(receipt_dynamo_stream.__file__).parent
RESOLVER = PACKAGE_DIR / "settings.py"
LINES = "https://sqs.us-east-1.amazonaws.com/123456789012/lines"
WORDS = "http://127.0.0.1:5000/123456789012/words"
DLQ = "https://sqs.us-east-1.amazonaws.com/123456789012/stream-dlq"


def test_queue_urls_are_read_and_none_is_required_until_a_message_needs_it() -> None:
    assert StreamSettings.from_env({}) == StreamSettings(None, None, None)
    assert StreamSettings.from_env({"LINES_QUEUE_URL": " ", "STREAM_DLQ_URL": ""}) == (
        StreamSettings(None, None, None)
    )
    env = {"LINES_QUEUE_URL": LINES, "WORDS_QUEUE_URL": f" {WORDS} ", "STREAM_DLQ_URL": DLQ}
    assert StreamSettings.from_env(env) == StreamSettings(LINES, WORDS, DLQ)


@pytest.mark.parametrize("variable", ["LINES_QUEUE_URL", "WORDS_QUEUE_URL", "STREAM_DLQ_URL"])
@pytest.mark.parametrize("value", ["lines", "sqs.us-east-1.amazonaws.com/1/q", "ftp://h/q"])
def test_a_queue_url_that_is_not_a_url_names_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        StreamSettings.from_env({variable: value})
    assert str(raised.value) == f"{variable} must be an http(s) URL, got {value!r}"


def test_service_and_namespace_default_per_lambda() -> None:
    # Contract §8: receipt-stream / receipt-compactor, namespace ReceiptCompaction.
    assert Telemetry.from_env(service="receipt-stream", env={}) == Telemetry(
        "receipt-stream", "ReceiptCompaction"
    )
    env = {"POWERTOOLS_SERVICE_NAME": "svc", "POWERTOOLS_METRICS_NAMESPACE": "Ns"}
    assert Telemetry.from_env(service="receipt-compactor", env=env) == Telemetry("svc", "Ns")


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


@pytest.mark.parametrize(
    ("read", "value", "allowed"),
    [
        (lambda e: e.whole("N", 3, low=1), "0", "a whole number of at least 1"),
        (lambda e: e.whole("N", 3, low=1), "1_000", "a whole number of at least 1"),
        (lambda e: e.whole("N", 3, low=1), "-2", "a whole number of at least 1"),
        (lambda e: e.whole("N", 3, low=1, high=9), "10", "a whole number from 1 to 9"),
        (lambda e: e.whole("N", 3, low=0), "2.5", "a whole number of at least 0"),
        (lambda e: e.seconds("N", 1.0), "0", "a positive number of seconds"),
        (lambda e: e.seconds("N", 1.0), "nan", "a positive number of seconds"),
        (lambda e: e.seconds("N", 1.0), "inf", "a positive number of seconds"),
        (lambda e: e.seconds("N", 1.0), "soon", "a positive number of seconds"),
        (lambda e: e.flag("N", False), "maybe", "true or false"),
        (lambda e: e.choice("N", Colour.RED), "green", "red|blue"),
    ],
)
def test_every_refusal_names_the_variable_its_value_and_what_is_allowed(
    read: Callable[[Environment], object], value: str, allowed: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        read(Environment({"N": f" {value} "}))
    assert str(raised.value) == f"N must be {allowed}, got {value!r}"


def test_blank_takes_the_default_and_good_values_are_read() -> None:
    blank = Environment({"N": "  "})
    assert blank.whole("N", 3, low=1) == 3
    assert blank.seconds("N", 1.5) == 1.5
    assert blank.flag("N", True) is True
    assert blank.choice("N", Colour.BLUE) is Colour.BLUE
    assert blank.optional("N") is None
    with pytest.raises(ConfigurationError, match=r"^N is not set \(the thing\)$"):
        blank.required("N", "the thing")
    given = Environment({"W": "7", "S": "0.25", "F": "Yes", "C": "RED", "T": " x "})
    assert given.whole("W", 3, low=1, high=9) == 7
    assert given.seconds("S", 1.0) == 0.25
    assert given.flag("F", False) is True
    assert given.choice("C", Colour.BLUE) is Colour.RED
    assert given.required("T", "t") == "x"


def test_only_the_settings_module_reads_the_environment() -> None:
    reads = environment_reads(PACKAGE_DIR)
    assert [r.describe(PACKAGE_DIR) for r in reads if r.path != RESOLVER] == []
    assert any(r.path == RESOLVER for r in reads)  # the check sees the one reader


def test_only_the_settings_module_resolves_settings() -> None:
    sites = settings_resolvers(PACKAGE_DIR)
    assert [s.describe(PACKAGE_DIR) for s in sites if s.path != RESOLVER] == []
    assert {s.text for s in sites} == {"def from_env", "Environment"}
