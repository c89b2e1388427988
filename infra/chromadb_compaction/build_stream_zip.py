"""Build the stream processor's deployment zip (``make package-stream``).

The zip holds the handler at its root plus every dependency except boto3/botocore and
their own dependencies, which the Lambda Python runtime provides. Third-party versions
are the ones installed in the build environment, so the bundle matches what was tested,
but their wheels are the ones for the function's Python and architecture (``settings``),
never this machine's: a native extension built for the wrong platform would be skipped or
fail to load in the function. The archive is deterministic: sorted entries, fixed
timestamps, no bytecode.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from chromadb_compaction import settings

REPO = Path(__file__).resolve().parents[2]
HANDLER = REPO / "infra" / "chromadb_compaction" / "lambdas" / "stream_processor.py"
LOCAL_PACKAGES = [REPO / "receipt_dynamo", REPO / "receipt_dynamo_stream"]
# Powertools and what it needs that the runtime lacks (typing-extensions; aws-xray-sdk and
# wrapt for the Tracer), pinned to the tested versions.
THIRD_PARTY = ["aws-lambda-powertools", "typing-extensions", "aws-xray-sdk", "wrapt"]
FIXED_TIME = (2020, 1, 1, 0, 0, 0)
# The glibc of the Amazon Linux each Lambda Python runtime runs on (python3.11: Amazon
# Linux 2; python3.12 and later: Amazon Linux 2023): the newest manylinux wheels it loads.
RUNTIME_GLIBC = {"python3.11": (2, 26), "python3.12": (2, 34), "python3.13": (2, 34)}
# Lambda's architecture names → the machine names in wheel tags.
MACHINES = {"arm64": "aarch64", "x86_64": "x86_64"}
OLDEST_MANYLINUX_GLIBC_MINOR = 17  # manylinux2014: no older tag exists for aarch64


@dataclass(frozen=True)
class TargetPlatform:
    """The interpreter and machine a Lambda function runs on, as pip selects wheels."""

    python_version: str  # "3.12"
    machine: str  # "aarch64"
    glibc: tuple[int, int]

    @classmethod
    def of_function(cls, runtime: str, architecture: str) -> TargetPlatform:
        if runtime not in RUNTIME_GLIBC:
            known = ", ".join(sorted(RUNTIME_GLIBC))
            raise ValueError(f"no wheel platform known for Lambda runtime {runtime!r} ({known})")
        if architecture not in MACHINES:
            known = ", ".join(sorted(MACHINES))
            raise ValueError(f"unknown Lambda architecture {architecture!r} ({known})")
        return cls(
            python_version=runtime.removeprefix("python"),
            machine=MACHINES[architecture],
            glibc=RUNTIME_GLIBC[runtime],
        )

    @property
    def platform_tags(self) -> list[str]:
        """Every manylinux tag the function's glibc loads, newest first (pip matches
        ``--platform`` tags exactly, so each is named)."""
        major, newest = self.glibc
        tags = [
            f"manylinux_{major}_{minor}_{self.machine}"
            for minor in range(newest, OLDEST_MANYLINUX_GLIBC_MINOR - 1, -1)
        ]
        return [*tags, f"manylinux2014_{self.machine}"]

    def pip_arguments(self) -> list[str]:
        platforms = [argument for tag in self.platform_tags for argument in ("--platform", tag)]
        return [
            *platforms,
            "--python-version",
            self.python_version,
            "--implementation",
            "cp",
            "--only-binary=:all:",
        ]

    def __str__(self) -> str:
        return f"CPython {self.python_version}, manylinux {self.machine}"


def function_platform() -> TargetPlatform:
    """The stream function's platform, as the Pulumi program deploys it."""
    return TargetPlatform.of_function(settings.PYTHON_RUNTIME, settings.ARCHITECTURE)


def install_dependencies(target: Path, platform: TargetPlatform) -> None:
    # The repository's own packages are pure Python (built here, tagged py3-none-any);
    # everything else is a wheel for the function's platform.
    requirements = [f"{name}=={version(name)}" for name in THIRD_PARTY]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--no-compile",
            "--target",
            str(target),
            *platform.pip_arguments(),
            *[str(p) for p in LOCAL_PACKAGES],
            *requirements,
        ],
        check=True,
    )


def write_zip(source: Path, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    files = sorted(
        p
        for p in source.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )
    with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for path in files:
            info = zipfile.ZipInfo(str(path.relative_to(source)), date_time=FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())


def build(output: Path, platform: TargetPlatform) -> Path:
    with tempfile.TemporaryDirectory(prefix="stream-zip-") as tmp:
        staging = Path(tmp) / "package"
        install_dependencies(staging, platform)
        shutil.copy2(HANDLER, staging / HANDLER.name)
        # Build leftovers are not needed at run time.
        for leftover in staging.glob("bin"):
            shutil.rmtree(leftover)
        write_zip(staging, output)
    return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=REPO / "dist" / "stream_processor.zip")
    args = parser.parse_args()
    platform = function_platform()
    path = build(args.output, platform)
    print(f"{path} ({path.stat().st_size / 1024:.0f} KiB, {platform})")


if __name__ == "__main__":
    main()
