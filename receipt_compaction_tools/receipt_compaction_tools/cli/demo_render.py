"""What ``receipt-compaction demo`` shows: its summary as tables, and the environment its
resources can be used with, as ``export`` lines."""

from __future__ import annotations

import json
import shlex
from typing import IO, Any


def exports(environment: dict[str, str]) -> str:
    """``export NAME=value`` lines, quoted for a POSIX shell."""
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in environment.items())


def render_demo(summary: dict[str, Any], stream: IO[str]) -> None:
    from rich.table import Table

    from receipt_compaction_tools.cli.output import console

    out = console(stream)
    out.print(f"[bold]Receipt compaction demo[/bold] (sink: {summary['sink']})")
    overview = Table(show_header=False)
    for key in (
        "receipts",
        "rows_written",
        "stream_records",
        "stream_invocations",
        "messages_per_queue",
        "messages_failed",
        "records",
        "queue_depths",
    ):
        overview.add_row(key.replace("_", " "), json.dumps(summary[key]))
    out.print(overview)
    out.print(_cycles_table(summary["cycles"]))
    if summary["sink"] != "server":
        out.print(f"snapshot versions: {json.dumps(summary['versions'])}")
    if "chroma_server" in summary:
        out.print(f"chroma server: {summary['chroma_server']} (stopped after the demo)")
    if "sink_verify" in summary:
        out.print(f"sink verify: {json.dumps(summary['sink_verify'])}")
    out.print(_sample_query_table(summary))
    out.print(f"timings: {json.dumps(summary['timings'])}")
    if summary.get("environment"):
        stream.write(
            "\nThe resources stay on the endpoint; for the other commands (or --print-env):\n"
            + exports(summary["environment"])
        )


def _cycles_table(cycles: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(
        "collection",
        "cache tier",
        "published",
        "server applied",
        "vectors merged",
        "failures",
        title="compaction cycles",
    )
    for cycle in cycles:
        table.add_row(
            cycle["collection"],
            str(cycle["tier"]),
            str(cycle["published"]),
            str(cycle.get("server_applied", False)),
            str(cycle["vectors_merged"]),
            str(cycle["failures"]),
        )
    return table


def _sample_query_table(summary: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(
        "text",
        "merchant",
        "valid labels",
        "label status",
        "distance",
        title="nearest words to a labelled word ("
        + ("Chroma server" if "chroma_server" in summary else "published snapshot")
        + ")",
    )
    for row in summary["sample_query"]:
        table.add_row(
            str(row["text"]),
            str(row["merchant"]),
            str(row["labels"]),
            str(row["label_status"]),
            str(row["distance"]),
        )
    return table
