"""What runs without the container's heavy stack imports none of it: the Pulumi program
(``pulumi up`` on a laptop), the CLI's entry point (``--help``, argument errors) and the
compactor's setting defaults. They are chromadb-free by where they live (the light
package), not by deferred imports, so each is checked in a fresh interpreter."""

from __future__ import annotations

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


def test_the_cli_answers_help_without_loading_chromadb() -> None:
    probe = (
        "import sys\n"
        "from receipt_compaction_tools.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('MODULES', *sorted(sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], check=False, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    modules = done.stdout.split("MODULES", 1)[1].split()
    assert "chromadb" not in {name.split(".")[0] for name in modules}
