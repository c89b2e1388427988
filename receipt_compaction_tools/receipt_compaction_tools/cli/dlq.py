"""``receipt-compaction dlq export|redrive``: the dead letters of the pipeline.

Queues by name: ``lines`` / ``words`` (the compactor's dead-letter queues, holding §3.4
messages) and ``stream`` (the parking queue of unparseable stream records, whose bodies
wrap the record: ``{"kind": "unparseable_stream_record", "record": …}``), or any URL.

``export`` writes one JSON object per line, which ``replay`` accepts: the message, or the
parked body as it was parked — the record with the ``error_type`` and ``error`` that
stopped it. Messages are received under a visibility timeout (so none is read twice) and
made visible again once the file is written, or deleted with ``--delete``. ``redrive``
sends dead letters back: a DLQ's messages to their collection's queue, the parking
queue's records through message building again; a record that still does not parse
stays parked, and its reason is printed.
"""

from __future__ import annotations

import argparse
from typing import Any

from receipt_compaction_tools.cli.dead_letters import SOURCES, TARGETS
from receipt_compaction_tools.cli.dlq_export import command_export
from receipt_compaction_tools.cli.dlq_redrive import command_redrive
from receipt_compaction_tools.cli.settings import ENDPOINT, REGION, add_settings, positive_int


def _seconds(text: str) -> int:
    try:
        value = positive_int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if value > 43200:
        raise argparse.ArgumentTypeError(f"must be at most 43200 (12 h), got {value}")
    return value


def _limit(text: str) -> int:
    try:
        return positive_int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def register(commands: Any) -> None:
    dlq = commands.add_parser("dlq", help="export or redrive dead letters", description=__doc__)
    actions = dlq.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = actions.add_parser(
        "export", help="dead letters → JSONL that replay accepts (parked records unwrapped)"
    )
    redrive = actions.add_parser(
        "redrive", help="dead letters back into the pipeline (deleted once sent)"
    )
    for sub in (export, redrive):
        sub.add_argument("queue", help="lines, words, stream or a queue URL")
        sub.add_argument("--limit", type=_limit, help="at most this many messages")
        sub.add_argument(
            "--visibility-timeout",
            type=_seconds,
            default=300,
            help="seconds the received messages stay hidden while this runs (300)",
        )
        add_settings(sub, ENDPOINT, REGION, *SOURCES.values())
    export.add_argument("-o", "--output", required=True, help="the JSONL file to write")
    export.add_argument("--force", action="store_true", help="overwrite an existing file")
    export.add_argument(
        "--delete", action="store_true", help="delete the exported messages from the queue"
    )
    export.set_defaults(handler=command_export)
    add_settings(redrive, *TARGETS.values())
    redrive.add_argument("--to", help="target queue URL when the source is given by URL")
    redrive.set_defaults(handler=command_redrive)
