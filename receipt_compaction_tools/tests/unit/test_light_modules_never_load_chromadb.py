"""What runs without the container's heavy stack imports none of it: the Pulumi program
(``pulumi up`` on a laptop), the compactor's setting defaults (by where they live: the
light package), and the CLI's entry point, whose commands import receipt_chroma only when
they run (``--help``, a usage error or an unreachable endpoint is reported within the
command's ``--timeout``, not after chromadb's ~1.5 s import). Each is checked in a fresh
interpreter."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

LIGHT_MODULES = (
    "receipt_dynamo_stream.compactor_defaults",
    "chromadb_compaction.pipeline",
    "chromadb_compaction.settings",
    "receipt_compaction_tools.cli.main",
    "receipt_compaction_tools.cli.settings",
)


@pytest.mark.parametrize("module", LIGHT_MODULES)
def test_importing_it_loads_neither_chromadb_nor_receipt_chroma(module: str) -> None:
    probe = f"import sys, {module}\nprint(*sorted(sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", probe], check=False, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    loaded = {name.split(".")[0] for name in done.stdout.split()}
    assert {"chromadb", "receipt_chroma"} & loaded == set()


@pytest.mark.parametrize(
    ("argv", "status", "says"),
    [
        (["--help"], 0, ""),
        (["status"], 2, "error: --table (or DYNAMODB_TABLE_NAME) is required"),
    ],
)
def test_the_cli_answers_help_and_usage_errors_without_loading_chromadb(
    argv: list[str], status: int, says: str
) -> None:
    probe = (
        "import sys\n"
        "from receipt_compaction_tools.cli.main import main\n"
        f"status = main({argv!r})\n"
        "print('MODULES', *sorted(sys.modules))\n"
        "sys.exit(status)"
    )
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in ("DYNAMODB_TABLE_NAME", "CHROMADB_BUCKET")
    }
    done = subprocess.run(
        [sys.executable, "-c", probe],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )
    assert done.returncode == status, done.stderr
    assert says in done.stderr
    modules = done.stdout.split("MODULES", 1)[1].split()
    assert {"chromadb", "receipt_chroma"} & {name.split(".")[0] for name in modules} == set()
