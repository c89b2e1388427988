"""The stream zip's target platform comes from the function's runtime and architecture;
one the build does not know is refused by name instead of guessed."""

from __future__ import annotations

import re

import pytest

from chromadb_compaction.build_stream_zip import TargetPlatform


def test_an_unknown_runtime_or_architecture_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=re.escape("'python3.99'")):
        TargetPlatform.of_function("python3.99", "arm64")
    with pytest.raises(ValueError, match="'riscv64'"):
        TargetPlatform.of_function("python3.12", "riscv64")


def test_wheels_are_chosen_for_the_function_never_this_machine() -> None:
    arguments = TargetPlatform.of_function("python3.12", "arm64").pip_arguments()
    assert arguments[arguments.index("--python-version") + 1] == "3.12"
    assert arguments[arguments.index("--implementation") + 1] == "cp"
    assert "--only-binary=:all:" in arguments
    platforms = [arguments[i + 1] for i, a in enumerate(arguments) if a == "--platform"]
    assert all(p.endswith("_aarch64") for p in platforms)
    # Amazon Linux 2023 (glibc 2.34) loads manylinux wheels up to 2_34, not newer ones.
    assert "manylinux_2_34_aarch64" in platforms
    assert "manylinux_2_35_aarch64" not in platforms
    assert "manylinux2014_aarch64" in platforms
