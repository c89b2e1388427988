"""Build the stream processor's deployment zip (``make package-stream``).

The zip holds the handler at its root plus every dependency except boto3/botocore and
their own dependencies, which the Lambda Python runtime provides. Third-party versions
are the ones installed in the build environment, so the bundle matches what was tested.
The archive is deterministic: sorted entries, fixed timestamps, no bytecode.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HANDLER = REPO / "infra" / "chromadb_compaction" / "lambdas" / "stream_processor.py"
LOCAL_PACKAGES = [REPO / "receipt_dynamo", REPO / "receipt_dynamo_stream"]
# Powertools and what it needs that the runtime lacks (typing-extensions; aws-xray-sdk and
# wrapt for the Tracer), pinned to the tested versions. wrapt's C extension is built for
# this interpreter; wrapt falls back to its pure-Python implementation elsewhere.
THIRD_PARTY = ["aws-lambda-powertools", "typing-extensions", "aws-xray-sdk", "wrapt"]
FIXED_TIME = (2020, 1, 1, 0, 0, 0)


def install_dependencies(target: Path) -> None:
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


def build(output: Path) -> Path:
    with tempfile.TemporaryDirectory(prefix="stream-zip-") as tmp:
        staging = Path(tmp) / "package"
        install_dependencies(staging)
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
    path = build(args.output)
    print(f"{path} ({path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
