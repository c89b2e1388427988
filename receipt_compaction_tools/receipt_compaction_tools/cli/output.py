"""Where results go: JSON or plain lines on stdout; progress bars and prompts on stderr.
rich is imported only when a console or progress bar is made."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from receipt_compaction_tools.cli.exceptions import UsageError


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
