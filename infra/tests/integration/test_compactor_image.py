"""The compactor image: its handler imports with exactly what the Dockerfile installs.

There is no Docker engine here, so the test reads the Dockerfile, installs its
requirements file into an empty folder with pip (as the image build does), and imports
the handler in an interpreter that sees only that folder and the standard library.
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow(seconds=30)]

REPO = Path(__file__).resolve().parents[3]
LAMBDAS = REPO / "infra" / "chromadb_compaction" / "lambdas"
DOCKERFILE = LAMBDAS / "Dockerfile"
REQUIREMENTS = LAMBDAS / "requirements-compactor.txt"


def _requirements() -> list[str]:
    lines = [line.strip() for line in REQUIREMENTS.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_dockerfile_builds_from_the_lambda_base_and_runs_the_handler() -> None:
    text = DOCKERFILE.read_text()
    # linux/amd64 whatever machine builds it: the function is x86_64.
    assert re.search(
        r"^FROM --platform=linux/amd64 public\.ecr\.aws/lambda/python:3\.1[2-9]$", text, re.M
    )
    assert 'CMD ["enhanced_compaction_handler.lambda_handler"]' in text
    assert "pip install --no-cache-dir -r /build/requirements-compactor.txt" in text
    for package in ("receipt_dynamo", "receipt_dynamo_stream", "receipt_chroma"):
        assert f"COPY {package}/ /build/{package}/" in text
        assert f"/build/{package}" in _requirements()
    # The image pins the Powertools version the tests ran with (with the Tracer's X-Ray SDK).
    assert f"aws-lambda-powertools[tracer]=={version('aws-lambda-powertools')}" in _requirements()


def test_handler_imports_with_exactly_the_image_requirements(tmp_path: Path) -> None:
    target = tmp_path / "image"
    requirements = [
        str(REPO / line.removeprefix("/build/")) if line.startswith("/build/") else line
        for line in _requirements()
    ]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-warn-conflicts",
            # Byte-compiling every installed module (chromadb, numpy, onnxruntime...) was
            # over half the install's CPU time; what is installed is the same without it,
            # and the probe below compiles only what the handler imports.
            "--no-compile",
            "--target",
            str(target),
            *requirements,
        ],
        check=True,
    )
    probe = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; "
        "import enhanced_compaction_handler as h, chromadb; "
        "assert callable(h.lambda_handler); "
        "print([m.__file__ for m in (h, chromadb)]); "
        "print([p for p in sys.path if 'site-packages' in p])"
    )
    output = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe, str(target), str(LAMBDAS)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    assert str(target) in output[0]
    assert output[1] == "[]"
    # The image holds the product and its dependencies: no tooling, fixtures or emulator.
    installed = {p.name for p in target.iterdir()}
    assert not installed & {"receipt_compaction_tools", "moto", "pytest", "hypothesis"}
    assert not list(target.glob("receipt_*/testing")), list(target.glob("receipt_*/testing"))
