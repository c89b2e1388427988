"""Loading the Lambda entry points from ``infra/chromadb_compaction/lambdas``."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

LAMBDAS_ENV = "RECEIPT_COMPACTION_LAMBDAS_DIR"


def lambdas_directory() -> Path:
    configured = os.environ.get(LAMBDAS_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[3] / "infra" / "chromadb_compaction" / "lambdas"


def load_handler(name: str) -> ModuleType:
    """Import ``<lambdas>/<name>.py`` fresh, as a new Lambda container would."""
    path = lambdas_directory() / f"{name}.py"
    if not path.is_file():
        raise FileNotFoundError(f"Lambda handler {path} not found (set {LAMBDAS_ENV})")
    spec = importlib.util.spec_from_file_location(f"lambda_{name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
