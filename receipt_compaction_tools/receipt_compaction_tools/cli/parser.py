"""The command line's parser: one-line errors and plain help text. Only the standard
library is imported here, so ``--help`` and argument errors are fast whatever the
environment holds."""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any, NoReturn

PROG = "receipt-compaction"

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
